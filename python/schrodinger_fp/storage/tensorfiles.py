"""Reading and writing tensor dump files: safetensors, npy, npz, and PyTorch state dicts.

Readers are lazy: ``open_tensors`` parses the header and hands out one tensor at a time
(safetensors tensor by tensor, npy memory-mapped), so a dump larger than memory converts.
Headers are checked strictly: a safetensors header whose offsets overlap, run past the
file or disagree with the shapes is refused, and so are duplicate or path-like names.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from schrodinger_fp.storage.index import DTYPES, check_name, check_relative_path
from schrodinger_fp.storage.source import ByteSource

#: safetensors dtype tag <-> archive dtype name.
SAFETENSORS_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "I32": "int32",
    "U32": "uint32",
    "I64": "int64",
    "U64": "uint64",
    "F16": "float16",
    "BF16": "bfloat16",
    "F32": "float32",
    "F64": "float64",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
    "C64": "complex64",
}
_TO_SAFETENSORS = {v: k for k, v in SAFETENSORS_DTYPES.items()}
MAX_HEADER = 100 * 2**20
SUFFIXES = {".safetensors": "safetensors", ".npy": "npy", ".npz": "npz", ".pt": "pt", ".pth": "pt"}
NPY_NAME = "arr_0"


class TensorFileError(ValueError):
    """A tensor file that cannot be read: malformed, lying header, bad names."""


@dataclass
class TensorFile:
    """An opened tensor dump: names and sizes known, tensors read on demand.

    Attributes
    ----------
    kind : str
        ``"safetensors"``, ``"npy"``, ``"npz"`` or ``"pt"``.
    names : list of str
    nbytes : int
        Total size of all tensors.
    metadata : dict of str to str
        safetensors ``__metadata__`` (empty for the others).
    header : bytes or None
        A safetensors file's header exactly as stored (JSON and padding), when its data
        section is exactly the tensors in ``names`` order, back to back: then the header and
        the tensors' bytes rebuild the file byte for byte. None otherwise.
    """

    kind: str
    names: list[str]
    nbytes: int
    get: Callable[[str], np.ndarray] | None
    metadata: dict[str, str] = field(default_factory=dict)
    header: bytes | None = None
    stream: Callable[[], Iterator[tuple[str, np.ndarray]]] | None = None

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """Yield ``(name, array)`` one tensor at a time, in file order."""
        if self.stream is not None:
            yield from self.stream()
            return
        get = self.get
        if get is None:
            raise TensorFileError("a tensor file gives either a stream or random access")
        for name in self.names:
            yield name, get(name)


def kind_of(path: str | Path) -> str:
    """Return the dump type of ``path`` from its suffix.

    Raises
    ------
    TensorFileError
        If the suffix is not one of ``SUFFIXES``.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise TensorFileError(
            f"{path}: unknown input type {suffix or '(no suffix)'!r}; "
            "expected .safetensors, .npy, .npz or .pt"
        )
    return SUFFIXES[suffix]


def open_tensors(path: str | Path) -> TensorFile:
    """Open a tensor dump for reading.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    TensorFile

    Raises
    ------
    TensorFileError
        If the file is malformed or holds bad names; ``OSError`` if it cannot be read.
    """
    kind = kind_of(path)
    reader = {"safetensors": _open_safetensors, "npy": _open_npy, "npz": _open_npz, "pt": _open_pt}
    return reader[kind](Path(path))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise TensorFileError(f"duplicate tensor name {key!r}")
        out[key] = value
    return out


def _checked_name(path: str | Path, name: str) -> str:
    try:
        return check_name(name)
    except ValueError as exc:
        raise TensorFileError(f"{path}: {exc}") from None


def _open_safetensors(path: Path) -> TensorFile:
    # Tensors are read, not mapped: a mapped file truncated by another process would kill
    # the reader with SIGBUS, leaving its temporary output behind; a short read is an error.
    source = ByteSource(path, str(path))
    size = source.size()
    if size < 8:
        raise TensorFileError(f"{path}: truncated safetensors file ({size} bytes)")
    (header_len,) = struct.unpack("<Q", source.read_at(0, 8))
    if header_len > min(MAX_HEADER, size - 8):
        raise TensorFileError(f"{path}: safetensors header length {header_len} exceeds the file")
    raw_header = bytes(source.read_at(8, header_len))
    layout = _SafetensorsLayout.parse(str(path), raw_header, size - 8 - header_len)
    data_start = 8 + header_len

    def get(name: str) -> np.ndarray:
        dtype, shape, offset = layout.tensors[name]
        data = source.read_at(data_start + offset, math.prod(shape) * dtype.itemsize)
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    header = raw_header if layout.dense else None
    return TensorFile(
        "safetensors", layout.names, layout.nbytes, get, layout.metadata, header=header
    )


def read_stream(stream: BinaryIO, name: str = "<stdin>") -> TensorFile:
    """Read a safetensors or ``.npy`` stream (a pipe) one tensor at a time, in order.

    The type is told by the first bytes. ``.npz`` and PyTorch files keep their directory
    at the end and cannot be read from a pipe.

    Raises
    ------
    TensorFileError
        For another type, a malformed header, or a stream that ends early.
    """
    head = _read_exactly(stream, 8, name, "header")
    if head[:6] == b"\x93NUMPY":
        rest = stream.read()
        try:
            array = np.load(io.BytesIO(head + rest), allow_pickle=False)
        except ValueError as exc:
            raise TensorFileError(f"{name}: not a readable .npy stream: {exc}") from None
        return TensorFile("npy", [NPY_NAME], array.nbytes, lambda _: array)
    if head[:2] == b"PK":
        raise TensorFileError(
            f"{name}: an .npz cannot be read from a pipe (its directory is at its end); "
            "give the file name"
        )
    (header_len,) = struct.unpack("<Q", head)
    if header_len > MAX_HEADER:
        raise TensorFileError(
            f"{name}: not a safetensors or .npy stream (header length {header_len}); "
            ".npz and .pt cannot be read from a pipe, give the file name"
        )
    raw_header = _read_exactly(stream, header_len, name, "header")
    layout = _SafetensorsLayout.parse(name, raw_header, None)

    def tensors() -> Iterator[tuple[str, np.ndarray]]:
        position = 0
        for tensor in layout.names:
            dtype, shape, offset = layout.tensors[tensor]
            _read_exactly(stream, offset - position, name, f"gap before {tensor!r}")
            nbytes = math.prod(shape) * dtype.itemsize
            data = bytearray(_read_exactly(stream, nbytes, name, f"tensor {tensor!r}"))
            position = offset + nbytes
            yield tensor, np.frombuffer(data, dtype=dtype).reshape(shape)

    return TensorFile(
        "safetensors", layout.names, layout.nbytes, None, layout.metadata, stream=tensors
    )


def _read_exactly(stream: BinaryIO, count: int, name: str, what: str) -> bytes:
    chunks, left = [], count
    while left:
        chunk = stream.read(min(left, 1 << 24))
        if not chunk:
            raise TensorFileError(f"{name}: stream ends inside the {what}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@dataclass
class _SafetensorsLayout:
    """A checked safetensors header: each tensor's dtype, shape and data offset."""

    names: list[str]
    tensors: dict[str, tuple[np.dtype[Any], tuple[int, ...], int]]
    metadata: dict[str, str]
    nbytes: int
    dense: bool

    @classmethod
    def parse(cls, path: str, raw: bytes, data_len: int | None) -> _SafetensorsLayout:
        """Check a header against a data section of ``data_len`` bytes (None: unknown)."""
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TensorFileError(f"{path}: safetensors header is not valid JSON: {exc}") from None
        except TensorFileError as exc:
            raise TensorFileError(f"{path}: {exc}") from None
        if not isinstance(header, dict):
            raise TensorFileError(f"{path}: safetensors header must be a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise TensorFileError(f"{path}: safetensors __metadata__ must map strings to strings")
        tensors: dict[str, tuple[np.dtype[Any], tuple[int, ...], int]] = {}
        spans = []
        for name, spec in header.items():
            _checked_name(path, name)
            if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
                raise TensorFileError(
                    f"{path}: tensor {name!r}: entry must hold dtype, shape, data_offsets"
                )
            tag, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
            if tag not in SAFETENSORS_DTYPES:
                raise TensorFileError(f"{path}: tensor {name!r}: unknown dtype {tag!r}")
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise TensorFileError(f"{path}: tensor {name!r}: invalid shape {shape!r}")
            if (
                not isinstance(offsets, list)
                or len(offsets) != 2
                or not all(isinstance(o, int) and o >= 0 for o in offsets)
            ):
                raise TensorFileError(f"{path}: tensor {name!r}: invalid data_offsets {offsets!r}")
            dtype = DTYPES[SAFETENSORS_DTYPES[tag]]
            begin, end = offsets
            need = math.prod(shape) * dtype.itemsize
            limit = data_len if data_len is not None else end
            if end < begin or end > limit or end - begin != need:
                raise TensorFileError(
                    f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] do not hold {need} "
                    f"bytes inside the {limit}-byte data section"
                )
            tensors[name] = (dtype, tuple(shape), begin)
            spans.append((begin, end, name))
        spans.sort()
        reach, last, dense = 0, "", True
        for begin, end, name in spans:
            dense = dense and begin == reach
            if end > begin:
                if begin < reach:
                    raise TensorFileError(f"{path}: tensors {last!r} and {name!r} overlap")
                reach, last = end, name
        dense = dense and (data_len is None or reach == data_len)
        names = [name for _, _, name in spans]
        nbytes = sum(end - begin for begin, end, _ in spans)
        return cls(names, tensors, dict(metadata), nbytes, dense)


def _open_npy(path: Path) -> TensorFile:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise TensorFileError(f"{path}: not a readable .npy file: {exc}") from None
    if not isinstance(array, np.ndarray):
        raise TensorFileError(f"{path}: not a .npy file")
    return TensorFile("npy", [NPY_NAME], array.nbytes, lambda name: np.asarray(array))


def _open_npz(path: Path) -> TensorFile:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise TensorFileError(f"{path}: not a valid .npz file: {exc}") from None
    names = [m[: -len(".npy")] if m.endswith(".npy") else m for m in members]
    seen: set[str] = set()
    for name in names:
        _checked_name(path, name)
        if name in seen:
            raise TensorFileError(f"{path}: duplicate tensor name {name!r}")
        seen.add(name)

    def get(name: str) -> np.ndarray:
        try:
            return npz[name]
        except (ValueError, zipfile.BadZipFile, EOFError, OSError) as exc:
            raise TensorFileError(f"{path}: tensor {name!r} is unreadable: {exc}") from None

    total = 0
    for member in zipfile.ZipFile(path).infolist():
        total += member.file_size
    return TensorFile("npz", names, total, get)


def _open_pt(path: Path) -> TensorFile:
    try:
        import torch
    except ImportError:
        raise TensorFileError(
            f"{path}: reading .pt files needs PyTorch (pip install torch)"
        ) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise TensorFileError(f"{path}: not a loadable PyTorch file: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise TensorFileError(f"{path}: expected a state dict (a flat dict of names to tensors)")
    for name in state:
        _checked_name(path, name)
    special = {torch.bfloat16: ("int16", "bfloat16")}
    for tname in ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"):
        ours = tname
        if hasattr(torch, tname):
            special[getattr(torch, tname)] = ("uint8", ours)

    def get(name: str) -> np.ndarray:
        tensor = state[name].detach().cpu().contiguous()
        if tensor.dtype in special:
            view, ours = special[tensor.dtype]
            return tensor.view(getattr(torch, view)).numpy().view(DTYPES[ours])
        return tensor.numpy()

    total = sum(t.numel() * t.element_size() for t in state.values())
    return TensorFile("pt", list(state), total, get)


def write_safetensors(
    stream: BinaryIO,
    specs: list[tuple[str, str, tuple[int, ...]]],
    arrays: Iterable[np.ndarray],
    metadata: dict[str, str] | None = None,
) -> None:
    """Stream a safetensors file: the header from ``specs``, then each array in turn.

    Parameters
    ----------
    stream : BinaryIO
    specs : list of (name, dtype name, shape)
        Every tensor, in the order ``arrays`` yields them.
    arrays : iterable of numpy.ndarray
    metadata : dict of str to str, optional
        Written as ``__metadata__``.

    Raises
    ------
    TypeError
        If a dtype has no safetensors tag (complex128).
    ValueError
        If an array does not match its spec.
    """
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape in specs:
        if dtype not in _TO_SAFETENSORS:
            raise TypeError(f"tensor {name!r}: safetensors cannot store {dtype}")
        nbytes = math.prod(shape) * DTYPES[dtype].itemsize
        header[name] = {
            "dtype": _TO_SAFETENSORS[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    stream.write(struct.pack("<Q", len(blob)) + blob)
    for (name, dtype, shape), array in zip(specs, arrays, strict=True):
        if array.dtype != DTYPES[dtype] or array.shape != shape:
            raise ValueError(
                f"tensor {name!r}: got {array.dtype} {array.shape}, header says {dtype} {shape}"
            )
        stream.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)


def write_npz(stream: BinaryIO, items: Iterable[tuple[str, np.ndarray]]) -> None:
    """Stream an uncompressed ``.npz`` (one ``NAME.npy`` member per tensor).

    Raises
    ------
    TypeError
        For dtypes that ``.npy`` cannot record (bfloat16, float8: use safetensors).
    """
    with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in items:
            _check_npy_dtype(name, array)
            member_name = check_relative_path(check_name(name)) + ".npy"
            with archive.open(member_name, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def write_npy(stream: BinaryIO, array: np.ndarray) -> None:
    """Write one array as ``.npy``.

    Raises
    ------
    TypeError
        For dtypes that ``.npy`` cannot record (bfloat16, float8).
    """
    _check_npy_dtype(NPY_NAME, array)
    np.lib.format.write_array(stream, array, allow_pickle=False)


def _check_npy_dtype(name: str, array: np.ndarray) -> None:
    if array.dtype.kind == "V":
        raise TypeError(
            f"tensor {name!r}: .npy cannot record {array.dtype} (it would read back as raw "
            "bytes); write safetensors instead"
        )
