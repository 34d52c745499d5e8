"""The on-disk layout of an archive, its index entries, and strict parsing of both.

Layout (all integers little-endian)::

    offset 0     preamble, 16 bytes: MAGIC (8) | version u32 | flags u32 (0)
    offset 16    tensor blobs, in index order, each starting on a 64-byte boundary
    ...          index: UTF-8 JSON {"version": 1, "tensors": [entry, ...], "metadata": {str: str}}
    size - 32    trailer, 32 bytes: index offset u64 | index length u64 | index crc32 u32 |
                 version u32 | END_MAGIC (8)

The index follows the blobs so that an archive is written in one pass, one tensor at a
time, without knowing the sizes in advance; the fixed trailer finds it. Each entry holds
name, dtype, shape, encoding (``"sfp"``: a codec frame; ``"raw"``: the little-endian bytes
as they are), format (the requested ``Format`` as a dict, for ``"sfp"``), offset, length
and the crc32 of the stored bytes.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from schrodinger_fp.codec import DecodeError
from schrodinger_fp.dtypes import NARROW_DTYPES, SUPPORTED_DTYPES
from schrodinger_fp.format import Format

MAGIC = b"\x89SFP\r\n\x1a\n"
END_MAGIC = b"SFPAEND\x00"
VERSION = 1
PREAMBLE = struct.Struct("<8sII")
TRAILER = struct.Struct("<QQII8s")
ALIGN = 64
MAX_NAME_LEN = 1024
#: Entries named with this prefix hold a file's bytes, not a tensor (see ``checkpoint``).
FILE_PREFIX = "sfp.file:"

#: dtypes an archive stores, by the name written in the index.
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(name).newbyteorder("<")
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}
DTYPES.update({name: np.dtype(getattr(ml_dtypes, name)) for name in ("bfloat16", *NARROW_DTYPES)})
_ENTRY_KEYS = {"name", "dtype", "shape", "encoding", "format", "offset", "length", "crc32"}


def dtype_name(dtype: np.dtype[Any]) -> str:
    """Return the index name of ``dtype``.

    Parameters
    ----------
    dtype : numpy.dtype
        Any byte order.

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If an archive cannot store this dtype (objects, strings, structured types).
    """
    name = np.dtype(dtype).name
    if name not in DTYPES or DTYPES[name].kind != np.dtype(dtype).kind:
        raise TypeError(f"cannot store dtype {np.dtype(dtype)!s} in an archive")
    return name


def check_name(name: object) -> str:
    """Check that ``name`` is a usable tensor name and return it.

    Any non-empty string without control characters is a name: ``dense/kernel`` (Keras, JAX)
    and ``a..b`` included. Names only become paths when a tool writes one file per tensor,
    and that tool checks them with ``check_relative_path``.

    Parameters
    ----------
    name : object
        The candidate name.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If the name is not a string, is empty, too long, or holds control characters.
    """
    if not isinstance(name, str):
        raise ValueError(f"tensor name must be a string, got {name!r}")
    if not name or len(name) > MAX_NAME_LEN:
        raise ValueError(f"tensor name {name!r} must have 1 to {MAX_NAME_LEN} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(f"tensor name {name!r} must not contain control characters")
    return name


def check_relative_path(name: str) -> str:
    """Check that ``name``, used as a path, stays inside the directory it is written under.

    Parameters
    ----------
    name : str
        A tensor name about to become a file or zip member name, or a file of a checkpoint.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For an absolute path, a drive, a backslash, or an empty, ``.`` or ``..`` component.
    """
    parts = name.split("/")
    drive = len(parts[0]) >= 2 and parts[0][1] == ":"
    if "\\" in name or drive or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"name {name!r} cannot be used as a path: it must be relative, with no '\\', "
            "drive, empty, '.' or '..' component"
        )
    return name


@dataclass(frozen=True)
class Entry:
    """One tensor of an archive, as its index describes it.

    Attributes
    ----------
    name : str
    dtype : str
        Index dtype name (see ``DTYPES``).
    shape : tuple of int
    encoding : str
        ``"sfp"`` (a codec frame) or ``"raw"`` (the bytes as they are).
    format : Format or None
        The format the frame was encoded with; None for raw entries.
    offset, length : int
        Where the stored bytes lie in the file.
    crc32 : int
        crc32 of the stored bytes.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    encoding: str
    format: Format | None
    offset: int
    length: int
    crc32: int

    @property
    def nbytes(self) -> int:
        """Size of the decoded tensor in bytes."""
        return math.prod(self.shape) * DTYPES[self.dtype].itemsize

    @property
    def ratio(self) -> float:
        """Decoded size over stored size (1.0 for an empty tensor)."""
        return self.nbytes / self.length if self.length else 1.0

    @property
    def lossless(self) -> bool:
        """Whether the stored tensor decodes to exactly the tensor given to ``save``."""
        return self.format is None or self.format.is_lossless_for(self.dtype)

    def to_json(self) -> dict[str, Any]:
        """Return the entry as written in the index."""
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "encoding": self.encoding,
            "format": None if self.format is None else self.format.to_dict(),
            "offset": self.offset,
            "length": self.length,
            "crc32": self.crc32,
        }


def encode_index(entries: list[Entry], metadata: dict[str, str], index_offset: int) -> bytes:
    """Serialise the index and trailer that close an archive.

    Parameters
    ----------
    entries : list of Entry
    metadata : dict of str to str
    index_offset : int
        File offset at which the index will be written.

    Returns
    -------
    bytes
        The index followed by the trailer.
    """
    doc = {"version": VERSION, "tensors": [e.to_json() for e in entries], "metadata": metadata}
    index = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    trailer = TRAILER.pack(index_offset, len(index), zlib.crc32(index), VERSION, END_MAGIC)
    return index + trailer


def parse(buf: memoryview | bytes) -> tuple[list[Entry], dict[str, str]]:
    """Parse and check the preamble, trailer and index of a whole archive held in memory.

    Parameters
    ----------
    buf : bytes-like
        The complete archive.

    Returns
    -------
    entries : list of Entry
    metadata : dict of str to str

    Raises
    ------
    DecodeError
        As ``parse_from``.
    """
    return parse_from(len(buf), lambda offset, length: bytes(buf[offset : offset + length]))


def parse_from(
    size: int, read: Callable[[int, int], bytes | bytearray]
) -> tuple[list[Entry], dict[str, str]]:
    """Parse and check the preamble, trailer and index of an archive of ``size`` bytes.

    Parameters
    ----------
    size : int
        The archive's length in bytes.
    read : callable
        ``read(offset, length)`` returns those bytes of the archive.

    Returns
    -------
    entries : list of Entry
    metadata : dict of str to str

    Raises
    ------
    DecodeError
        If anything is malformed: wrong magic, unknown version, truncation, a bad index
        checksum, an entry out of bounds or overlapping another, a duplicate or unusable
        name, an unknown dtype, a size that does not match the shape.
    """
    if size < PREAMBLE.size + TRAILER.size:
        head = bytes(read(0, min(size, 8)))
        if head != MAGIC[: len(head)]:
            raise DecodeError("not a schrodinger-fp archive (wrong magic)")
        raise DecodeError(f"archive truncated: {size} bytes")
    magic, version, flags = PREAMBLE.unpack(read(0, PREAMBLE.size))
    if magic != MAGIC:
        raise DecodeError("not a schrodinger-fp archive (wrong magic)")
    if version != VERSION:
        raise DecodeError(f"archive version {version} not supported (this build reads {VERSION})")
    if flags != 0:
        raise DecodeError(f"archive flags {flags:#x} not supported")
    index_offset, index_len, index_crc, end_version, end_magic = TRAILER.unpack(
        read(size - TRAILER.size, TRAILER.size)
    )
    if end_magic != END_MAGIC:
        raise DecodeError("archive truncated or corrupt: trailer not found")
    if end_version != VERSION:
        raise DecodeError(f"archive trailer version {end_version} does not match {VERSION}")
    if index_offset < PREAMBLE.size or index_offset + index_len != size - TRAILER.size:
        raise DecodeError(f"archive index bounds [{index_offset}, +{index_len}) do not fit")
    index = bytes(read(index_offset, index_len))
    if zlib.crc32(index) != index_crc:
        raise DecodeError("archive index checksum mismatch")
    doc = _load_json(index)
    if not isinstance(doc, dict) or set(doc) != {"version", "tensors", "metadata"}:
        raise DecodeError("archive index must hold exactly version, tensors and metadata")
    if doc["version"] != VERSION:
        raise DecodeError(f"archive index version {doc['version']!r} does not match {VERSION}")
    metadata = doc["metadata"]
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise DecodeError("archive metadata must map strings to strings")
    if not isinstance(doc["tensors"], list):
        raise DecodeError("archive index 'tensors' must be a list")
    entries: list[Entry] = []
    seen: set[str] = set()
    end = PREAMBLE.size
    for i, raw in enumerate(doc["tensors"]):
        entry = _parse_entry(raw, i)
        if entry.name in seen:
            raise DecodeError(f"archive holds tensor {entry.name!r} twice")
        seen.add(entry.name)
        if entry.offset < end or entry.offset + entry.length > index_offset:
            raise DecodeError(
                f"tensor {entry.name!r}: bytes [{entry.offset}, +{entry.length}) overlap "
                "another tensor or lie outside the data region"
            )
        end = entry.offset + entry.length
        entries.append(entry)
    return entries, metadata


def _load_json(data: bytes) -> Any:
    """Parse JSON, refusing duplicate keys."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DecodeError(f"archive index repeats key {key!r}")
            out[key] = value
        return out

    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(f"archive index is not valid JSON: {exc}") from None
    except RecursionError:
        # A hostile index nested thousands of levels deep: no real index nests more than 3.
        raise DecodeError("archive index is nested too deeply") from None


def _is_uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_entry(raw: object, i: int) -> Entry:
    """Check one index entry and build it."""
    if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
        raise DecodeError(f"archive entry {i} must hold exactly {sorted(_ENTRY_KEYS)}")
    try:
        name = check_name(raw["name"])
    except ValueError as exc:
        raise DecodeError(f"archive entry {i}: {exc}") from None
    dtype, shape, encoding = raw["dtype"], raw["shape"], raw["encoding"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise DecodeError(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape) or len(shape) > 64:
        raise DecodeError(f"tensor {name!r}: invalid shape {shape!r}")
    if not all(_is_uint(raw[k]) for k in ("offset", "length", "crc32")) or raw["crc32"] >= 2**32:
        raise DecodeError(f"tensor {name!r}: offset, length and crc32 must be unsigned integers")
    fmt = None
    if encoding == "raw":
        if raw["format"] is not None:
            raise DecodeError(f"tensor {name!r}: a raw tensor has no format")
        if raw["length"] != math.prod(shape) * DTYPES[dtype].itemsize:
            raise DecodeError(
                f"tensor {name!r}: {raw['length']} bytes do not hold {dtype} {tuple(shape)}"
            )
    elif encoding == "sfp":
        if dtype not in SUPPORTED_DTYPES:
            raise DecodeError(f"tensor {name!r}: the codec does not encode {dtype}")
        if not isinstance(raw["format"], dict):
            raise DecodeError(f"tensor {name!r}: format must be an object")
        try:
            fmt = Format.from_dict(raw["format"])
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"tensor {name!r}: invalid format {raw['format']!r}: {exc}") from None
    else:
        raise DecodeError(f"tensor {name!r}: unknown encoding {encoding!r}")
    return Entry(
        name, dtype, tuple(shape), encoding, fmt, raw["offset"], raw["length"], raw["crc32"]
    )


def padding(position: int) -> bytes:
    """Return the zero bytes that bring ``position`` to the next ``ALIGN`` boundary."""
    return b"\0" * (-position % ALIGN)
