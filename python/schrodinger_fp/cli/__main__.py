"""``python -m schrodinger_fp.cli``: the ``sfp`` command."""

import sys

from schrodinger_fp.cli.commands import main

sys.exit(main())
