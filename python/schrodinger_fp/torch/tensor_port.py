"""Bit-exact reduction of PyTorch tensors, on any device, matching :func:`schrodinger_fp.quantize`.

The same reduction as the Rust core (DESIGN.md section 3.1), written with
integer tensor operations so it runs where the tensor lives (CPU or GPU):
round the mantissa (truncate, nearest-even, or stochastic with the core's
counter-based generator keyed by (seed, flat index)), then keep an exponent
window of ``2**e - 1`` binades under the largest rounded one (or an explicit
``window_top``), saturating above it and flushing (or stochastically rounding)
below it; NaN and infinities pass through bit for bit. Imported by
:mod:`schrodinger_fp.torch`; needs torch.
"""

from __future__ import annotations

import torch

from ..format import Format

__all__ = ["quantize_tensor"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MANTISSA_STREAM = 0x6D616E74
_UNDERFLOW_STREAM = 0x756E6466

# torch dtype -> (integer view dtype, total bits, exponent bits, mantissa bits, bias)
_LAYOUT: dict[torch.dtype, tuple[torch.dtype, int, int, int, int]] = {
    torch.float32: (torch.int32, 32, 8, 23, 127),
    torch.float64: (torch.int64, 64, 11, 52, 1023),
    torch.float16: (torch.int16, 16, 5, 10, 15),
    torch.bfloat16: (torch.int16, 16, 8, 7, 127),
}


def _i64(c: int) -> int:
    """A 64-bit unsigned constant as the signed int64 with the same bits."""
    c &= _MASK64
    return c - (1 << 64) if c >= 1 << 63 else c


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 tensors seen as uint64."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix(z: torch.Tensor) -> torch.Tensor:
    z = z + _i64(_GOLDEN)
    z = (z ^ _shr(z, 30)) * _i64(0xBF58476D1CE4E5B9)
    z = (z ^ _shr(z, 27)) * _i64(0x94D049BB133111EB)
    return z ^ _shr(z, 31)


def _random_bits(seed: int, index: torch.Tensor, stream: int) -> torch.Tensor:
    """The core's ``random_bits(seed, index, stream)`` for a tensor of indices (int64 bits)."""
    return _mix(_mix(index + _i64(stream * _GOLDEN)) ^ _i64(seed))


def _low(n: int) -> int:
    return (1 << n) - 1


def quantize_tensor(x: torch.Tensor, fmt: Format) -> torch.Tensor:
    """Reduce ``x`` to ``fmt`` and return it in its own dtype, on its own device.

    Bit-identical to ``schrodinger_fp.quantize(x.numpy(), fmt)`` (flat
    indices in C order, so stochastic rounding matches too).

    Parameters
    ----------
    x : torch.Tensor
        float32, float64, float16 or bfloat16, any shape and device.
    fmt : Format
        The target format.

    Raises
    ------
    TypeError
        If the dtype is not supported or ``fmt`` is not a Format.
    ValueError
        If the format's bitlengths exceed the dtype's fields.
    """
    if not isinstance(fmt, Format):
        raise TypeError(f"fmt must be a schrodinger_fp.Format, got {fmt!r}")
    if x.dtype not in _LAYOUT:
        raise TypeError(f"dtype {x.dtype} is not one of float32, float64, float16, bfloat16")
    idt, nbits, src_e, src_m, bias = _LAYOUT[x.dtype]
    e = src_e if fmt.exp_bits is None else fmt.exp_bits
    m = src_m if fmt.man_bits is None else fmt.man_bits
    if not 0 <= m <= src_m:
        raise ValueError(f"man_bits={m} exceeds {x.dtype}'s {src_m}")
    if not 1 <= e <= src_e:
        raise ValueError(f"exp_bits={e} exceeds {x.dtype}'s {src_e}")
    if fmt.window_top is not None and e == src_e:
        raise ValueError(f"window_top={fmt.window_top} needs exp_bits below {x.dtype}'s {src_e}")
    if e == src_e and m == src_m:
        return x
    xc = x.contiguous()
    bits = xc.view(idt).to(torch.int64).reshape(-1)
    if nbits < 64:
        bits = bits & _low(nbits)
    sign = bits & _i64(1 << (nbits - 1))
    mag = bits & _low(nbits - 1)
    inf_field = _low(src_e)
    special = _shr(mag, src_m) == inf_field
    drop = src_m - m
    index = torch.arange(bits.numel(), device=bits.device, dtype=torch.int64)

    if drop:
        dropped = _low(drop)
        if fmt.rounding == "truncate":
            rounded = mag & ~dropped
        elif fmt.rounding == "nearest":
            rounded = (mag + (dropped >> 1) + ((mag >> drop) & 1)) & ~dropped
        else:
            rnd = _random_bits(fmt.seed, index, _MANTISSA_STREAM) & dropped
            rounded = (mag + rnd) & ~dropped
    else:
        rounded = mag
    field = rounded >> src_m
    mant = rounded & _low(src_m) & ~_low(drop)

    if e == src_e:  # raw exponent: a carry out of the top binade overflows to infinity
        out = sign | rounded
    else:
        span = (1 << e) - 2
        if fmt.window_top is not None:
            top = fmt.window_top + bias
        else:
            finite = torch.where(special, torch.zeros_like(field), field.clamp(max=inf_field - 1))
            largest = int(finite.max().item()) if finite.numel() else 0
            top = max(largest, span + 1)
        bottom = top - span
        keep = sign | (field << src_m) | mant
        saturated = sign | (top << src_m) | (_low(m) << drop)
        if fmt.underflow == "stochastic":
            under = _underflow(rounded, field, sign, bottom, src_m, fmt.seed, index)
        else:
            under = sign
        in_window = (field >= bottom) | ((field == 0) & (bottom == 1))
        out = torch.where(field > top, saturated, torch.where(in_window, keep, under))
    out = torch.where(special, bits, out)
    if nbits < 64:
        out = torch.where(out >= 1 << (nbits - 1), out - (1 << nbits), out)
    return out.to(idt).view(x.dtype).reshape(x.shape)


def _underflow(
    rounded: torch.Tensor,
    field: torch.Tensor,
    sign: torch.Tensor,
    bottom: int,
    src_m: int,
    seed: int,
    index: torch.Tensor,
) -> torch.Tensor:
    """Stochastic underflow: ``2**bottom`` with probability ``|x| / 2**bottom``, else zero."""
    implicit = torch.where(field == 0, 0, 1 << src_m)
    significand = ((rounded & _low(src_m)) | implicit).to(torch.float64)
    shift = (field.clamp(min=1) - bottom - src_m).to(torch.float64)
    p = significand * torch.pow(2.0, shift)
    r = _shr(_random_bits(seed, index, _UNDERFLOW_STREAM), 11).to(torch.float64)
    up = (rounded != 0) & (r * (1.0 / (1 << 53)) < p)
    return torch.where(up, sign | (bottom << src_m), sign)
