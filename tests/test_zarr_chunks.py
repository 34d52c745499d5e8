"""Lossy Zarr and numcodecs data does not depend on the chunking or on what shares a chunk;
stochastic rounding draws a different pattern in each chunk, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import schrodinger_fp as sfp
from schrodinger_fp.numcodecs import SchrodingerFP
from schrodinger_fp.zarr import SchrodingerFPCodec

WINDOWED = sfp.Format(exp_bits=3, man_bits=2, window_top=1)  # binades 2**-5 .. 2**1
STOCHASTIC = sfp.Format(man_bits=2, rounding="stochastic", seed=3)


def array(fmt: sfp.Format, chunks: tuple[int, ...], shape: tuple[int, ...]) -> zarr.Array:
    return zarr.create_array(
        store={},
        shape=shape,
        chunks=chunks,
        dtype="float32",
        serializer=SchrodingerFPCodec(format=fmt),
        compressors=None,
    )


def test_a_partial_write_keeps_the_values_beside_it() -> None:
    z = array(WINDOWED, (8,), (8,))
    x = np.array([1, 0.3, 0.12, 0.05, 1, 1, 1, 1], dtype=np.float32)
    z[:] = x
    z[7] = 300.0
    out = z[:]
    assert out[:7].tobytes() == sfp.quantize(x[:7], WINDOWED).tobytes()
    assert out[7] == 3.5  # saturated at the window's largest value


def test_the_chunking_does_not_change_the_values() -> None:
    x = (np.random.default_rng(0).standard_normal((60, 50)) * 0.5).astype(np.float32)
    results = []
    for chunks in ((60, 50), (7, 9), (1, 50)):
        z = array(WINDOWED, chunks, x.shape)
        z[:] = x
        results.append(z[:].tobytes())
    assert results[0] == results[1] == results[2] == sfp.quantize(x, WINDOWED).tobytes()


def test_a_reduced_exponent_without_a_window_is_refused_with_what_to_set() -> None:
    z = array(sfp.Format(exp_bits=3, man_bits=2), (4,), (8,))
    with pytest.raises(ValueError, match="set window_top"):
        z[:] = np.ones(8, np.float32)
    codec = SchrodingerFP("float32", {"exp_bits": 3})
    with pytest.raises(ValueError, match="set window_top"):
        codec.encode(np.ones(8, np.float32))


def test_stochastic_rounding_differs_per_chunk_and_repeats() -> None:
    # The second chunk is the first times two: the same mantissas, so one seed for both
    # chunks would round them the same way.
    first = np.random.default_rng(1).standard_normal(4000).astype(np.float32)
    x = np.concatenate([first, 2 * first])
    z = array(STOCHASTIC, (4000,), x.shape)
    z[:] = x
    out = z[:]
    assert out[4000:].tobytes() != (2 * out[:4000]).tobytes()
    again = array(STOCHASTIC, (4000,), x.shape)
    again[:] = x
    assert again[:].tobytes() == out.tobytes()
    codec = SchrodingerFP("float32", STOCHASTIC)
    a, b = codec.decode(codec.encode(first)), codec.decode(codec.encode(2 * first))
    assert b.tobytes() != (2 * a).tobytes()
    assert codec.encode(first) == codec.encode(first)
