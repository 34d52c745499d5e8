"""encode, decode and quantize for the arrays training makes itself, without the per-call checks.

A training step calls the codec for every weight, output and saved tensor:
hundreds of calls on a few thousand to a few hundred thousand values each,
where the public functions' argument checks and dtype detection (the array's
dtype compared with each of seven ml_dtypes types in turn) cost as much as the
work on the smaller arrays. These call the core directly for C-contiguous
numpy arrays of the four window dtypes and a :class:`~schrodinger_fp.Format`,
which is what the adapter, the stash and the controllers hold, and hand
anything else to the public functions, so every result is theirs bit for bit.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from .. import _core
from .. import codec as _codec
from ..dtypes import numpy_dtype
from ..format import Format

__all__ = ["decode", "encode", "quantize"]

_NAMES: dict[np.dtype, str] = {
    np.dtype("<f4"): "float32",
    np.dtype("<f8"): "float64",
    np.dtype("<f2"): "float16",
    np.dtype(ml_dtypes.bfloat16): "bfloat16",
}


def _direct(a: object, fmt: object) -> str | None:
    """The dtype name of ``a`` when the core can take it as it is, else None."""
    if type(a) is not np.ndarray or not isinstance(fmt, Format) or not a.flags.c_contiguous:
        return None
    return _NAMES.get(a.dtype)


def _bytes(a: np.ndarray) -> memoryview:
    return a.reshape(-1).view(np.uint8).data


def encode(a: np.ndarray, fmt: Format, *, threads: int | None = None) -> bytes:
    """:func:`schrodinger_fp.encode` of ``a`` at ``fmt``."""
    name = _direct(a, fmt)
    if name is None:
        return _codec.encode(a, fmt, threads=threads)
    return _core.encode(_bytes(a), name, list(a.shape), fmt, None, threads)


def decode(frame: bytes, *, threads: int | None = None) -> np.ndarray:
    """:func:`schrodinger_fp.decode` of a frame :func:`encode` wrote."""
    if type(frame) is not bytes:
        return _codec.decode(frame, threads=threads)
    buf, name, shape = _core.decode(frame, threads, None)
    return np.frombuffer(buf, dtype=numpy_dtype(name)).reshape(shape)


def quantize(a: np.ndarray, fmt: Format, *, threads: int | None = None) -> np.ndarray:
    """:func:`schrodinger_fp.quantize` of ``a`` at ``fmt``, into a new array."""
    name = _direct(a, fmt)
    if name is None:
        return _codec.quantize(a, fmt, threads=threads)
    out = np.empty_like(a)
    _core.quantize(_bytes(a), _bytes(out), name, list(a.shape), fmt, threads)
    return out
