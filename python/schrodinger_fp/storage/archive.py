"""Reading archives of many named tensors: ``Archive``, random-access ``open`` and ``load``.

An archive is a checkpoint or an activation dump in one file (written by ``writer``). Reading
fetches and decodes only the tensors asked for (see ``source`` for why it reads rather than
maps the file). See ``index`` for the layout.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from schrodinger_fp.codec import DecodeError, FrameInfo, decode, inspect
from schrodinger_fp.storage.index import DTYPES, FILE_PREFIX, Entry, parse_from
from schrodinger_fp.storage.source import ByteSource
from schrodinger_fp.storage.writer import ArchiveWriter, fit_format, save

__all__ = ["Archive", "ArchiveWriter", "Entry", "fit_format", "load", "open", "save"]


class Archive(Mapping[str, np.ndarray]):
    """A read-only archive: a mapping from tensor name to array, read on demand.

    Parameters
    ----------
    file : str, os.PathLike or binary file object
        The archive; a file object must be seekable and stays open after ``close``.
    threads : int, optional
        Codec threads for decoding.

    Raises
    ------
    DecodeError
        If the file is not a well-formed archive (the message names the file).
    OSError
        If it cannot be opened.

    Notes
    -----
    ``archive[name]`` reads and checks only that tensor's bytes; ``files`` and ``file`` give
    the other files of a checkpoint directory. Use as a context manager, or call ``close``.
    A file truncated while open gives ``DecodeError`` on the next read.
    """

    def __init__(
        self, file: str | os.PathLike[str] | BinaryIO, *, threads: int | None = None
    ) -> None:
        name = _display_name(file)
        self.path = Path(name)
        self._threads = threads
        self._source = ByteSource(file, name)
        try:
            size = self._source.size()
            if size == 0:
                raise DecodeError(f"{name}: empty file, not an archive")
            entries, self.metadata = parse_from(size, self._source.read_at)
        except DecodeError as exc:
            self.close()
            message = str(exc)
            raise DecodeError(
                message if message.startswith(name) else f"{name}: {message}"
            ) from None
        except BaseException:
            self.close()
            raise
        self.entries: dict[str, Entry] = {
            e.name: e for e in entries if not e.name.startswith(FILE_PREFIX)
        }
        self.files: dict[str, Entry] = {
            e.name[len(FILE_PREFIX) :]: e for e in entries if e.name.startswith(FILE_PREFIX)
        }

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file. Arrays already returned stay valid."""
        self._source.close()

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __repr__(self) -> str:
        return f"Archive({str(self.path)!r}, {len(self)} tensors)"

    def _stored(self, name: str) -> bytearray:
        """Return the checked stored bytes of tensor ``name``."""
        entry = self.entries.get(name)
        if entry is None:
            raise KeyError(f"no tensor {name!r} in {self.path}")
        return self._read(entry, f"tensor {name!r}")

    def _read(self, entry: Entry, what: str) -> bytearray:
        if self._source.closed:
            raise ValueError("archive is closed")
        data = self._source.read_at(entry.offset, entry.length)
        if zlib.crc32(data) != entry.crc32:
            raise DecodeError(f"{what}: checksum mismatch (archive corrupt)")
        return data

    def file(self, path: str) -> bytes:
        """Return the bytes of a stored file (see ``ArchiveWriter.add_file``), checked.

        Raises
        ------
        KeyError
            If the archive stores no such file.
        DecodeError
            If its checksum does not match.
        """
        entry = self.files.get(path)
        if entry is None:
            raise KeyError(f"no file {path!r} in {self.path}")
        return bytes(self._read(entry, f"file {path!r}"))

    def frame(self, name: str) -> bytes:
        """Return the stored bytes of ``name`` (a codec frame, or the raw bytes), checked.

        Raises
        ------
        KeyError
            If there is no such tensor.
        DecodeError
            If its checksum does not match.
        """
        return bytes(self._stored(name))

    def info(self, name: str) -> FrameInfo | None:
        """Return ``inspect`` of the frame of ``name``, or None for a raw tensor."""
        if self.entries[name].encoding != "sfp":
            return None
        return inspect(self._stored(name))

    def __getitem__(self, name: str) -> np.ndarray:
        """Decode one tensor.

        Raises
        ------
        KeyError
            If there is no such tensor.
        DecodeError
            If its bytes are corrupt or do not match the index.
        """
        entry = self.entries.get(name)
        if entry is None:
            raise KeyError(f"no tensor {name!r} in {self.path}")
        data = self._stored(name)
        if entry.encoding == "raw":
            return np.frombuffer(data, dtype=DTYPES[entry.dtype]).reshape(entry.shape)
        try:
            array = decode(data, threads=self._threads)
        except DecodeError as exc:
            raise DecodeError(f"tensor {name!r}: {exc}") from None
        if str(array.dtype) != entry.dtype or array.shape != tuple(entry.shape):
            raise DecodeError(
                f"tensor {name!r}: frame holds {array.dtype} {array.shape}, "
                f"index says {entry.dtype} {entry.shape}"
            )
        return array

    def verify(self) -> None:
        """Check every tensor: its checksum, and for frames a full decode.

        Raises
        ------
        DecodeError
            Naming the first tensor that fails.
        """
        for name in self.entries:
            self[name]
        for path in self.files:
            self.file(path)

    @property
    def lossless(self) -> bool:
        """Whether every tensor is stored losslessly."""
        return all(e.lossless for e in self.entries.values())


def _display_name(file: object) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fsdecode(file)
    return str(getattr(file, "name", "<archive stream>"))


def open(file: str | os.PathLike[str] | BinaryIO, *, threads: int | None = None) -> Archive:
    """Open an archive for random access (lazy: tensors are read when asked for).

    Parameters
    ----------
    file : str, os.PathLike or seekable binary file object
    threads : int, optional
        Codec threads for decoding.

    Returns
    -------
    Archive
    """
    return Archive(file, threads=threads)


def load(
    file: str | os.PathLike[str] | BinaryIO,
    names: str | Iterable[str] | None = None,
    *,
    threads: int | None = None,
) -> dict[str, np.ndarray]:
    """Read tensors from an archive.

    Parameters
    ----------
    file : str, os.PathLike or seekable binary file object
    names : str or iterable of str, optional
        The tensor (one name) or tensors to read (default: all); the others are not read.
    threads : int, optional
        Codec threads.

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    KeyError
        If a requested name is not in the archive.
    DecodeError
        If the archive or a requested tensor is corrupt.
    """
    with Archive(file, threads=threads) as archive:
        if names is None:
            wanted = list(archive)
        elif isinstance(names, str):
            wanted = [names]
        else:
            wanted = list(names)
        missing = [n for n in wanted if n not in archive.entries]
        if missing:
            raise KeyError(f"no tensors {missing} in {archive.path}")
        return {name: archive[name] for name in wanted}
