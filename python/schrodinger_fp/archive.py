"""Archives of many named tensors: ``save``, ``load`` and random-access ``open``.

An archive is a checkpoint or an activation dump in one file. Float tensors of the codec's
dtypes are stored as codec frames in the format the policy names (lossless by default);
every other tensor (int64 buffers, bool masks, ...) is stored as its raw little-endian bytes.
Writing streams one tensor at a time to a temporary file that is renamed at the end, so a
dump larger than memory can be converted and no partial file is ever left behind. Reading
maps the file and decodes only the tensors asked for. See ``archive_index`` for the layout.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from schrodinger_fp._atomic import atomic_output
from schrodinger_fp.archive_index import (
    DTYPES,
    PREAMBLE,
    VERSION,
    Entry,
    check_name,
    dtype_name,
    encode_index,
    padding,
    parse,
)
from schrodinger_fp.archive_index import MAGIC as MAGIC
from schrodinger_fp.codec import DecodeError, FrameInfo, decode, encode, inspect
from schrodinger_fp.dtypes import SUPPORTED_DTYPES, byte_view
from schrodinger_fp.format import Format
from schrodinger_fp.training.policy import PolicyLike, format_lookup

__all__ = ["Archive", "ArchiveWriter", "Entry", "load", "open", "save"]

Tensors = Mapping[str, Any] | Iterable[tuple[str, Any]]


class ArchiveWriter:
    """Writes an archive to a binary stream, one tensor at a time.

    Parameters
    ----------
    stream : BinaryIO
        Any writable binary stream; it is written strictly sequentially (a pipe works).
    threads : int, optional
        Threads for the codec (None: the codec's default).

    Notes
    -----
    Call ``add`` for each tensor, then ``finish``. The stream is not closed.
    """

    def __init__(self, stream: BinaryIO, *, threads: int | None = None) -> None:
        self._stream = stream
        self._threads = threads
        self._entries: list[Entry] = []
        self._names: set[str] = set()
        self._position = 0
        self._finished = False
        self._write(PREAMBLE.pack(MAGIC, VERSION, 0))

    @property
    def entries(self) -> list[Entry]:
        """The entries written so far."""
        return list(self._entries)

    def _write(self, data: bytes | memoryview) -> None:
        written = self._stream.write(data)
        if written is not None and written != len(data):
            raise OSError(f"short write: {written} of {len(data)} bytes")
        self._position += len(data)

    def add(self, name: str, array: Any, fmt: Format | None = None) -> Entry:
        """Encode one tensor and append it.

        Parameters
        ----------
        name : str
            Tensor name: unique, no ``/``, ``\\``, ``..`` or control characters.
        array : array_like
            The tensor. Float tensors of ``SUPPORTED_DTYPES`` are encoded with ``fmt``; others
            are stored raw and ``fmt`` is ignored for them.
        fmt : Format, optional
            Target format; None is lossless.

        Returns
        -------
        Entry
            The index entry of the stored tensor.

        Raises
        ------
        ValueError
            For a bad or duplicate name, or an invalid format for this dtype.
        TypeError
            For a dtype that cannot be stored (objects, strings).
        OSError
            If the stream cannot be written.
        """
        if self._finished:
            raise ValueError("archive already finished")
        check_name(name)
        if name in self._names:
            raise ValueError(f"duplicate tensor name {name!r}")
        arr = np.asarray(array)
        try:
            dtype = dtype_name(arr.dtype)
        except TypeError as exc:
            raise TypeError(f"tensor {name!r}: {exc}") from None
        self._write(padding(self._position))
        stored: bytes | memoryview
        encoding, entry_fmt = "raw", None
        raw = arr.astype(DTYPES[dtype], order="C", copy=False)
        stored = byte_view(raw)
        if dtype in SUPPORTED_DTYPES and arr.size:
            try:
                lossless = fmt is None or fmt.is_lossless_for(dtype)
                frame = encode(raw, fmt or Format(), threads=self._threads)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"tensor {name!r}: {exc}") from exc
            if not lossless or len(frame) < raw.nbytes:
                stored, encoding, entry_fmt = frame, "sfp", fmt or Format()
        entry = Entry(
            name=name,
            dtype=dtype,
            shape=tuple(int(d) for d in arr.shape),
            encoding=encoding,
            format=entry_fmt,
            offset=self._position,
            length=len(stored),
            crc32=zlib.crc32(stored),
        )
        self._write(stored)
        self._entries.append(entry)
        self._names.add(name)
        return entry

    def finish(self, metadata: Mapping[str, str] | None = None) -> list[Entry]:
        """Write the index and trailer.

        Parameters
        ----------
        metadata : Mapping[str, str], optional
            Free-form string metadata kept in the index (safetensors ``__metadata__``, the
            source file type).

        Returns
        -------
        list of Entry
        """
        meta = dict(metadata or {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise ValueError("archive metadata must map strings to strings")
        self._write(encode_index(self._entries, meta, self._position))
        self._finished = True
        return self.entries


def _items(tensors: Tensors) -> Iterator[tuple[str, Any]]:
    if isinstance(tensors, Mapping):
        yield from tensors.items()
    else:
        yield from tensors


def save(
    path: str | os.PathLike[str] | BinaryIO,
    tensors: Tensors,
    policy: PolicyLike = None,
    *,
    metadata: Mapping[str, str] | None = None,
    threads: int | None = None,
    overwrite: bool = True,
    progress: Callable[[Entry], None] | None = None,
) -> list[Entry]:
    """Write named tensors to an archive.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        Destination. A path is written through a temporary file in the same directory that
        is renamed when complete; a file object is written sequentially as is.
    tensors : Mapping[str, array_like] or iterable of (str, array_like)
        The tensors; an iterable (a generator reading one tensor at a time) keeps memory use
        to one tensor.
    policy : Format, Mapping[str, Format], object with ``format_for(name)``, or None
        The format of each float tensor; None (the default) is lossless.
    metadata : Mapping[str, str], optional
        String metadata stored in the index.
    threads : int, optional
        Codec threads.
    overwrite : bool, default True
        Whether an existing ``path`` may be replaced.
    progress : callable, optional
        Called with each ``Entry`` once it is written.

    Returns
    -------
    list of Entry
        The index of the written archive.

    Raises
    ------
    ValueError
        Bad or duplicate names, invalid formats.
    TypeError
        A dtype that cannot be stored, or a policy of the wrong type.
    FileExistsError
        If ``overwrite`` is False and ``path`` exists.
    OSError
        If writing fails; no file is left at ``path`` (or the old one stays).
    """
    lookup = format_lookup(policy)

    def write(stream: BinaryIO) -> list[Entry]:
        writer = ArchiveWriter(stream, threads=threads)
        for name, array in _items(tensors):
            entry = writer.add(name, array, lookup(name))
            if progress is not None:
                progress(entry)
        return writer.finish(metadata)

    if hasattr(path, "write"):
        return write(path)  # type: ignore[arg-type]
    with atomic_output(path, overwrite=overwrite) as stream:  # type: ignore[arg-type]
        return write(stream)


class Archive(Mapping[str, np.ndarray]):
    """A read-only, memory-mapped archive: a mapping from tensor name to array.

    Parameters
    ----------
    path : str or os.PathLike
        The archive file.
    threads : int, optional
        Codec threads for decoding.

    Raises
    ------
    DecodeError
        If the file is not a well-formed archive.
    OSError
        If it cannot be opened.

    Notes
    -----
    ``archive[name]`` reads and checks only that tensor's bytes. Use as a context manager,
    or call ``close``.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        self.path = Path(path)
        self._threads = threads
        with self.path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise DecodeError(f"{self.path}: empty file, not an archive")
            self._map: mmap.mmap | None = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            with memoryview(self._map) as view:
                entries, self.metadata = parse(view)
        except BaseException:
            self.close()
            raise
        self.entries: dict[str, Entry] = {e.name: e for e in entries}

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
        """Unmap the file. Arrays already returned stay valid."""
        if self._map is not None:
            self._map.close()
            self._map = None

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __repr__(self) -> str:
        return f"Archive({str(self.path)!r}, {len(self)} tensors)"

    @contextlib.contextmanager
    def _stored(self, name: str) -> Iterator[memoryview]:
        """Yield the checked stored bytes of ``name`` without copying them."""
        if self._map is None:
            raise ValueError("archive is closed")
        if name not in self.entries:
            raise KeyError(f"no tensor {name!r} in {self.path}")
        entry = self.entries[name]
        with (
            memoryview(self._map) as whole,
            whole[entry.offset : entry.offset + entry.length] as view,
        ):
            if zlib.crc32(view) != entry.crc32:
                raise DecodeError(f"tensor {name!r}: checksum mismatch (archive corrupt)")
            yield view

    def frame(self, name: str) -> bytes:
        """Return the stored bytes of ``name`` (a codec frame, or the raw bytes), checked.

        Raises
        ------
        KeyError
            If there is no such tensor.
        DecodeError
            If its checksum does not match.
        """
        with self._stored(name) as view:
            return bytes(view)

    def info(self, name: str) -> FrameInfo | None:
        """Return ``inspect`` of the frame of ``name``, or None for a raw tensor."""
        if self.entries[name].encoding != "sfp":
            return None
        with self._stored(name) as view:
            return inspect(view)

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
        with self._stored(name) as view:
            if entry.encoding == "raw":
                return np.frombuffer(view, dtype=DTYPES[entry.dtype]).reshape(entry.shape).copy()
            array = decode(view, threads=self._threads)
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

    @property
    def lossless(self) -> bool:
        """Whether every tensor is stored losslessly."""
        return all(e.lossless for e in self.entries.values())


def open(path: str | os.PathLike[str], *, threads: int | None = None) -> Archive:
    """Open an archive for random access (memory-mapped, lazy).

    Parameters
    ----------
    path : str or os.PathLike
    threads : int, optional
        Codec threads for decoding.

    Returns
    -------
    Archive
    """
    return Archive(path, threads=threads)


def load(
    path: str | os.PathLike[str], names: Iterable[str] | None = None, *, threads: int | None = None
) -> dict[str, np.ndarray]:
    """Read tensors from an archive.

    Parameters
    ----------
    path : str or os.PathLike
    names : iterable of str, optional
        The tensors to read (default: all); the others are not read.
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
    with Archive(path, threads=threads) as archive:
        wanted = list(archive) if names is None else list(names)
        missing = [n for n in wanted if n not in archive.entries]
        if missing:
            raise KeyError(f"no tensors {missing} in {path}")
        return {name: archive[name] for name in wanted}
