"""Block-scaled data as codes: the element codes and block scales an MX or NVFP4 array holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .codec import encode
from .dtypes import WIDE_DTYPES, byte_view, numpy_dtype, resolve
from .format import BLOCK_FORMATS, DEFAULT_LEVEL, Format

_ELEMENTS: dict[str, str] = {
    "mxfp8_e4m3": "float8_e4m3fn",
    "mxfp8_e5m2": "float8_e5m2",
    "mxfp6_e2m3": "float6_e2m3fn",
    "mxfp6_e3m2": "float6_e3m2fn",
    "mxfp4": "float4_e2m1fn",
    "nvfp4": "float4_e2m1fn",
}


@dataclass(frozen=True)
class BlockCodes:
    """An array in a block format, as its codes.

    Attributes
    ----------
    container
        The block format (``"mxfp8_e4m3"``, ..., ``"nvfp4"``).
    elements
        The element codes, of the array's shape (ml_dtypes ``float8_e4m3fn``, ``float4_e2m1fn``,
        ...).
    scales
        One scale per block of the last axis (``float8_e8m0fnu``; ``float8_e4m3fn`` for NVFP4),
        of the array's shape with the last axis counted in blocks.
    tensor_scale
        NVFP4's float32 scale of the whole tensor; ``None`` for the MX formats.
    dtype
        The type the values decode to.
    """

    container: str
    elements: np.ndarray
    scales: np.ndarray
    tensor_scale: float | None
    dtype: str = "float32"


def to_blocks(x: Any, fmt: Format) -> BlockCodes:
    """The codes ``encode(x, fmt)`` stores for a block format ``fmt``.

    Raises
    ------
    ValueError
        When ``fmt`` is not a block format.
    """
    if not fmt.is_block:
        raise ValueError(f"to_blocks needs a block format ({', '.join(BLOCK_FORMATS)}), got {fmt}")
    return decode_blocks(encode(x, fmt))


def encode_blocks(
    codes: BlockCodes,
    *,
    exponent_coding: str = "auto",
    level: int = DEFAULT_LEVEL,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> bytes:
    """Encode data already in a block format, losslessly: ``decode_blocks`` returns the same codes,
    and ``decode`` the values they stand for.

    Raises
    ------
    TypeError
        When the elements or scales are not of the format's types.
    ValueError
        When their shapes do not fit each other, or the tensor scale is missing or not expected.
    """
    fmt = Format.named(codes.container, exponent_coding=exponent_coding, level=level)
    element = _ELEMENTS[codes.container]
    scale = "float8_e4m3fn" if codes.container == "nvfp4" else "float8_e8m0fnu"
    elements, name = resolve(codes.elements)
    scales, scale_name = resolve(codes.scales)
    if name != element or scale_name != scale:
        raise TypeError(
            f"{codes.container} holds {element} elements and {scale} scales, "
            f"got {name} and {scale_name}"
        )
    if codes.dtype not in WIDE_DTYPES:
        raise TypeError(f"dtype={codes.dtype!r} is not one of {', '.join(WIDE_DTYPES)}")
    ts = None if codes.tensor_scale is None else float(codes.tensor_scale)
    return _core.encode_blocks(
        byte_view(elements),
        byte_view(scales),
        ts,
        codes.container,
        codes.dtype,
        [int(d) for d in elements.shape],
        fmt,
        chunk_size,
        threads,
    )


def decode_blocks(data: Any, *, threads: int | None = None) -> BlockCodes:
    """The codes of a block-format frame.

    Raises
    ------
    DecodeError
        When the data is corrupt or is not a block-format frame.
    """
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    elements, scales, ts, container, dtype, shape = _core.decode_blocks(view, threads)
    scale = "float8_e4m3fn" if container == "nvfp4" else "float8_e8m0fnu"
    scale_shape = [*shape[:-1], -(-shape[-1] // (16 if container == "nvfp4" else 32))]
    if not shape:
        scale_shape = [1]
    return BlockCodes(
        container=container,
        elements=np.frombuffer(elements, numpy_dtype(_ELEMENTS[container])).reshape(shape),
        scales=np.frombuffer(scales, numpy_dtype(scale)).reshape(scale_shape),
        tensor_scale=float(ts) if container == "nvfp4" else None,
        dtype=dtype,
    )
