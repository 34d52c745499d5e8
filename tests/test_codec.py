"""The codec's contract: decode(encode(x, f)) is quantize(x, f) bitwise; no format is lossless."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import schrodinger_fp as sfp
from schrodinger_fp.format import FIELD_WIDTHS

NUMPY = {
    "float32": np.float32,
    "float64": np.float64,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
}
UINT = {"float32": np.uint32, "float64": np.uint64, "float16": np.uint16, "bfloat16": np.uint16}


def edge_bits(dtype: str) -> list[int]:
    """Zeros, infinities, NaNs with payloads, subnormals, the extremes, one, of both signs."""
    e, m = FIELD_WIDTHS[dtype]
    sign, inf = 1 << (e + m), ((1 << e) - 1) << m
    one = ((1 << (e - 1)) - 1) << m
    values = [
        0,
        1,
        (1 << m) - 1,
        1 << m,
        inf - 1,
        inf,
        inf | 1,
        inf | (1 << (m - 1)) | 5,
        one,
        one | 1,
    ]
    return values + [v | sign for v in values]


@st.composite
def arrays(draw: st.DrawFn, dtype: str) -> np.ndarray:
    """Arrays of raw bit patterns, half of them drawn from the edge cases."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=9))
    elements = st.one_of(
        st.integers(0, np.iinfo(UINT[dtype]).max), st.sampled_from(edge_bits(dtype))
    )
    bits = draw(hnp.arrays(UINT[dtype], shape, elements=elements))
    return bits.view(NUMPY[dtype])


@st.composite
def formats(draw: st.DrawFn, dtype: str) -> sfp.Format:
    e, m = FIELD_WIDTHS[dtype]
    return sfp.Format(
        exp_bits=draw(st.none() | st.integers(1, e)),
        man_bits=draw(st.none() | st.integers(0, m)),
        rounding=draw(st.sampled_from(sfp.ROUNDINGS)),
        underflow=draw(st.sampled_from(sfp.UNDERFLOWS)),
        seed=draw(st.integers(0, 2**64 - 1)),
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", sfp.WIDE_DTYPES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_of_encode_is_quantize(dtype: str, data: st.DataObject) -> None:
    x = data.draw(arrays(dtype))
    fmt = data.draw(formats(dtype))
    chunk = data.draw(st.sampled_from([None, 1, 7, 64]))
    y = sfp.decode(sfp.encode(x, fmt, chunk_size=chunk))
    q = sfp.quantize(x, fmt)
    assert same_bits(y, q)
    assert same_bits(sfp.quantize(x, fmt, threads=1), q)


@pytest.mark.parametrize("dtype", sfp.WIDE_DTYPES)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_lossless_is_the_identity(dtype: str, data: st.DataObject) -> None:
    x = data.draw(arrays(dtype))
    assert same_bits(sfp.decode(sfp.encode(x)), x)
    assert same_bits(sfp.quantize(x, sfp.Format()), x)


@pytest.mark.parametrize("dtype", sfp.WIDE_DTYPES)
def test_specials_and_signed_zero_survive_every_reduction(dtype: str) -> None:
    bits = np.array(edge_bits(dtype), dtype=UINT[dtype])
    x = bits.view(NUMPY[dtype])
    with np.errstate(invalid="ignore"):
        as64 = x.astype(np.float64)
    special = ~np.isfinite(as64)
    for fmt in [
        sfp.Format(exp_bits=1, man_bits=0),
        sfp.Format(exp_bits=3, man_bits=1),
        sfp.Format(man_bits=0),
    ]:
        q = sfp.quantize(x, fmt).view(UINT[dtype])
        assert np.array_equal(q[special], bits[special]), fmt
        zeros = np.flatnonzero(as64 == 0)
        assert np.array_equal(q[zeros], bits[zeros]), fmt  # -0 keeps its sign


def test_shapes_zero_d_empty_and_non_contiguous() -> None:
    fmt = sfp.Format(exp_bits=4, man_bits=2)
    scalar = np.array(1.7, dtype=np.float32)
    assert sfp.decode(sfp.encode(scalar, fmt)).shape == ()
    assert sfp.decode(sfp.encode(scalar, fmt)) == np.float32(1.75)
    empty = np.zeros((3, 0, 2), dtype=np.float64)
    assert sfp.decode(sfp.encode(empty)).shape == (3, 0, 2)
    base = np.random.default_rng(1).standard_normal((40, 30)).astype(np.float32)
    for view in (base[::3, 1::2], base.T, np.asfortranarray(base)):
        assert same_bits(
            sfp.decode(sfp.encode(view, fmt)), sfp.quantize(np.ascontiguousarray(view), fmt)
        )
        assert same_bits(sfp.decode(sfp.encode(view)), np.ascontiguousarray(view))


def test_big_endian_is_converted_not_misread() -> None:
    x = np.linspace(-5, 5, 101).astype(">f4")
    y = sfp.decode(sfp.encode(x))
    assert y.dtype == np.dtype("<f4")
    assert np.array_equal(y, x.astype("<f4"))
    with pytest.raises(ValueError, match="in-place quantize needs a little-endian array"):
        sfp.quantize(x, sfp.Format(man_bits=2), out=x)


def test_bfloat16_as_ml_dtypes_or_as_uint16_view() -> None:
    x = np.random.default_rng(2).standard_normal(1000).astype(ml_dtypes.bfloat16)
    fmt = sfp.Format(exp_bits=4, man_bits=3)
    a = sfp.encode(x, fmt)
    b = sfp.encode(x.view(np.uint16), fmt, dtype="bfloat16")
    assert a == b
    y = sfp.decode(a)
    assert y.dtype == ml_dtypes.bfloat16
    q = sfp.quantize(x.view(np.uint16), fmt, dtype="bfloat16")
    assert q.dtype == np.uint16
    assert np.array_equal(y.view(np.uint16), q)


def test_frames_do_not_depend_on_threads_and_values_not_on_chunks() -> None:
    x = np.random.default_rng(3).standard_normal(300_000).astype(np.float32)
    fmt = sfp.Format(exp_bits=3, man_bits=2, rounding="stochastic", underflow="stochastic", seed=5)
    one = sfp.encode(x, fmt, threads=1, chunk_size=50_000)
    assert sfp.encode(x, fmt, threads=2, chunk_size=50_000) == one
    assert sfp.encode(x, fmt, threads=3, chunk_size=50_000) == one
    for chunk in (1000, 77_777, None):
        assert same_bits(sfp.decode(sfp.encode(x, fmt, chunk_size=chunk)), sfp.decode(one))


def test_a_frame_is_a_plain_bytes_of_its_length_also_when_it_outgrows_its_first_buffer() -> None:
    # The frame's `bytes` is asked for at about the most the frame can take and then cut to its
    # length; NaNs and infinities kept raw beside 8-bit codes outgrow that first buffer.
    import pickle

    x = np.arange(3 << 16, dtype=np.float32)
    x[::3] = np.inf
    x[1::3] = np.nan
    fmt = sfp.Format(exp_bits=4, man_bits=3)
    for data, f in [(x, fmt), (x[2::3].copy(), sfp.Format())]:
        one = sfp.encode(data, f, chunk_size=1 << 14, threads=1)
        for threads in (1, 2):
            frame = sfp.encode(data, f, chunk_size=1 << 14, threads=threads)
            assert type(frame) is bytes and frame == one
            assert frame == bytes(bytearray(frame)) and hash(frame) == hash(bytes(bytearray(frame)))
            assert pickle.loads(pickle.dumps(frame)) == frame
            np.testing.assert_array_equal(
                sfp.decode(frame).view(np.uint32), sfp.quantize(data, f).view(np.uint32)
            )
    assert len(sfp.encode(x, fmt)) > x.size * 9 // 8


def test_decode_and_quantize_write_into_out() -> None:
    x = np.random.default_rng(4).standard_normal((64, 64))
    fmt = sfp.Format(exp_bits=5, man_bits=4)
    out = np.empty_like(x)
    assert sfp.decode(sfp.encode(x, fmt), out=out) is out
    expected = sfp.quantize(x, fmt)
    assert same_bits(out, expected)
    copy = x.copy()
    assert sfp.quantize(copy, fmt, out=copy) is copy
    assert same_bits(copy, expected)
    other = np.empty_like(x)
    assert sfp.quantize(x, fmt, out=other) is other
    assert same_bits(other, expected)


def test_inspect_reports_streams_and_ratio() -> None:
    x = np.abs(np.random.default_rng(5).standard_normal((512, 384))).astype(np.float32)
    blob = sfp.encode(x, sfp.Format(exp_bits=4, man_bits=2, exponent_coding="raw"))
    info = sfp.inspect(blob)
    assert (info.dtype, info.shape) == ("float32", (512, 384))
    assert info.format == sfp.Format(exp_bits=4, man_bits=2, exponent_coding="raw")
    assert info.streams["signs"] == 0  # nothing negative: the sign stream is omitted
    assert info.streams["exponents"] == 512 * 384 * 4 // 8
    assert info.streams["mantissas"] == 512 * 384 * 2 // 8
    assert sum(info.streams.values()) == len(blob) == info.encoded_nbytes
    assert info.ratio == pytest.approx(32 / 6, rel=0.01)
    assert info.coders == {"raw": 1}
    assert "ratio 5.3" in str(info)


def test_the_readme_example() -> None:
    x = np.random.default_rng(0).standard_normal((512, 384)).astype(np.float32)
    fmt = sfp.Format(exp_bits=4, man_bits=2, rounding="nearest")
    blob = sfp.encode(x, fmt)
    assert x.nbytes / len(blob) >= 32 / 7 * 0.99  # sign + 4 + 2 bits, less with exponent coding
    y = sfp.decode(blob)
    assert np.array_equal(y.view(np.uint32), sfp.quantize(x, fmt).view(np.uint32))
    assert np.array_equal(sfp.decode(sfp.encode(x)).view(np.uint32), x.view(np.uint32))
