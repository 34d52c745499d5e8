"""The training side's shortcuts give exactly what the plain computations give.

Bit gradients and flush limits read magnitudes from the bits, write over
their own temporaries and share one finiteness check; the policy keeps its
cached lookups across a one-name change; the adapter, the stash and the
controllers call the core directly for the arrays they make themselves. Each
shortcut is compared here with
the plain computation it replaces, on every dtype and on subnormals, zeros,
signed zeros, NaN and infinities.
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.training import core_calls
from schrodinger_fp.training.controllers.flush import (
    exponent_bits_needed,
    flush_budget,
    magnitude_range,
)
from schrodinger_fp.training.controllers.qmath import (
    Plan,
    QuantumContext,
    _finite_magnitudes,
    _first_damage,
    bit_gradients,
)

DTYPES = [np.float32, np.float64, np.float16, ml_dtypes.bfloat16]


def values(dtype: type, n: int = 4000, seed: int = 0) -> np.ndarray:
    """Normal values over many binades, with subnormals, zeros and a negative zero."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * np.exp2(rng.integers(-20, 8, n))
    x = x.astype(dtype)
    tiny = np.finfo(dtype).smallest_subnormal
    x[:5] = np.array([0.0, -0.0, tiny, -3 * tiny, 7 * tiny]).astype(dtype)
    return x


def plain_range(y: np.ndarray) -> tuple[float, float]:
    mag = np.abs(y.astype(np.float64))
    return float(mag.max()), float(mag[mag > 0].min())


@pytest.mark.parametrize("dtype", DTYPES)
def test_magnitude_range_from_the_bits_equals_abs_max_and_smallest_nonzero(dtype: type) -> None:
    for seed in range(3):
        y = values(dtype, seed=seed)
        assert magnitude_range(y) == plain_range(y)
        assert magnitude_range(y[5:]) == plain_range(y[5:])  # no zero, no subnormal first
    assert magnitude_range(np.array([-0.0, 0.0], dtype)) == (0.0, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_copy_says_finiteness_and_the_magnitude_range(dtype: type) -> None:
    y = values(dtype)
    assert _finite_magnitudes(y) == (True, plain_range(y))
    assert _finite_magnitudes(np.array([-0.0, 0.0], dtype)) == (True, (0.0, 0.0))
    assert _finite_magnitudes(np.array([], dtype)) == (True, None)
    big = np.finfo(dtype).max
    for bad in (np.inf, -np.inf, np.nan, -np.nan):
        z = values(dtype)
        z[11] = bad
        assert _finite_magnitudes(z) == (False, None)
    edge = np.array([big, -big], dtype)  # the largest finite bits, one below infinity's
    assert _finite_magnitudes(edge) == (True, (float(big), float(big)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_first_damage_is_the_same_on_the_finite_path_and_the_masked_one(dtype: type) -> None:
    for seed in range(3):
        y = values(dtype, seed=seed)
        for k in (2, 4, 5, 8):
            assert _first_damage(y, k, True) == _first_damage(y, k, False)
    with_nan = values(dtype)
    with_nan[7], with_nan[9] = np.nan, -np.inf
    finite = values(dtype)
    finite[7], finite[9] = 0.0, 0.0
    # the masked path leaves NaN and infinities out, so both see the same binades
    assert _first_damage(with_nan, 8, False) == _first_damage(finite, 8, True)


def plain_exponent_bits_needed(
    values: np.ndarray, man_bits: int, lowest: int, highest: int, sample: int = 1 << 14
) -> int:
    """The flush limit with frexp on every value (what the bit reading replaces)."""
    flat = values.reshape(-1)
    mag_all = np.abs(flat.astype(np.float64))
    finite_all = mag_all[np.isfinite(mag_all)]
    if finite_all.size == 0 or finite_all.max() == 0:
        return lowest
    top = int(np.frexp(finite_all.max())[1]) - 1
    if flat.size > sample:
        flat = flat[:: -(-flat.size // sample)]
    mag = np.abs(flat.astype(np.float64))
    mag = mag[np.isfinite(mag) & (mag > 0)]
    if mag.size == 0:
        return lowest
    depth = np.maximum(top + 1 - np.frexp(mag)[1], 0)
    energy = np.bincount(depth, weights=mag * mag)
    below = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]])
    budget = flush_budget(man_bits) * float(below[0])
    for e in range(lowest, highest):
        if (1 << e) - 1 >= len(energy) or below[(1 << e) - 1] <= budget:
            return e
    return highest


@pytest.mark.parametrize("dtype", DTYPES)
def test_exponent_bits_needed_reads_exponents_from_the_bits_exactly(dtype: type) -> None:
    highest = 11 if dtype is np.float64 else 5 if dtype is np.float16 else 8
    hits = 0
    for seed in range(3):
        x = values(dtype, n=40_000, seed=seed)  # sampled: more than 2**14 values
        narrow = (values(dtype, n=40_000, seed=seed)[5:] % 8).astype(dtype)  # a few binades
        for y in (x, narrow, narrow[:1000]):
            for man in (0, 2, 5):
                for lowest in range(1, highest + 1):
                    got = exponent_bits_needed(y, man, lowest, highest)
                    assert got == plain_exponent_bits_needed(y, man, lowest, highest)
                    hits += got == lowest
    assert hits > 20  # the window of ``lowest`` bits often holds every binade already
    # a float64 tensor of subnormals only: exponents far below any float32's
    sub = np.array([5e-324, 1e-320, 3e-310, -2e-315])
    assert exponent_bits_needed(sub, 3, 1, 11) == plain_exponent_bits_needed(sub, 3, 1, 11)


def reference_bit_gradients(g: np.ndarray, y: np.ndarray, corner: tuple[int, int]) -> list[float]:
    """The first-order bit gradients and spreads of a small tensor, one step at a time."""
    out = []
    for kind in ("man", "exp"):
        k = corner[0] if kind == "man" else corner[1]
        for j in range(k - 1, -1 if kind == "man" else 0, -1):
            lower = (j, corner[1]) if kind == "man" else (corner[0], j)
            d = y - sfp.quantize(y, sfp.Format(man_bits=lower[0], exp_bits=lower[1]))
            if d.any():
                out += [
                    float(np.dot(g, d)) / (k - j),
                    math.sqrt(float((g * d) @ (g * d))) / (k - j),
                ]
                break
        else:
            out += [0.0, 0.0]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_bit_gradients_leave_their_inputs_alone_and_match_the_plain_sums(dtype: type) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(3000) * np.exp2(rng.integers(-6, 6, 3000))).astype(dtype)
    y = sfp.quantize(x, sfp.Format(man_bits=4, exp_bits=5))
    g = rng.standard_normal(3000).astype(dtype)
    y_before, g_before = y.copy(), g.copy()
    bits = bit_gradients(g, QuantumContext(y, Plan((4, 5), 0, 1), sfp.Format()))
    assert np.array_equal(y, y_before) and np.array_equal(g, g_before)
    if dtype is not np.float32:
        return  # half-precision sums round in their own type: only the inputs are compared
    man, man_spread, exp, exp_spread = reference_bit_gradients(g, y, (4, 5))
    assert bits.man == pytest.approx(man, rel=1e-5)
    assert bits.man_spread == pytest.approx(man_spread, rel=1e-5)
    assert bits.exp == pytest.approx(exp, rel=1e-5)
    assert bits.exp_spread == pytest.approx(exp_spread, rel=1e-5)


def test_one_name_changed_leaves_every_other_cached_lookup_right() -> None:
    p = sfp.Policy(sfp.Format(man_bits=7))
    p.set("a.weight", sfp.Format(man_bits=3))
    p.set_rule("b.*", sfp.Format(man_bits=5))
    names = ["a.weight", "b.act", "b.saved", "c.act", "a[0].act"]
    before = {n: p.format_for(n) for n in names}  # cached now
    p.set("b.act", sfp.Format(man_bits=2))  # its own rule, ahead of the glob
    p.set("a[0].act", sfp.Format(man_bits=1))  # glob characters: matches itself alone
    p.set("a.weight", sfp.Format(man_bits=4))  # replaced in place
    expected = {
        **before,
        "b.act": sfp.Format(man_bits=2),
        "a[0].act": sfp.Format(man_bits=1),
        "a.weight": sfp.Format(man_bits=4),
    }
    assert {n: p.format_for(n) for n in names} == expected
    assert {n: p.format_for(n) for n in names} == {
        n: sfp.Policy.from_dict(p.to_dict()).format_for(n) for n in names
    }


CORE_FORMATS = [
    sfp.Format(exp_bits=4, man_bits=3, exponent_coding="raw"),
    sfp.Format(exp_bits=5, man_bits=2, rounding="stochastic", underflow="stochastic", seed=3),
    sfp.Format(exp_bits=3, man_bits=1, window_top=2, exponent_coding="raw"),
    sfp.Format(),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4000,), (40, 100), (), (0,), (0, 3)])
def test_direct_core_calls_equal_the_public_functions(dtype: type, shape: tuple[int, ...]) -> None:
    x = values(dtype).reshape(-1)[: math.prod(shape)].reshape(shape)
    for fmt in CORE_FORMATS:
        frame = core_calls.encode(x, fmt, threads=1)
        assert frame == sfp.encode(x, fmt, threads=1)
        decoded = core_calls.decode(frame)
        expected = sfp.decode(frame)
        assert decoded.dtype == expected.dtype and decoded.shape == expected.shape == shape
        assert decoded.tobytes() == expected.tobytes()
        q = core_calls.quantize(x, fmt)
        assert q.dtype == x.dtype and q.shape == shape
        assert q.tobytes() == sfp.quantize(x, fmt).tobytes() == expected.tobytes()


def test_direct_core_calls_hand_other_inputs_to_the_public_functions() -> None:
    x = values(np.float32).reshape(40, 100)
    fmt = sfp.Format(exp_bits=4, man_bits=3)
    for other in (x.T, x.astype(">f4"), x[:, ::2]):  # not C-contiguous, big-endian, strided
        assert core_calls.encode(other, fmt) == sfp.encode(other, fmt)
        assert np.array_equal(core_calls.quantize(other, fmt), sfp.quantize(other, fmt))
    frame = sfp.encode(x, fmt)
    assert np.array_equal(core_calls.decode(bytearray(frame)), sfp.decode(frame))
    with pytest.raises(TypeError, match=r"fmt must be a schrodinger_fp\.Format"):
        core_calls.quantize(x, "e4m3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="man_bits=30 exceeds float32's 23"):
        core_calls.quantize(x, sfp.Format(man_bits=30))
    with pytest.raises(sfp.DecodeError):
        core_calls.decode(frame[:-3])
