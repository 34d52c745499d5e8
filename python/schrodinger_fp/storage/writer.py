"""Writing archives: ``ArchiveWriter`` streams tensors one at a time, ``save`` writes a file.

Float tensors of the codec's dtypes are stored as codec frames in the format the policy names
(lossless by default); every other tensor (int64 buffers, bool masks, ...) is stored as its raw
little-endian bytes. A path is written through a temporary file that is renamed at the end, so
a dump larger than memory can be converted and no partial file is ever left behind.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, BinaryIO

import numpy as np

from schrodinger_fp.codec import encode
from schrodinger_fp.dtypes import NARROW_DTYPES, SUPPORTED_DTYPES, byte_view
from schrodinger_fp.format import FIELD_WIDTHS, Format
from schrodinger_fp.seeds import with_derived_seed
from schrodinger_fp.storage.atomic import atomic_output
from schrodinger_fp.storage.index import (
    DTYPES,
    FILE_PREFIX,
    MAGIC,
    PREAMBLE,
    VERSION,
    Entry,
    check_name,
    dtype_name,
    encode_index,
    padding,
)
from schrodinger_fp.training.policy import PolicyLike, format_lookup

__all__ = ["ArchiveWriter", "fit_format", "save"]

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

    def __init__(
        self, stream: BinaryIO, *, threads: int | None = None, clamp: bool = False
    ) -> None:
        self._stream = stream
        self._threads = threads
        self._clamp = clamp
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
            Tensor name: unique, non-empty, no control characters.
        array : array_like
            The tensor. Float tensors of ``SUPPORTED_DTYPES`` are encoded with ``fmt``; others
            are stored raw and ``fmt`` is ignored for them.
        fmt : Format, optional
            Target format; None is lossless. With stochastic rounding or underflow, the tensor
            rounds with a seed derived from ``fmt.seed`` and its name (see ``seeds``); the
            entry's format records the derived seed, so ``quantize(x, entry.format)``
            reproduces the stored values.

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
        if check_name(name).startswith(FILE_PREFIX):
            raise ValueError(f"tensor name {name!r} must not start with {FILE_PREFIX!r}")
        return self._add(name, array, fmt)

    def add_file(self, path: str, data: bytes | np.ndarray) -> Entry:
        """Store the bytes of a file (a checkpoint's config, tokenizer, shard index).

        Parameters
        ----------
        path : str
            The file's relative path; ``Archive.files`` and ``Archive.file`` find it by it.
        data : bytes or uint8 array

        Returns
        -------
        Entry
        """
        blob = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
        return self._add(FILE_PREFIX + path, blob, None)

    def _add(self, name: str, array: Any, fmt: Format | None) -> Entry:
        if self._finished:
            raise ValueError("archive already finished")
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
            if fmt is not None:
                fmt = with_derived_seed(
                    fit_format(fmt, dtype) if self._clamp else fmt, name.encode()
                )
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


def fit_format(fmt: Format, dtype: str) -> Format:
    """Return ``fmt`` with each field clamped to ``dtype``'s width (kept whole where wider).

    One format for a checkpoint of several dtypes (``man_bits=8`` over float32 and bfloat16)
    keeps 8 mantissa bits of float32 and all 7 of bfloat16, instead of refusing bfloat16; the
    one-byte types (FP8, ...) are kept whole, and a named container is kept as it is.

    Parameters
    ----------
    fmt : Format
    dtype : str
        One of ``SUPPORTED_DTYPES``.

    Returns
    -------
    Format
    """
    if dtype in NARROW_DTYPES:
        # A one-byte type is stored as it is: keep only how it is coded.
        return Format(exponent_coding=fmt.exponent_coding, level=fmt.level)
    if fmt.container is not None:
        return fmt
    src_e, src_m = FIELD_WIDTHS[dtype]
    changes: dict[str, Any] = {}
    if fmt.man_bits is not None and fmt.man_bits > src_m:
        changes["man_bits"] = None
    if fmt.exp_bits is not None and fmt.exp_bits >= src_e:
        changes.update(exp_bits=None, window_top=None)
    return replace(fmt, **changes) if changes else fmt


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
    clamp: bool = False,
    mode: int | None = None,
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
    clamp : bool, default False
        Clamp a format field wider than a tensor's dtype to that dtype (``fit_format``)
        instead of refusing it, so one format applies to a checkpoint of several dtypes.
    mode : int, optional
        Permission bits of the file written at ``path`` (default: ``0o666`` less the umask).

    Returns
    -------
    list of Entry
        The index of the written archive.

    Raises
    ------
    ValueError
        Empty, duplicate or control-character names, invalid formats.
    TypeError
        A dtype that cannot be stored, or a policy of the wrong type.
    FileExistsError
        If ``overwrite`` is False and ``path`` exists.
    OSError
        If writing fails; no file is left at ``path`` (or the old one stays).
    """
    lookup = format_lookup(policy)

    def write(stream: BinaryIO) -> list[Entry]:
        writer = ArchiveWriter(stream, threads=threads, clamp=clamp)
        for name, array in _items(tensors):
            entry = writer.add(name, array, lookup(name))
            if progress is not None:
                progress(entry)
        return writer.finish(metadata)

    if hasattr(path, "write"):
        return write(path)  # type: ignore[arg-type]
    with atomic_output(path, overwrite=overwrite, mode=mode) as stream:  # type: ignore[arg-type]
        return write(stream)
