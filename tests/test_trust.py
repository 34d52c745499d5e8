"""Trust: hostile and corrupted input to decode, property round trips, threads, scale."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schrodinger_fp as sfp
from schrodinger_fp import testing

# Large enough that the binding releases the GIL (64 KiB and up).
_BIG = 1 << 17


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(testing.arrays_and_formats(), st.sampled_from([None, 1, 5, 64]))
def test_roundtrip_any_array_any_format(case, chunk_size):
    x, fmt = case
    testing.assert_roundtrip(x, fmt, chunk_size=chunk_size)


@settings(max_examples=100, deadline=None)
@given(testing.arrays(non_contiguous=False))
def test_lossless_roundtrip_keeps_every_bit(x):
    testing.assert_roundtrip(x)
    testing.assert_roundtrip(x, sfp.Format())


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2048))
def test_decode_of_arbitrary_bytes_is_an_array_or_decode_error(data):
    try:
        y = sfp.decode(data)
    except sfp.DecodeError:
        return
    assert isinstance(y, np.ndarray)


def _frames():
    x = np.linspace(-4, 4, 300, dtype=np.float32).reshape(3, 100)
    x[0, :5] = [np.nan, np.inf, -np.inf, -0.0, 1e-42]
    return [
        sfp.encode(x),
        sfp.encode(x, sfp.Format(exp_bits=4, man_bits=2), chunk_size=64),
        sfp.encode(x.astype(np.float16), sfp.Format(exp_bits=3, man_bits=1, rounding="stochastic")),
    ]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(range(3)), st.data())
def test_corrupted_frames_raise_decode_error(which, data):
    frame = bytearray(_frames()[which])
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if kind == "flip":
        for pos in data.draw(
            st.lists(st.integers(0, len(frame) - 1), min_size=1, max_size=4, unique=True)
        ):
            frame[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        frame = frame[: data.draw(st.integers(0, len(frame) - 1))]
    else:
        pos = data.draw(st.integers(0, len(frame)))
        frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    with pytest.raises(sfp.DecodeError):
        sfp.decode(bytes(frame))


def test_decode_errors_are_value_errors_naming_the_problem():
    frame = bytearray(_frames()[1])
    frame[-1] ^= 1
    with pytest.raises(ValueError, match="checksum mismatch in chunk"):
        sfp.decode(bytes(frame))
    with pytest.raises(sfp.DecodeError, match="truncated"):
        sfp.decode(bytes(frame[:10]))
    with pytest.raises(sfp.DecodeError, match="not a schrodinger-fp frame"):
        sfp.decode(b"PK\x03\x04" + bytes(60))


def _workload():
    rng = np.random.default_rng(7)
    base = rng.standard_normal(_BIG).astype(np.float32)
    base[::97] = 0.0
    base[5] = np.nan
    jobs = []
    for fmt in [
        None,
        sfp.Format(exp_bits=4, man_bits=2),
        sfp.Format(exp_bits=5, man_bits=3, rounding="stochastic", underflow="stochastic", seed=3),
        sfp.Format(man_bits=1, rounding="truncate"),
    ]:
        jobs.append((base, fmt))
        jobs.append((base.astype(np.float64) * 3, fmt))
    return jobs


def test_threads_encode_and_decode_concurrently_like_serial():
    jobs = _workload()
    serial = [sfp.encode(x, f, chunk_size=1 << 14) for x, f in jobs]
    decoded = [sfp.decode(frame) for frame in serial]

    def work(i):
        x, f = jobs[i % len(jobs)]
        frame = sfp.encode(x, f, chunk_size=1 << 14, threads=1 + i % 3)
        out = np.empty_like(decoded[i % len(jobs)])
        sfp.decode(frame, out=out, threads=1 + (i + 1) % 3)
        q = sfp.quantize(x, f) if f is not None else x
        return i % len(jobs), frame, out, q

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(work, range(6 * len(jobs))))
    for j, frame, out, q in results:
        assert frame == serial[j]
        testing.assert_bitwise_equal(out, decoded[j])
        testing.assert_bitwise_equal(out, q)


def test_index_arithmetic_does_not_depend_on_chunking():
    # Stochastic rounding is keyed by the flat element index: every chunk size, and quantize over
    # the whole array, must agree, including chunk boundaries that fall mid-row of a 2-D array.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((37, 129)).astype(np.float32)
    fmt = sfp.Format(exp_bits=3, man_bits=1, rounding="stochastic", underflow="stochastic", seed=9)
    expected = sfp.quantize(x, fmt)
    for chunk in (1, 2, 3, 127, 128, 129, 4095, 4773, 1 << 20):
        testing.assert_bitwise_equal(
            sfp.decode(sfp.encode(x, fmt, chunk_size=chunk)), expected, f"chunk_size={chunk}"
        )
    # And the last value of a frame whose final chunk holds one value.
    frame = sfp.encode(x, fmt, chunk_size=x.size - 1)
    assert [c["values"] for c in sfp.inspect(frame).chunks] == [x.size - 1, 1]
    testing.assert_bitwise_equal(sfp.decode(frame), expected)


@pytest.mark.skipif(
    os.environ.get("SFP_SCALE_TEST") != "1",
    reason="opt-in: set SFP_SCALE_TEST=1 (needs about 16 GiB of memory)",
)
def test_scale_over_2_31_elements_and_2_32_bytes():
    n = (1 << 31) + 4099  # float16: more than 2^31 elements and 2^32 bytes
    block = np.random.default_rng(2).standard_normal(1 << 20).astype(np.float16)
    x = np.resize(block, n)
    x[-1] = np.float16(1000.0)
    assert x.nbytes > 1 << 32
    fmt = sfp.Format(exp_bits=4, man_bits=2, rounding="stochastic", seed=5)
    frame = sfp.encode(x, fmt)
    info = sfp.inspect(frame)
    assert info.shape == (n,) and info.chunks[-1]["values"] == n % sfp.MAX_CHUNK
    y = sfp.decode(frame)
    del frame
    q = sfp.quantize(x, fmt)
    step = 1 << 28
    for start in range(0, n, step):
        testing.assert_bitwise_equal(
            y[start : start + step], q[start : start + step], f"at {start}"
        )
    del y, q
    lossless = sfp.encode(x)
    y = sfp.decode(lossless)
    for start in range(0, n, step):
        testing.assert_bitwise_equal(
            y[start : start + step], x[start : start + step], f"at {start}"
        )
