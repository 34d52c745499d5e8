"""Block-scaled containers (MX, NVFP4) against the numpy reference in ``mx_reference.py``."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from mx_reference import quantize as reference

import schrodinger_fp as sfp

SOURCES = [np.float32, ml_dtypes.bfloat16, np.float16]


def bits(x: np.ndarray) -> np.ndarray:
    return x.view({1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[x.dtype.itemsize])


def tensor(dtype: type, seed: int = 0) -> np.ndarray:
    """Rows of Gaussian values at scales 1e-6..1e4, a row of zeros, one with NaN and infinity,
    values near the largest of float16, and a last axis that is not a multiple of 32."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(12, 70)) * 10.0 ** rng.uniform(-6, 4, size=(12, 1))
    x[3] = 0.0
    x[4, 5], x[4, 40] = np.nan, -np.inf
    x[5, :10] = [60000, -65504, 1e-8, -0.0, 0.0, 3e-5, 448, 6, 1e30, -1e-30]
    x[6] = rng.integers(-8, 8, 70) * 0.5  # values MX holds exactly
    with np.errstate(over="ignore"):
        return x.astype(dtype)


@pytest.mark.parametrize("dtype", SOURCES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sfp.BLOCK_FORMATS)
def test_codes_and_values_equal_the_reference(name: str, dtype: type) -> None:
    for seed in range(3):
        x = tensor(dtype, seed)
        ref = reference(x, name)
        fmt = sfp.Format.named(name)
        codes = sfp.to_blocks(x, fmt)
        assert np.array_equal(bits(codes.elements), bits(ref.elements))
        assert np.array_equal(bits(codes.scales), bits(ref.scales))
        assert codes.tensor_scale == ref.tensor_scale
        q = sfp.quantize(x, fmt)
        assert np.array_equal(bits(q), bits(ref.values))
        assert np.array_equal(bits(sfp.decode(sfp.encode(x, fmt))), bits(q))


@pytest.mark.parametrize("name", sfp.BLOCK_FORMATS)
def test_shapes(name: str) -> None:
    fmt = sfp.Format.named(name)
    for shape in [(), (1,), (33,), (2, 3, 17), (4, 0), (0,)]:
        x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        y = sfp.decode(sfp.encode(x, fmt))
        assert y.shape == x.shape
        assert np.array_equal(bits(y), bits(sfp.quantize(x, fmt)))
        if x.size:
            assert np.array_equal(bits(y), bits(reference(x, name).values))


@pytest.mark.parametrize("name", sfp.BLOCK_FORMATS)
def test_block_data_round_trips_losslessly(name: str) -> None:
    x = tensor(np.float32)
    codes = sfp.to_blocks(x, sfp.Format.named(name))
    frame = sfp.encode_blocks(codes, level=3)
    back = sfp.decode_blocks(frame)
    assert np.array_equal(bits(back.elements), bits(codes.elements))
    assert np.array_equal(bits(back.scales), bits(codes.scales))
    assert back.tensor_scale == codes.tensor_scale and back.container == name
    assert np.array_equal(bits(sfp.decode(frame)), bits(sfp.quantize(x, sfp.Format.named(name))))
    info = sfp.inspect(frame)
    assert len(info.parts) == (3 if name == "nvfp4" else 2)


def test_stored_bits_per_value_are_near_the_container() -> None:
    x = np.random.default_rng(2).normal(size=(256, 1024)).astype(np.float32)
    for name in sfp.BLOCK_FORMATS:
        fmt = sfp.Format.named(name)
        stored = 8 * sfp.inspect(sfp.encode(x, fmt)).encoded_nbytes / x.size
        # Headers cost little on 256 Ki values; coding may only shrink the container.
        assert stored <= fmt.bits_per_value("float32") + 0.05, (name, stored)


def test_block_errors_name_what_is_wrong() -> None:
    codes = sfp.to_blocks(np.ones((2, 64), np.float32), sfp.Format.named("mxfp4"))
    with pytest.raises(ValueError, match=r"needs 128 elements and 4 scales, got 128 and 2"):
        sfp.encode_blocks(sfp.BlockCodes("mxfp4", codes.elements, codes.scales[:, :1], None))
    with pytest.raises(TypeError, match="holds float4_e2m1fn elements and float8_e8m0fnu scales"):
        sfp.encode_blocks(sfp.BlockCodes("mxfp4", codes.scales, codes.scales, None))
    with pytest.raises(ValueError, match="nvfp4 needs its float32 tensor scale"):
        scales = codes.scales.view(ml_dtypes.float8_e4m3fn)
        sfp.encode_blocks(sfp.BlockCodes("nvfp4", codes.elements, scales, None))
    with pytest.raises(ValueError, match="to_blocks needs a block format"):
        sfp.to_blocks(np.ones(4, np.float32), sfp.Format.named("float8_e4m3fn"))
    plain = sfp.encode(np.ones(4, np.float32))
    with pytest.raises(sfp.DecodeError, match="not a block-format frame"):
        sfp.decode_blocks(plain)


def test_corrupt_container_frames_raise_decode_error() -> None:
    frame = sfp.encode(tensor(np.float32), sfp.Format.named("mxfp8_e4m3"))
    for pos in range(0, len(frame), 5):
        bad = bytearray(frame)
        bad[pos] ^= 0x04
        with pytest.raises(sfp.DecodeError):
            sfp.decode(bytes(bad))
    for cut in range(0, len(frame), 9):
        with pytest.raises(sfp.DecodeError):
            sfp.decode(frame[:cut])


@pytest.mark.parametrize("name", [b for b in sfp.BLOCK_FORMATS if b != "nvfp4"])
def test_mx_equals_gfloat(name: str) -> None:
    # gfloat (Graphcore) encodes MX blocks independently of both this library and the reference.
    formats = pytest.importorskip("gfloat.formats")
    from gfloat.block import compute_scale_amax, quantize_block

    info = getattr(formats, f"format_info_{'mxfp4_e2m1' if name == 'mxfp4' else name}")
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(120, 32)) * 10.0 ** rng.uniform(-6, 4, size=(120, 1))).astype(np.float32)
    x[0] = 0.0
    x[1, :5] = [1792.0, 1e-30, 0.0, -0.0, 3.0]
    expected = np.stack([quantize_block(info, r.astype(np.float64), compute_scale_amax) for r in x])
    got = sfp.quantize(x, sfp.Format.named(name)).astype(np.float64)
    assert np.array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("name", ["mxfp4", "nvfp4", "float8_e4m3fn"])
def test_quantize_in_place_equals_quantize(name: str) -> None:
    x = tensor(np.float32)
    fmt = sfp.Format.named(name)
    expected = sfp.quantize(x, fmt)
    y = x.copy()
    assert sfp.quantize(y, fmt, out=y) is y
    assert np.array_equal(bits(y), bits(expected))
