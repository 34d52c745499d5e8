"""What each reduction does to values: rounding error bounds, the window, underflow, specials."""

from __future__ import annotations

import numpy as np
import pytest

import schrodinger_fp as sfp


def normal_f32(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(np.float32)


def ulp(x: np.ndarray, man_bits: int) -> np.ndarray:
    """Spacing of a format with ``man_bits`` mantissa bits at each value of x (normal range)."""
    _, exponent = np.frexp(x.astype(np.float64))
    return np.ldexp(1.0, exponent - 1 - man_bits)


@pytest.mark.parametrize("man_bits", [0, 1, 2, 5, 10, 22])
def test_error_bounds_per_rounding_mode(man_bits: int) -> None:
    x = normal_f32(20_000, man_bits)
    x64, u = x.astype(np.float64), ulp(x, man_bits)
    t = sfp.quantize(x, sfp.Format(man_bits=man_bits, rounding="truncate")).astype(np.float64)
    assert np.all(np.abs(t) <= np.abs(x64)) and np.all(np.abs(x64 - t) < u)
    n = sfp.quantize(x, sfp.Format(man_bits=man_bits, rounding="nearest")).astype(np.float64)
    assert np.all(np.abs(x64 - n) <= u / 2)
    s = sfp.quantize(x, sfp.Format(man_bits=man_bits, rounding="stochastic", seed=1)).astype(
        np.float64
    )
    assert np.all(np.abs(x64 - s) < u)
    for q in (t, n, s):  # at most man_bits significant fraction bits remain
        frac, _ = np.frexp(q[q != 0])
        assert np.all(np.ldexp(frac, man_bits + 1) == np.round(np.ldexp(frac, man_bits + 1)))


def test_nearest_ties_go_to_even() -> None:
    # 1 + 2^-2 lies halfway between 1 and 1.5 at one mantissa bit; 1.75 between 1.5 and 2.
    x = np.array([1.25, 1.75, -1.25, -1.75, 2.5, 3.5], dtype=np.float32)
    q = sfp.quantize(x, sfp.Format(man_bits=1))
    assert q.tolist() == [1.0, 2.0, -1.0, -2.0, 2.0, 4.0]


def test_stochastic_rounding_is_unbiased_and_seeded() -> None:
    x = np.full(200_000, 1.0 + 2**-4, dtype=np.float32)  # a quarter of the way from 1 to 1.25
    fmt = sfp.Format(man_bits=2, rounding="stochastic", seed=11)
    q = sfp.quantize(x, fmt).astype(np.float64)
    assert set(np.unique(q)) == {1.0, 1.25}
    assert abs(q.mean() - (1 + 2**-4)) < 4 * 0.25 * np.sqrt(0.25 * 0.75 / x.size)
    assert np.array_equal(sfp.quantize(x, fmt), sfp.quantize(x, fmt))
    assert not np.array_equal(
        sfp.quantize(x, fmt),
        sfp.quantize(x, sfp.Format(man_bits=2, rounding="stochastic", seed=12)),
    )
    wide = normal_f32(100_000, 3)
    err = (
        sfp.quantize(wide, sfp.Format(man_bits=3, rounding="stochastic")).astype(np.float64) - wide
    )
    rel = err / ulp(wide, 3)
    assert abs(rel.mean()) < 4 * 0.5 / np.sqrt(wide.size)


def test_carry_into_the_exponent_is_correct() -> None:
    x = np.array([1.99, 3.9, -0.999], dtype=np.float32)
    q = sfp.quantize(x, sfp.Format(man_bits=2))
    assert q.tolist() == [2.0, 4.0, -1.0]


def test_default_window_sits_under_the_largest_value_and_never_saturates() -> None:
    x = np.array([100.0, -70.0, 3.0, 1e-3, 2.0**-20, 0.0, -0.0], dtype=np.float32)
    fmt = sfp.Format(exp_bits=3, man_bits=23)  # 7 binades: 2^0 .. 2^6
    q = sfp.quantize(x, fmt)
    assert q[:3].tolist() == [100.0, -70.0, 3.0]
    assert q[3:].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert np.signbit(q).tolist() == [False, True, False, False, False, False, True]
    assert sfp.inspect(sfp.encode(x, fmt)).window_top == 6


def test_window_top_follows_rounding_of_the_maximum() -> None:
    x = np.array([127.9, 1.0], dtype=np.float32)  # rounds to 128 = 2^7 at two mantissa bits
    blob = sfp.encode(x, sfp.Format(exp_bits=2, man_bits=2))
    assert sfp.inspect(blob).window_top == 7
    assert sfp.decode(blob).tolist() == [128.0, 0.0]  # window 2^6..2^7: 1.0 underflows


def test_explicit_window_saturates_above_and_flushes_below() -> None:
    fmt = sfp.Format(exp_bits=2, man_bits=1, window_top=1)  # binades 2^-1 .. 2^1
    x = np.array([3.0, 5.0, -1e9, 0.75, 0.4, -0.2], dtype=np.float32)
    q = sfp.quantize(x, fmt)
    assert q.tolist() == [3.0, 3.0, -3.0, 0.75, 0.0, -0.0]
    assert np.signbit(q[-1])


def test_stochastic_underflow_keeps_the_mean() -> None:
    x = np.full(100_000, 2.0**-12, dtype=np.float32)
    x[0] = 1.0
    fmt = sfp.Format(exp_bits=2, man_bits=3, underflow="stochastic", seed=3)  # smallest kept 2^-2
    q = sfp.quantize(x, fmt)[1:].astype(np.float64)
    assert set(np.unique(q)) == {0.0, 0.25}
    p = 2.0**-10
    assert abs(q.mean() - 2.0**-12) < 5 * 0.25 * np.sqrt(p * (1 - p) / q.size)


def test_subnormals_survive_only_when_the_window_reaches_them() -> None:
    sub = np.float32(np.finfo(np.float32).smallest_subnormal) * 12345
    x = np.array([1.5, sub, -sub], dtype=np.float32)
    kept = sfp.quantize(x, sfp.Format(exp_bits=7))  # 127 binades reach down to field 1
    assert kept.view(np.uint32).tolist() == x.view(np.uint32).tolist()
    flushed = sfp.quantize(x, sfp.Format(exp_bits=4))
    assert flushed.tolist() == [1.5, 0.0, -0.0] and np.signbit(flushed[2])
    # Raw exponent: subnormals round on the same grid as the smallest binade (spacing 2^-129 here).
    big_sub = np.array([0x00612345, 0x00012345], dtype=np.uint32).view(np.float32)
    raw = sfp.quantize(big_sub, sfp.Format(man_bits=3)).view(np.uint32)
    assert raw.tolist() == [0x00600000, 0]


def test_rounding_past_the_largest_finite_value() -> None:
    big = np.array([np.finfo(np.float32).max], dtype=np.float32)
    assert np.isposinf(sfp.quantize(big, sfp.Format(man_bits=2))[0])  # raw exponent: IEEE overflow
    q = sfp.quantize(big, sfp.Format(exp_bits=4, man_bits=2))[0]  # a window saturates instead
    assert q == np.float32(1.75 * 2.0**127)
