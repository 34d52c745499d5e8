"""Named containers equal the ml_dtypes casts there and back, for every input."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp

TARGETS = [
    "float8_e4m3fn",
    "float8_e5m2",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float4_e2m1fn",
    "float16",
    "bfloat16",
]
UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def every_16_bit(dtype: type) -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)


def random_float32(n: int = 2_000_000) -> np.ndarray:
    bits = np.random.default_rng(14).integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    return bits.view(np.float32)


SOURCES = {
    "float16": lambda: every_16_bit(np.float16),
    "bfloat16": lambda: every_16_bit(ml_dtypes.bfloat16),
    "float32": random_float32,
}


def bits(x: np.ndarray) -> np.ndarray:
    return x.view(UINT[x.dtype.itemsize])


def cast(x: np.ndarray, target: str) -> np.ndarray:
    with np.errstate(all="ignore"):
        return x.astype(np.dtype(getattr(ml_dtypes, target, target))).astype(x.dtype)


def saturating_cast(x: np.ndarray, target: str) -> np.ndarray:
    """The cast with finite overflow and infinities held at the largest finite value."""
    t = np.dtype(getattr(ml_dtypes, target, target))
    top = ml_dtypes.finfo(t).max
    y = cast(x, target)
    with np.errstate(all="ignore"):
        wide = x.astype(np.float64)
        overflow = ~np.isnan(wide) & ~np.isfinite(y.astype(np.float64))
        held = np.where(wide < 0, -top, top).astype(t).astype(x.dtype)
    return np.where(overflow, held, y)


def mismatches(got: np.ndarray, expected: np.ndarray) -> int:
    return int(np.count_nonzero(bits(got) != bits(expected)))


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("target", TARGETS)
def test_quantize_equals_the_cast(source: str, target: str) -> None:
    x = SOURCES[source]()
    got = sfp.quantize(x, sfp.Format.named(target))
    assert mismatches(got, cast(x, target)) == 0


@pytest.mark.parametrize("source", list(SOURCES))
@pytest.mark.parametrize("target", TARGETS)
def test_satfinite_holds_overflow_at_the_largest_value(source: str, target: str) -> None:
    x = SOURCES[source]()
    got = sfp.quantize(x, sfp.Format.named(f"{target}_satfinite"))
    assert mismatches(got, saturating_cast(x, target)) == 0


def test_float64_to_float32_and_fp8() -> None:
    raw = np.random.default_rng(64).integers(0, 2**63, 200_000, dtype=np.uint64)
    raw[::2] |= np.uint64(1 << 63)
    # Half the values near float32's and FP8's ranges, where rounding and overflow happen.
    near = np.random.default_rng(1).normal(0, 300, 100_000)
    x = np.concatenate([raw.view(np.float64), near])
    for target in ("float32", "float8_e4m3fn", "float8_e5m2", "bfloat16", "float16"):
        assert mismatches(sfp.quantize(x, sfp.Format.named(target)), cast(x, target)) == 0


@pytest.mark.parametrize("target", ["float8_e4m3fn", "float8_e5m2_satfinite", "float4_e2m1fn"])
def test_frames_hold_the_cast_in_the_containers_bits(target: str) -> None:
    x = random_float32(100_000).reshape(100, 1000)
    fmt = sfp.Format.named(target)
    frame = sfp.encode(x, fmt)
    y = sfp.decode(frame)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert mismatches(y, sfp.quantize(x, fmt)) == 0
    info = sfp.inspect(frame)
    assert info.format == fmt and info.parts == [target.removesuffix("_satfinite")]
    # One byte per value at most, plus headers: the values are stored in the target's bits.
    assert info.encoded_nbytes < x.size + 4096


def test_the_issue_examples() -> None:
    # e4m3fn's largest value is 448: (464, 480] is NaN, not 480; float16's subnormals are real.
    x = np.array([470.0, 464.0, 1e6, -np.inf], dtype=np.float32)
    got = sfp.quantize(x, sfp.Format.named("float8_e4m3fn"))
    assert np.isnan(got[0]) and got[1] == 448 and np.isnan(got[2]) and np.isnan(got[3])
    sat = sfp.quantize(x, sfp.Format.named("float8_e4m3fn_satfinite"))
    assert list(sat) == [448, 448, 448, -448]
    h = np.array([4.2399985e-05], dtype=np.float32)
    assert sfp.quantize(h, sfp.Format.named("float16"))[0] == np.float32(4.2378902e-05)


def test_named_formats_refuse_widths_and_narrow_sources() -> None:
    with pytest.raises(ValueError, match="man_bits cannot be set"):
        sfp.Format(container="float8_e4m3fn", man_bits=2)
    with pytest.raises(ValueError, match="container='float9' is not one of"):
        sfp.Format.named("float9")
    fp8 = np.zeros(4, dtype=ml_dtypes.float8_e4m3fn)
    with pytest.raises(TypeError, match="stores float32, float64, float16 or bfloat16 arrays"):
        sfp.encode(fp8, sfp.Format.named("float4_e2m1fn"))
    assert str(sfp.Format.named("nvfp4")) == "nvfp4"
    assert sfp.Format.from_dict(sfp.Format.named("mxfp4").to_dict()) == sfp.Format.named("mxfp4")
