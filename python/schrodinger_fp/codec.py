"""encode, decode, quantize and inspect: numpy arrays in and out, the work done in Rust."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from .dtypes import SUPPORTED_DTYPES, byte_view, numpy_dtype, resolve
from .format import FIELD_WIDTHS, Format, as_int

DecodeError = _core.DecodeError

_LOSSLESS = Format()


def encode(
    x: Any,
    fmt: Format | None = None,
    *,
    dtype: str | None = None,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> bytes:
    """Compress an array into a self-describing frame.

    Parameters
    ----------
    x
        A float32, float64, float16 or bfloat16 (ml_dtypes) array of any shape; or an unsigned
        integer array holding the raw bits of one of those, with ``dtype`` naming it.
        Non-contiguous arrays are copied first.
    fmt
        The container to store; ``None`` is lossless.
    dtype
        The type of raw bits in an unsigned integer array.
    chunk_size
        Values per independently coded chunk (1 .. 2**20, default 2**20). Changes the frame, never
        the values.
    threads
        Worker threads (default: one per core). Never changes the output.

    Returns
    -------
    bytes
        The frame; ``decode`` restores ``quantize(x, fmt)`` from it, bit for bit.
    """
    fmt = _LOSSLESS if fmt is None else _check_format(fmt)
    chunk_size = _count("chunk_size", chunk_size)
    threads = _count("threads", threads)
    arr, name = resolve(x, dtype)
    shape = [int(d) for d in arr.shape]
    return _core.encode(byte_view(arr), name, shape, fmt, chunk_size, threads)


def decode(
    data: Any,
    *,
    out: np.ndarray | None = None,
    threads: int | None = None,
    max_nbytes: int | None = None,
) -> np.ndarray:
    """Restore the array held in a frame.

    Parameters
    ----------
    data
        The frame: bytes, bytearray, memoryview or a ``uint8`` array.
    out
        An array to decode into: C-contiguous, writable, of the frame's shape and dtype (or an
        unsigned integer array of the same width, which receives the raw bits).
    threads
        Worker threads (default: one per core). Never changes the result.
    max_nbytes
        Refuse frames whose array would be larger than this many bytes (a guard for untrusted
        input: a small frame can describe a huge array).

    Raises
    ------
    DecodeError
        When the data is corrupt, truncated or not a frame, or holds more than ``max_nbytes``.
    """
    threads = _count("threads", threads)
    frame = _frame_bytes(data)
    if out is None:
        buf, name, shape = _core.decode(frame, threads, max_nbytes)
        return np.frombuffer(buf, dtype=numpy_dtype(name)).reshape(shape)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")
    if np.shares_memory(out, np.frombuffer(frame, dtype=np.uint8)):
        raise ValueError("out overlaps the frame being decoded")
    raw_bits = out.dtype.kind == "u" and out.dtype.byteorder != ">"
    name = next((n for n in SUPPORTED_DTYPES if numpy_dtype(n) == out.dtype), str(out.dtype))
    _core.decode_into(frame, byte_view(out), list(out.shape), name, raw_bits, threads, max_nbytes)
    return out


def quantize(
    x: Any,
    fmt: Format,
    *,
    dtype: str | None = None,
    out: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """The reduction ``encode`` stores, as an array of the source's type (fake quantization).

    A block format (``Format.named("mxfp8_e4m3")``) scales blocks along the last axis of ``x``.
    ``out=x`` reduces in place; another ``out`` must be C-contiguous, writable, of ``x``'s dtype and
    shape, and must not overlap ``x``.
    """
    fmt = _check_format(fmt)
    threads = _count("threads", threads)
    if out is not None and out is x and isinstance(x, np.ndarray):
        _check_out(out, x.dtype, x.shape)
        if x.dtype.byteorder == ">":
            raise ValueError("in-place quantize needs a little-endian array")
        name = resolve(x, dtype)[1]
        _core.quantize(None, byte_view(out), name, list(out.shape), fmt, threads)
        return out
    arr, name = resolve(x, dtype)
    if out is None:
        out = np.empty_like(arr)
    else:
        _check_out(out, arr.dtype, arr.shape)
        if np.shares_memory(out, arr):
            raise ValueError("out overlaps x without being x: pass out=x to quantize in place")
    _core.quantize(byte_view(arr), byte_view(out), name, list(arr.shape), fmt, threads)
    return out


@dataclass(frozen=True)
class FrameInfo:
    """What a frame holds, read without decoding it.

    Attributes
    ----------
    streams
        Bytes per stream over all chunks: header, signs, exponents, mantissas, exceptions.
    coders
        How many chunks used each exponent coder.
    mantissa_coders
        How many chunks used each mantissa coding: ``"flat"`` (packed), or ``"lanes"`` (byte lanes,
        each flat or rANS-coded per block) with ``"top<k>+"`` (k top mantissa bits coded with the
        exponent) and ``"zeros+"`` (mantissas of zeros omitted) prefixes. Each chunk's entry in
        ``chunks`` names its own under ``"mantissa_coder"``.
    parts
        The element type of each part of a container frame (the cast values; or the element
        codes, the block scales and NVFP4's float32 tensor scale), empty for a plain frame.
    """

    dtype: str
    shape: tuple[int, ...]
    format: Format
    window_top: int | None
    nbytes: int
    encoded_nbytes: int
    streams: dict[str, int]
    coders: dict[str, int]
    chunks: list[dict[str, Any]] = field(repr=False)
    mantissa_coders: dict[str, int] = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Decoded bytes over encoded bytes."""
        return self.nbytes / self.encoded_nbytes

    @property
    def values(self) -> int:
        """Number of values."""
        return int(np.prod(self.shape, dtype=np.int64))

    def bits_per_value(self) -> dict[str, float]:
        """Bits per value spent on each stream."""
        n = max(self.values, 1)
        return {k: 8 * v / n for k, v in self.streams.items()}

    def __str__(self) -> str:
        bpv = self.bits_per_value()
        lines = [
            f"dtype {self.dtype}, shape {self.shape}, format {self.format}"
            + (f", window top 2^{self.window_top}" if self.window_top is not None else ""),
            f"{self.nbytes} -> {self.encoded_nbytes} bytes, ratio {self.ratio:.3f}, "
            f"{8 * self.encoded_nbytes / max(self.values, 1):.3f} bits/value",
            "streams: "
            + ", ".join(f"{k} {v} B ({bpv[k]:.3f} b/v)" for k, v in self.streams.items()),
            "exponent coders: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.coders.items())),
            "mantissa coders: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(self.mantissa_coders.items())),
        ]
        return "\n".join(lines)


def inspect(data: Any) -> FrameInfo:
    """Describe a frame: dtype, shape, format, and bytes per stream.

    Raises
    ------
    DecodeError
        When the header or a chunk layout is malformed (checksums are checked by ``decode``).
    """
    frame = _frame_bytes(data)
    info = _core.frame_info(frame)
    if "parts" in info:
        return _container_info(info, len(frame))
    name = info["dtype"]
    src_e, src_m = FIELD_WIDTHS[name]
    chunks = info["chunks"]
    coders = Counter(c["coder"] for c in chunks)
    fmt = Format(
        exp_bits=None if info["exp_bits"] == src_e else info["exp_bits"],
        man_bits=None if info["man_bits"] == src_m else info["man_bits"],
        rounding=info["rounding"],
        underflow=info["underflow"],
        seed=info["seed"],
        exponent_coding=next(iter(coders)) if len(coders) == 1 else "auto",
    )
    streams = {"header": info["header_bytes"] + sum(c["header"] for c in chunks)}
    for key in ("signs", "exponents", "mantissas", "exceptions"):
        streams[key] = sum(c[key] for c in chunks)
    shape = tuple(info["shape"])
    return FrameInfo(
        dtype=name,
        shape=shape,
        format=fmt,
        window_top=info["window_top"],
        nbytes=int(np.prod(shape, dtype=np.int64)) * numpy_dtype(name).itemsize,
        encoded_nbytes=len(frame),
        streams=streams,
        coders=dict(coders),
        chunks=chunks,
        mantissa_coders=dict(Counter(c["mantissa_coder"] for c in chunks)),
    )


def _container_info(info: dict[str, Any], encoded_nbytes: int) -> FrameInfo:
    """A container frame's info: its streams and coders summed over its parts."""
    parts = info["parts"]
    chunks = [c for p in parts for c in p["chunks"]]
    streams = {"header": info["header_bytes"] + sum(p["header_bytes"] for p in parts)}
    streams["header"] += sum(c["header"] for c in chunks)
    for key in ("signs", "exponents", "mantissas", "exceptions"):
        streams[key] = sum(c[key] for c in chunks)
    shape = tuple(info["shape"])
    name = info["dtype"]
    return FrameInfo(
        dtype=name,
        shape=shape,
        format=Format(container=info["container"]),
        window_top=None,
        nbytes=int(np.prod(shape, dtype=np.int64)) * numpy_dtype(name).itemsize,
        encoded_nbytes=encoded_nbytes,
        streams=streams,
        coders=dict(Counter(c["coder"] for c in chunks)),
        chunks=chunks,
        mantissa_coders=dict(Counter(c["mantissa_coder"] for c in chunks)),
        parts=[p["dtype"] for p in parts],
    )


def _count(name: str, value: object) -> int | None:
    """A count (``threads``, ``chunk_size``) as an int, or None for the default.

    The core checks the range; a negative count would reach it as an overflow, not a value.
    """
    if value is None:
        return None
    number = as_int(name, value)
    if number < 0:
        raise ValueError(f"{name}={number} is negative (None for the default)")
    return number


def _check_format(fmt: object) -> Format:
    if not isinstance(fmt, Format):
        raise TypeError(f"fmt must be a schrodinger_fp.Format, got {type(fmt).__name__}")
    return fmt


def _frame_bytes(data: Any) -> memoryview:
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(f"a frame must be bytes-like, got {type(data).__name__}") from None
    if not view.c_contiguous:
        raise ValueError("the frame must be a contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _check_out(out: object, dt: np.dtype, shape: tuple[int, ...]) -> None:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.dtype != dt or out.shape != shape:
        raise ValueError(f"out is {out.dtype}{out.shape}, the result is {dt}{shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")
