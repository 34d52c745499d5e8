"""The source element types and how numpy arrays of them reach the core as little-endian bytes."""

from __future__ import annotations

import sys

import ml_dtypes
import numpy as np

#: The types whose exponent and mantissa a window format reduces.
WIDE_DTYPES: tuple[str, ...] = ("float32", "float64", "float16", "bfloat16")
#: The one-byte types (ml_dtypes): stored losslessly, and the elements and scales of block formats.
NARROW_DTYPES: tuple[str, ...] = (
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e8m0fnu",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float4_e2m1fn",
)
SUPPORTED_DTYPES: tuple[str, ...] = WIDE_DTYPES + NARROW_DTYPES

_NUMPY: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    **{name: np.dtype(getattr(ml_dtypes, name)) for name in NARROW_DTYPES},
}

if sys.byteorder != "little":  # pragma: no cover - no big-endian CI machine
    raise ImportError("schrodinger_fp needs a little-endian machine")


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a supported type name."""
    return _NUMPY[name]


def _name_of(dt: np.dtype) -> str | None:
    for name in ("bfloat16", *NARROW_DTYPES):
        if dt == _NUMPY[name]:
            return name
    if dt.kind == "f":
        return {2: "float16", 4: "float32", 8: "float64"}.get(dt.itemsize)
    return None


def resolve(x: object, dtype: str | None = None) -> tuple[np.ndarray, str]:
    """The array as C-contiguous little-endian elements, and the name of its type.

    ``dtype`` names the type of raw bits held in an unsigned-integer array of the same width (a
    ``uint16`` view of bfloat16 data, say); for a float array it must agree with the array's type.
    Non-contiguous input is copied; big-endian input is converted to little-endian (a copy).

    Raises
    ------
    TypeError
        For an unsupported element type.
    ValueError
        For a ``dtype`` that disagrees with the array.
    """
    arr = np.asarray(x)
    if dtype is not None and dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"dtype {dtype!r} is not supported: use {', '.join(SUPPORTED_DTYPES)}")
    name = _name_of(arr.dtype)
    if name is None:
        size = _NUMPY[dtype].itemsize if dtype is not None else None
        if dtype is None or arr.dtype.kind != "u" or arr.dtype.itemsize != size:
            hint = "" if dtype is None else f" as raw bits of {dtype} (needs uint{8 * (size or 0)})"
            raise TypeError(
                f"dtype {arr.dtype} is not supported{hint}: use {', '.join(SUPPORTED_DTYPES)}"
                " (bfloat16 from ml_dtypes, or a uint16 view with dtype='bfloat16')"
            )
        name = dtype
    elif dtype is not None and dtype != name:
        raise ValueError(f"dtype={dtype!r} does not match the array's {name}; cast it first")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return (arr if arr.flags.c_contiguous else arr.copy(order="C")), name


def byte_view(arr: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array as a flat byte buffer (no copy)."""
    return arr.reshape(-1).view(np.uint8).data
