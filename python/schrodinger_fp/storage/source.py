"""Positional reads from a file that fail with an error, never with a signal.

Archives and safetensors inputs are read with ``pread`` into buffers the reader owns rather than
through a memory map: a mapped file that another process truncates kills the reader with SIGBUS
on the next access, while a read past the new end is merely short, and is reported as a
truncated file. The cost is one copy of the bytes of each tensor read, small beside coding.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import BinaryIO

from schrodinger_fp.codec import DecodeError

__all__ = ["ByteSource"]


class ByteSource:
    """A file opened for positional reads: a path (opened and owned) or a binary file object.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        A file object must be readable and seekable; it is not closed by ``close``.
    name : str
        How errors name the file.
    """

    def __init__(self, file: str | os.PathLike[str] | BinaryIO, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._stream: BinaryIO | None = None
        self._fd: int | None = None
        if isinstance(file, (str, os.PathLike)):
            self._fd = os.open(Path(file), os.O_RDONLY | getattr(os, "O_BINARY", 0))
        elif hasattr(file, "read") and hasattr(file, "seek"):
            self._stream = file
        else:
            raise TypeError(
                f"an archive is a path or a binary file object, got {type(file).__name__}"
            )

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._fd is None and self._stream is None

    def size(self) -> int:
        """Return the current size of the file in bytes."""
        if self._fd is not None:
            return os.fstat(self._fd).st_size
        stream = self._open_stream()
        with self._lock:
            return stream.seek(0, io.SEEK_END)

    def read_at(self, offset: int, length: int) -> bytearray:
        """Read exactly ``length`` bytes at ``offset``.

        Raises
        ------
        DecodeError
            If the file ends first (it was truncated after it was opened).
        ValueError
            If the source is closed.
        """
        buffer = bytearray(length)
        view = memoryview(buffer)
        done = 0
        while done < length:
            got = self._read_into(view[done:], offset + done)
            if got == 0:
                raise DecodeError(
                    f"{self.name}: file truncated: {length - done} of {length} bytes at "
                    f"offset {offset + done} missing (was the file changed while open?)"
                )
            done += got
        return buffer

    def _read_into(self, view: memoryview, offset: int) -> int:
        if self._fd is not None:
            if hasattr(os, "preadv"):
                return os.preadv(self._fd, [view], offset)
            data = os.pread(self._fd, len(view), offset)
            view[: len(data)] = data
            return len(data)
        stream = self._open_stream()
        with self._lock:
            stream.seek(offset)
            got = stream.readinto(view)  # type: ignore[attr-defined]
        return int(got or 0)

    def _open_stream(self) -> BinaryIO:
        if self._stream is None:
            raise ValueError(f"{self.name}: archive is closed")
        return self._stream

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Close a file this source opened; a file object given to it stays open."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._stream = None
