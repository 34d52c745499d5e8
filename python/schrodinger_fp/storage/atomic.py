"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file: either the old file (or nothing) or the
complete new one. On any error the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file that replaces ``path`` when the block ends without error.

    Parameters
    ----------
    path : str or os.PathLike
        The final file name.
    overwrite : bool, default True
        When False, an existing ``path`` is never replaced: ``FileExistsError`` is raised
        before anything is written, and again (atomically, through a hard link) at the end
        if the file appeared in the meantime.

    Yields
    ------
    BinaryIO
        A binary file open for writing. It is flushed and synced before the rename.

    Raises
    ------
    FileExistsError
        If ``overwrite`` is False and ``path`` exists.
    OSError
        If the directory is not writable, the disk is full, and so on. The temporary file
        is removed before the error propagates.
    """
    target = Path(path)
    if not overwrite and (target.exists() or target.is_symlink()):
        raise FileExistsError(f"{target} already exists (use -f / overwrite=True to replace it)")
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target`` unless ``target`` exists, atomically where links work."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(
            f"{target} already exists (use -f / overwrite=True to replace it)"
        ) from None
    except OSError:
        # File systems without hard links: check, then rename (a small race remains).
        if target.exists():
            raise FileExistsError(
                f"{target} already exists (use -f / overwrite=True to replace it)"
            ) from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def _umask() -> int:
    """Return the process umask without changing it (read from /proc where it exists)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
