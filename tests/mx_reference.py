"""A plain numpy reference of the block formats, written from the OCP MX v1.0 text and NVIDIA's
NVFP4 recipe, independent of the Rust code it checks.

MX (section 6.3 of the spec): per block of 32 values along the last axis,
``shared_exp = floor(log2(max |V_i|)) - emax_elem`` (clamped to E8M0's -127..127),
``X = 2^shared_exp``, ``P_i = quantize_to_element_format(V_i / X)`` rounding to nearest-even and
clamping normal numbers to the largest normal. Choices the spec leaves open, made the same way in
the library: an all-zero block gets the smallest scale (2^-127); a block holding NaN or infinity
gets the NaN scale and zero elements, and decodes to NaN.

NVFP4: ``tensor_scale = float32(amax / (6 * 448))`` (1 when that is 0), per block of 16 the scale
``e4m3(amax_block / (6 * tensor_scale))`` (saturating), elements
``e2m1(V / (scale * tensor_scale))`` (saturating), decoded in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

ELEMENTS: dict[str, tuple[type, int]] = {
    # element type, exponent of its largest normal value (emax_elem)
    "mxfp8_e4m3": (ml_dtypes.float8_e4m3fn, 8),
    "mxfp8_e5m2": (ml_dtypes.float8_e5m2, 15),
    "mxfp6_e2m3": (ml_dtypes.float6_e2m3fn, 2),
    "mxfp6_e3m2": (ml_dtypes.float6_e3m2fn, 4),
    "mxfp4": (ml_dtypes.float4_e2m1fn, 2),
    "nvfp4": (ml_dtypes.float4_e2m1fn, 2),
}


@dataclass
class Reference:
    elements: np.ndarray
    scales: np.ndarray
    tensor_scale: float | None
    values: np.ndarray


def _blocks(x: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """float64 values as (rows, blocks, size), zero-padded, and the row length."""
    v = x.astype(np.float64).reshape(-1, x.shape[-1] if x.ndim else 1)
    last = v.shape[1]
    n_blocks = -(-last // size)
    padded = np.zeros((v.shape[0], n_blocks * size))
    padded[:, :last] = v
    return padded.reshape(v.shape[0], n_blocks, size), last


def _unblock(b: np.ndarray, last: int, shape: tuple[int, ...]) -> np.ndarray:
    return b.reshape(b.shape[0], -1)[:, :last].reshape(shape)


def quantize(x: np.ndarray, name: str) -> Reference:
    element, emax = ELEMENTS[name]
    top = float(ml_dtypes.finfo(element).max)
    size = 16 if name == "nvfp4" else 32
    v, last = _blocks(x, size)
    finite = np.isfinite(v)
    special = ~finite.all(axis=-1)
    amax = np.where(finite, np.abs(v), 0.0).max(axis=-1)
    with np.errstate(all="ignore"):
        if name == "nvfp4":
            whole = np.abs(x.astype(np.float64))
            t = float(np.float32(whole[np.isfinite(whole)].max(initial=0.0) / (6.0 * 448.0)))
            tensor_scale = 1.0 if t == 0.0 or not np.isfinite(t) else t
            scale = np.clip(amax / (6.0 * tensor_scale), 0, 448).astype(ml_dtypes.float8_e4m3fn)
            divisor = scale.astype(np.float64)[..., None] * tensor_scale
            safe = np.where(divisor == 0, 1.0, divisor)
            codes = np.where(divisor == 0, np.copysign(0.0, v), np.clip(v / safe, -top, top))
            codes = codes.astype(element)
            codes[special] = 0
            scale[special] = np.uint8(0x7F).view(ml_dtypes.float8_e4m3fn)
            value = codes.astype(np.float64) * scale.astype(np.float64)[..., None] * tensor_scale
            value = value.astype(np.float32).astype(np.float64)
            scales = scale
            ts: float | None = tensor_scale
        else:
            _, e = np.frexp(amax)  # amax = m * 2^e with m in [0.5, 1): floor(log2) = e - 1
            shared = np.clip(e.astype(np.int64) - 1 - emax, -127, 127)
            shared[amax == 0] = -127
            codes = np.clip(np.ldexp(v, -shared[..., None]), -top, top).astype(element)
            codes[special] = 0
            stored = (shared + 127).astype(np.uint8)
            stored[special] = 0xFF
            value = np.ldexp(codes.astype(np.float64), shared[..., None])
            scales = stored.view(ml_dtypes.float8_e8m0fnu)
            ts = None
        value[special] = np.nan
    shape = x.shape
    scale_shape = (*shape[:-1], v.shape[1]) if x.ndim else (1,)
    return Reference(
        elements=_unblock(codes, last, shape),
        scales=scales.reshape(scale_shape),
        tensor_scale=ts,
        values=_unblock(value, last, shape).astype(x.dtype),
    )
