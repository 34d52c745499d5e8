"""Agreement with reductions written by others: ml_dtypes casts and numcodecs BitRound."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from numcodecs import BitRound

import schrodinger_fp as sfp


def random_bits_f32(n: int, seed: int) -> np.ndarray:
    """Uniformly random float32 bit patterns plus the extremes of every binade edge."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    return bits.view(np.float32)


def test_nearest_7_bits_is_the_bfloat16_cast_for_every_normal_value() -> None:
    x = random_bits_f32(2_000_000, 0)
    # Every binade's first, last and halfway patterns as well.
    fields = np.arange(1, 255, dtype=np.uint32) << 23
    edges = np.concatenate(
        [fields, fields | 0x7FFFFF, fields | 0x8000, fields | 0x18000, fields | 0x7FFF]
    )
    x = np.concatenate([x, edges.view(np.float32), (-edges.view(np.float32))])
    x = x[np.isfinite(x) & (np.abs(x) >= np.finfo(np.float32).tiny)]
    ours = sfp.quantize(x, sfp.Format(man_bits=7, rounding="nearest"))
    theirs = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_e5m10_with_the_window_on_float16_is_the_float16_cast() -> None:
    rng = np.random.default_rng(1)
    tiny, top = float(np.finfo(np.float16).tiny), float(np.finfo(np.float16).max)
    mags = np.exp2(rng.uniform(np.log2(tiny), np.log2(top), 2_000_000)).astype(np.float32)
    x = mags * rng.choice(np.array([-1, 1], dtype=np.float32), mags.size)
    halves = (
        (np.arange(0, 2**15, dtype=np.uint32).astype(np.uint16)).view(np.float16).astype(np.float32)
    )
    x = np.concatenate([x, halves[np.isfinite(halves)]])
    x = x[(np.abs(x) >= tiny) & (np.abs(x) <= top)]
    ours = sfp.quantize(x, sfp.Format(exp_bits=5, man_bits=10, window_top=15))
    theirs = x.astype(np.float16).astype(np.float32)
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keepbits", [0, 1, 3, 7, 10, 16, 22])
def test_mantissa_only_nearest_is_bitround(dtype: type, keepbits: int) -> None:
    rng = np.random.default_rng(keepbits)
    x = (rng.standard_normal(200_000) * np.exp2(rng.integers(-60, 60, 200_000))).astype(dtype)
    x[:4] = [0.0, -0.0, 1.5, -2.75]
    theirs = BitRound(keepbits=keepbits).encode(x).view(dtype)
    ours = sfp.quantize(x, sfp.Format(man_bits=keepbits))
    assert np.array_equal(ours.view(np.uint8), theirs.view(np.uint8))
