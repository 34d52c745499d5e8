"""Every exponent coding round-trips; auto at the maximum level is never larger than raw, Gecko or
rANS; the stats helper is right."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import schrodinger_fp as sfp

DTYPES = [
    np.dtype(np.float32),
    np.dtype(ml_dtypes.bfloat16),
    np.dtype(np.float16),
    np.dtype(np.float64),
]
CODINGS = ["raw", "gecko", "entropy", "huffman", "auto"]
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    u = UINT[a.dtype.itemsize]
    return a.shape == b.shape and np.array_equal(a.reshape(-1).view(u), b.reshape(-1).view(u))


def gelu(z: np.ndarray) -> np.ndarray:
    return 0.5 * z * (1 + np.tanh(0.7978845608 * (z + 0.044715 * z**3)))


def named_patterns(dt: np.dtype, n: int) -> list[np.ndarray]:
    g = gelu(np.random.default_rng(n).standard_normal(n))
    extremes = np.array([np.finfo(np.float16).tiny, 60000.0, -1e-3, 0.0])
    return [
        np.full(n, 1.5).astype(dt),
        np.zeros(n, dtype=dt),
        np.resize(extremes, n).astype(dt),
        np.where(np.arange(n) == n // 2, 1e4, 1e-2).astype(dt),
        g.astype(dt),
        np.maximum(g, 0).astype(dt),
    ]


@pytest.mark.parametrize("dt", DTYPES, ids=str)
@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 5000])
def test_named_patterns_round_trip_with_every_coding(dt: np.dtype, n: int) -> None:
    for x in named_patterns(dt, n):
        sizes = {}
        for coding in CODINGS:
            # `auto` at the maximum level keeps the smallest of its candidates.
            fmt = sfp.Format(exponent_coding=coding, level=sfp.format.MAX_LEVEL)
            blob = sfp.encode(x, fmt, chunk_size=1024)
            assert same_bits(sfp.decode(blob), x), coding
            # Whole frames: auto may move top mantissa bits into the exponent stream.
            sizes[coding] = len(blob)
        # The maximum level weighs raw, Gecko and rANS (Huffman is the speed-aware levels' coder).
        assert sizes["auto"] <= min(sizes[c] for c in ("raw", "gecko", "entropy"))
        for level in (1, 2):
            blob = sfp.encode(x, sfp.Format(level=level), chunk_size=1024)
            assert same_bits(sfp.decode(blob), x), level


@settings(max_examples=60, deadline=None)
@given(
    bits=st.lists(st.integers(0, 2**32 - 1), max_size=300),
    coding=st.sampled_from(CODINGS),
    exp_bits=st.sampled_from([None, 3, 4, 6]),
)
def test_random_float32_bits_round_trip(bits: list[int], coding: str, exp_bits: int | None) -> None:
    x = np.array(bits, dtype=np.uint32).view(np.float32)
    man_bits = None if exp_bits is None else 2
    fmt = sfp.Format(exp_bits=exp_bits, man_bits=man_bits, exponent_coding=coding)
    assert same_bits(sfp.decode(sfp.encode(x, fmt, chunk_size=64)), sfp.quantize(x, fmt))


def test_truncated_coded_frames_raise_decode_error() -> None:
    x = named_patterns(np.dtype(np.float32), 2000)[4]
    for coding in ["gecko", "entropy"]:
        blob = sfp.encode(x, sfp.Format(exponent_coding=coding))
        for cut in (len(blob) - 1, len(blob) // 2, 40):
            with pytest.raises(sfp.DecodeError):
                sfp.decode(blob[:cut])


def test_exponent_histogram_and_entropy() -> None:
    x = np.array([1.0, 1.5, 2.0, 0.0, -4.0, np.inf], dtype=np.float32)
    values, counts = sfp.exponent_histogram(x)
    assert values.tolist() == [0, 127, 128, 129, 255]
    assert counts.tolist() == [1, 2, 1, 1, 1]
    p = np.array([1, 2, 1, 1, 1]) / 6
    assert sfp.exponent_entropy(x) == pytest.approx(float(-(p * np.log2(p)).sum()))
    assert sfp.exponent_histogram(x.astype(ml_dtypes.bfloat16))[0].tolist() == values.tolist()
    assert sfp.exponent_histogram(np.array([1.0, 2.0], dtype=np.float16))[0].tolist() == [15, 16]
    assert sfp.exponent_entropy(np.ones(10, dtype=np.float64)) == 0.0
    assert sfp.exponent_entropy(np.zeros(0, dtype=np.float32)) == 0.0
    with pytest.raises(TypeError):
        sfp.exponent_entropy(np.arange(3))


def test_entropy_coding_reaches_the_exponent_entropy() -> None:
    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_normal(1 << 18) * 0.05).astype(np.float32)
    info = sfp.inspect(sfp.encode(x, sfp.Format(exponent_coding="entropy")))
    bpv = 8 * info.streams["exponents"] / x.size
    assert bpv <= sfp.exponent_entropy(x) * 1.03


def test_gelu_activations_code_signs_with_exponents() -> None:
    x = gelu(np.random.default_rng(2).standard_normal(1 << 16)).astype(ml_dtypes.bfloat16)
    info = sfp.inspect(sfp.encode(x))
    assert info.streams["signs"] == 0
    sep = sfp.inspect(sfp.encode(x, sfp.Format(exponent_coding="gecko"))).streams
    # Mantissas counted too: the coded exponent stream may also carry top mantissa bits.
    assert (
        info.streams["exponents"] + info.streams["mantissas"]
        < sep["signs"] + sep["exponents"] + sep["mantissas"]
    )


def test_mantissa_coding_omits_relu_zeros_and_is_reported() -> None:
    rng = np.random.default_rng(3)
    x = np.maximum(gelu(rng.standard_normal(200_000)), 0).astype(ml_dtypes.bfloat16)
    x[x < 0.05] = 0
    flat = sfp.encode(x, sfp.Format(exponent_coding="gecko"), chunk_size=1 << 16)
    assert sfp.inspect(flat).mantissa_coders == {"flat": 4}
    # The default level cuts the words into planes behind a mask of the nonzero ones; the
    # maximum level may also split them, leaving the zeros' mantissas out.
    for level, omitted in ((2, "1 with a zero mask"), (3, "zero")):
        auto = sfp.encode(x, sfp.Format(level=level), chunk_size=1 << 16)
        assert same_bits(sfp.decode(auto), x)
        info = sfp.inspect(auto)
        assert sum(info.mantissa_coders.values()) == len(info.chunks) == 4
        assert all(omitted in c["mantissa_coder"] for c in info.chunks), info.mantissa_coders
        assert info.streams["mantissas"] < 0.6 * sfp.inspect(flat).streams["mantissas"]
        assert "mantissa coders: " in str(info)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_uniform_mantissas_stay_flat(dt: np.dtype) -> None:
    # Values in [1, 2) with uniformly random mantissa bits: nothing for the mantissa coder to gain.
    u = UINT[dt.itemsize]
    m = {2: 7 if dt == np.dtype(ml_dtypes.bfloat16) else 10, 4: 23, 8: 52}[dt.itemsize]
    one = np.ones(1, dtype=dt).view(u)[0]
    bits = np.random.default_rng(1).integers(0, 1 << m, 50_000, dtype=np.uint64).astype(u) | one
    x = bits.view(dt)
    coders = sfp.inspect(sfp.encode(x)).mantissa_coders
    if dt.itemsize == 8:
        assert coders == {"flat": 1}
    else:
        # 16- and 32-bit words are cut into planes; no lane of uniform bits is coded.
        assert len(coders) == 1 and next(iter(coders)).endswith(", 0 coded lanes"), coders
    assert same_bits(sfp.decode(sfp.encode(x)), x)


def test_levels_choose_their_coders_and_inspect_shows_them() -> None:
    x = (np.random.default_rng(4).standard_normal(50_000) * 0.05).astype(ml_dtypes.bfloat16)
    chunks = {lv: sfp.inspect(sfp.encode(x, sfp.Format(level=lv))).chunks for lv in (1, 2, 3)}
    assert {c["coder"] for c in chunks[1]} == {"huffman"}
    # Level 1 never codes byte lanes; the bits below its symbols are packed flat.
    assert all(c["mantissa_coder"].endswith(", 0 coded lanes") for c in chunks[1])
    assert {c["coder"] for c in chunks[3]} <= {"raw", "gecko", "entropy", "huffman"}
    sizes = {lv: len(sfp.encode(x, sfp.Format(level=lv))) for lv in (1, 2, 3)}
    assert sizes[3] <= sizes[2] <= sizes[1] < x.nbytes


@pytest.mark.parametrize("dt", [np.dtype(np.float16), np.dtype(ml_dtypes.float8_e4m3fn)], ids=str)
def test_the_speed_aware_levels_code_narrow_symbols_with_rans(dt: np.dtype) -> None:
    # Weights' symbols of at most 8 bits: rANS codes them nearer their entropy than Huffman and
    # decodes them at a rate that does not depend on their code lengths.
    x = (np.random.default_rng(6).standard_normal(1 << 18) * 0.05).astype(dt)
    for level in (1, 2):
        frame = sfp.encode(x, sfp.Format(level=level))
        assert np.array_equal(sfp.decode(frame).view(np.uint8), x.view(np.uint8))
        coders = [c["mantissa_coder"] for c in sfp.inspect(frame).chunks]
        assert all(", 2 with rANS symbols" in c for c in coders), coders


def test_a_level_outside_the_range_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"level=4 is outside 1\.\.3"):
        sfp.Format(level=4)
    assert sfp.Format().level == 2
