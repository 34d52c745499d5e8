"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file: either the old file (or nothing) or the
complete new one. On any error, and on any exception that interrupts the writer
(``KeyboardInterrupt``, the ``sfp`` command's termination signals), the temporary file is
removed. Errors name the target, never the temporary file the user did not ask for.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: Bytes a file name may have where the file system does not say.
NAME_MAX = 255
_RANDOM_CHARS = 8
_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike[str], *, overwrite: bool = True, mode: int | None = None
) -> Iterator[BinaryIO]:
    """Open a temporary file that replaces ``path`` when the block ends without error.

    Parameters
    ----------
    path : str or os.PathLike
        The final file name.
    overwrite : bool, default True
        When False, an existing ``path`` is never replaced: ``FileExistsError`` is raised
        before anything is written, and again (atomically, through a hard link) at the end
        if the file appeared in the meantime.
    mode : int, optional
        Permission bits of the finished file (a converted file keeps its source's); default
        ``0o666`` less the umask. The temporary file is private (``0o600``) while written.

    Yields
    ------
    BinaryIO
        A binary file open for writing. It is flushed and synced before the rename.

    Raises
    ------
    FileExistsError
        If ``overwrite`` is False and ``path`` exists.
    OSError
        If the directory is not writable, the disk is full, and so on; ``filename`` is
        ``path``. The temporary file is removed before the error propagates.
    """
    target = Path(path)
    if not overwrite and (target.exists() or target.is_symlink()):
        raise FileExistsError(f"{target} already exists (use -f / overwrite=True to replace it)")
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = _create_temporary(directory, target.name)
    except OSError as exc:
        raise _about(exc, target) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, (0o666 & ~current_umask()) if mode is None else mode & 0o777)
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_clobber(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and _concerns_output(exc, tmp):
            raise _about(exc, target) from None
        raise


#: Errors of a write that can only be about the file being written.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _concerns_output(exc: OSError, tmp: Path) -> bool:
    if exc.filename is None:
        return exc.errno in _OUTPUT_ERRNOS
    return exc.filename in (str(tmp), os.fsencode(tmp))


def temporary_name(final_name: str, name_max: int = NAME_MAX) -> str:
    """Return the pattern of a hidden temporary name beside ``final_name``, within ``name_max``.

    ``.NAME.XXXXXXXX.tmp`` is 14 bytes longer than ``NAME``; for a name near the limit, the
    copy of it in the temporary name is shortened (at a character boundary), never the
    random part that keeps concurrent writers apart.

    Returns
    -------
    str
        The name with ``{}`` where the random characters go.
    """
    room = name_max - len(".") - len(".") - _RANDOM_CHARS - len(_SUFFIX)
    encoded = os.fsencode(final_name)
    if len(encoded) > room:
        encoded = encoded[:room]
        while encoded:
            try:
                encoded.decode("utf-8")
                break
            except UnicodeDecodeError:
                encoded = encoded[:-1]
    stem = os.fsdecode(encoded).replace("{", "{{").replace("}", "}}")
    return f".{stem}.{{}}{_SUFFIX}"


def _create_temporary(directory: Path, final_name: str) -> tuple[int, Path]:
    try:
        name_max = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = NAME_MAX
    pattern = temporary_name(final_name, min(name_max, NAME_MAX))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        candidate = directory / pattern.format(secrets.token_hex(_RANDOM_CHARS // 2))
        try:
            return os.open(candidate, flags, 0o600), candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")  # pragma: no cover


def _about(exc: OSError, target: Path) -> OSError:
    """The same error, naming ``target`` instead of a temporary file."""
    error = type(exc)(exc.errno, exc.strerror or str(exc), str(target))
    if exc.errno is None:
        error = type(exc)(f"{target}: {exc}")
    return error


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


def current_umask() -> int:
    """Return the process umask without changing it (read from /proc where it exists)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
