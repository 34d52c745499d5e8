"""The progress bar of the long-running commands: tqdm on stderr, only on a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(nbytes)`` callable that drives a tqdm bar on stderr when enabled.

    The bar is shown only when ``enabled`` and stderr is a terminal and tqdm is installed.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield lambda n: None
        return
    with tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, file=sys.stderr, leave=False
    ) as bar:
        yield bar.update
