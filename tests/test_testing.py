"""The property-testing kit itself: its strategies cover what they promise, its helpers catch
what they should."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import schrodinger_fp as sfp
from schrodinger_fp import testing


@settings(max_examples=200, deadline=None)
@given(testing.arrays_and_formats())
def test_formats_are_valid_for_the_array(case):
    x, fmt = case
    name = next(n for n in sfp.SUPPORTED_DTYPES if testing._dtype_name(x) == n)
    e, m = fmt.widths(name)
    assert e >= 1 and m >= 0


def test_strategies_reach_every_dtype_and_the_edge_values():
    seen: set[str] = set()
    kinds: set[str] = set()

    @settings(max_examples=400, deadline=None)
    @given(testing.arrays())
    def collect(x):
        seen.add(testing._dtype_name(x))
        if x.size == 0:
            kinds.add("empty")
        if x.ndim == 0:
            kinds.add("0-d")
        if not x.flags.c_contiguous:
            kinds.add("non-contiguous")
        with np.errstate(invalid="ignore"):
            f = x.astype(np.float64)
        if np.isnan(f).any():
            kinds.add("nan")
        if np.isinf(f).any():
            kinds.add("inf")
        if (np.signbit(f) & (f == 0)).any():
            kinds.add("-0")
        tiny = np.finfo(np.float32 if testing._dtype_name(x) == "bfloat16" else x.dtype).tiny
        if ((f != 0) & (np.abs(f) < float(tiny))).any():
            kinds.add("subnormal")

    collect()
    assert seen == set(sfp.WIDE_DTYPES)
    assert kinds >= {"empty", "0-d", "non-contiguous", "nan", "inf", "-0", "subnormal"}


def test_special_bits_are_the_edge_values():
    bits = testing.special_bits("float32")
    values = np.array(bits, dtype=np.uint32).view(np.float32)
    assert np.isnan(values).sum() == 6 and np.isinf(values).sum() == 2
    assert np.float32(np.finfo(np.float32).max) in values
    assert 0x8000_0000 in bits and 0x0000_0001 in bits


def test_assert_bitwise_equal_sees_nan_payloads_and_zero_signs():
    a = np.array([0.0, np.nan], dtype=np.float32)
    b = a.copy()
    testing.assert_bitwise_equal(a, b)
    b[0] = -0.0
    with pytest.raises(AssertionError, match=r"first at \(0,\): got 0x00000000"):
        testing.assert_bitwise_equal(a, b)
    c = a.copy()
    c.view(np.uint32)[1] |= 1
    with pytest.raises(AssertionError, match="1 of 2 values differ"):
        testing.assert_bitwise_equal(a, c)
    with pytest.raises(AssertionError, match="float64"):
        testing.assert_bitwise_equal(a, a.astype(np.float64))


def test_assert_roundtrip_and_quantize_equal():
    x = np.linspace(-2, 2, 50, dtype=np.float32)
    fmt = sfp.Format(exp_bits=3, man_bits=1)
    frame = testing.assert_roundtrip(x, fmt, chunk_size=7)
    assert sfp.inspect(frame).shape == (50,)
    testing.assert_quantize_equal(sfp.quantize(x, fmt), x, fmt)
    with pytest.raises(AssertionError, match="quantize"):
        testing.assert_quantize_equal(x, x, fmt)
