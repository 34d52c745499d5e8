"""The ``sfp`` command line: ``compress``, ``decompress``, ``list``, ``test``, ``stats``, ``demo``.

``commands`` holds the archive commands and ``main``; ``options`` the options they share;
``stats`` and ``demo`` one command each.
"""

from schrodinger_fp.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]
