"""The one-byte types (FP8, FP6, FP4 and the E8M0 scale) are stored losslessly, bit for bit."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.dtypes import NARROW_DTYPES

BITS = {
    "float8_e4m3fn": 8,
    "float8_e5m2": 8,
    "float8_e8m0fnu": 8,
    "float6_e2m3fn": 6,
    "float6_e3m2fn": 6,
    "float4_e2m1fn": 4,
}
CODINGS = [sfp.Format(level=level) for level in (1, 2, 3)] + [
    sfp.Format(exponent_coding=c) for c in sfp.EXPONENT_CODINGS if c != "auto"
]


def every_pattern(name: str, repeat: int = 3) -> np.ndarray:
    """Every bit pattern of the type, NaN encodings included, then a skewed tail like weights."""
    patterns = np.arange(1 << BITS[name], dtype=np.uint8)
    rng = np.random.default_rng(BITS[name])
    tail = rng.choice(patterns[: max(len(patterns) // 2, 2)], size=4000).astype(np.uint8)
    raw = np.concatenate([np.tile(patterns, repeat), tail])
    return raw.view(getattr(ml_dtypes, name))


@pytest.mark.parametrize("name", NARROW_DTYPES)
@pytest.mark.parametrize("fmt", CODINGS, ids=str)
def test_every_bit_pattern_round_trips(name: str, fmt: sfp.Format) -> None:
    x = every_pattern(name)
    for chunk_size in (None, 100):
        y = sfp.decode(sfp.encode(x, fmt, chunk_size=chunk_size))
        assert y.dtype == x.dtype and y.shape == x.shape
        assert np.array_equal(y.view(np.uint8), x.view(np.uint8))
        assert np.array_equal(sfp.quantize(x, fmt).view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("name", NARROW_DTYPES)
def test_shapes_raw_bits_and_decode_into(name: str) -> None:
    x = every_pattern(name, repeat=1)[: 2 * 3 * 4].reshape(2, 3, 4)
    frame = sfp.encode(x[:, ::2])  # non-contiguous
    assert np.array_equal(sfp.decode(frame).view(np.uint8), x[:, ::2].view(np.uint8))
    raw = sfp.encode(x.view(np.uint8), dtype=name)
    assert sfp.decode(raw).dtype == x.dtype
    out = np.empty_like(x)
    sfp.decode(raw, out=out)
    assert np.array_equal(out.view(np.uint8), x.view(np.uint8))
    for empty in (x[:0], x[0, 0, 0]):
        assert np.array_equal(sfp.decode(sfp.encode(empty)).view(np.uint8), empty.view(np.uint8))
    assert sfp.inspect(raw).dtype == name


def test_fp8_weights_compress() -> None:
    # Gaussian weights in float8_e4m3fn: the exponents carry about 2.6 of their 4 bits.
    x = np.random.default_rng(0).normal(0, 0.05, 1 << 16).astype(ml_dtypes.float8_e4m3fn)
    assert sfp.inspect(sfp.encode(x)).ratio > 1.15


def test_bits_above_the_type_are_refused() -> None:
    raw = np.array([0x07, 0x13], dtype=np.uint8)
    with pytest.raises(ValueError, match=r"element 1 of the float4_e2m1fn array is 0x13"):
        sfp.encode(raw, dtype="float4_e2m1fn")


def test_window_reductions_are_refused() -> None:
    x = every_pattern("float8_e4m3fn")
    with pytest.raises(ValueError, match="float8_e4m3fn arrays are stored as they are"):
        sfp.encode(x, sfp.Format(man_bits=1))
    with pytest.raises(ValueError, match="stored as they are"):
        sfp.quantize(x, sfp.Format(exp_bits=3))


def test_corrupt_narrow_frames_raise_decode_error() -> None:
    frame = bytearray(sfp.encode(every_pattern("float8_e8m0fnu")))
    for pos in range(0, len(frame), 7):
        bad = bytearray(frame)
        bad[pos] ^= 0x10
        try:
            y = sfp.decode(bytes(bad))
        except sfp.DecodeError:
            continue
        assert y.dtype == np.dtype(ml_dtypes.float8_e8m0fnu)
    for cut in range(0, len(frame), 11):
        with pytest.raises(sfp.DecodeError):
            sfp.decode(bytes(frame[:cut]))
