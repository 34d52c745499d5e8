"""Micro-benchmarks of our kernels through the Python API, with pytest-benchmark.

``python -m pytest bench/micro_kernels.py --benchmark-only`` (``pip install ".[bench]"``). Each
kernel runs single-threaded on the same 4 Mi-value slice of the MiniLM weights, beside a memcpy of
the same bytes (``np.copyto`` into a preallocated array), so the table reads as a fraction of the
limit. These time things and assert only that the kernels give the right answer: they are not part
of the test suite (``testpaths`` is ``tests/``). The whole-codec comparison with the peers is
``bench/suite.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers

import schrodinger_fp as sfp

VALUES = 1 << 22
DTYPES = ("float32", "bfloat16", "float16")
ROUNDINGS = ("truncate", "nearest", "stochastic")
CODINGS = ("raw", "gecko", "entropy", "auto")
FORMATS: dict[str, dict[str, Any]] = {
    "lossless": {},
    "m7": {"man_bits": 7},
    "e4m3": {"exp_bits": 4, "man_bits": 3},
}

_WEIGHTS: dict[str, np.ndarray] = {}


def weights(dtype: str) -> np.ndarray:
    """The first ``VALUES`` corpus weights cast to ``dtype`` (loaded once per session)."""
    if not _WEIGHTS:
        _WEIGHTS["float32"] = np.ascontiguousarray(peers.weights()[:VALUES])
    if dtype not in _WEIGHTS:
        _WEIGHTS[dtype] = peers.cast(_WEIGHTS["float32"], dtype)
    return _WEIGHTS[dtype]


def label(benchmark: Any, x: np.ndarray) -> None:
    """Records the bytes a call moves, so throughput can be read beside the memcpy row."""
    benchmark.extra_info["bytes"] = x.nbytes


@pytest.mark.parametrize("dtype", DTYPES)
def test_memcpy(benchmark: Any, dtype: str) -> None:
    x = weights(dtype)
    out = np.empty_like(x)
    label(benchmark, x)
    benchmark(np.copyto, out, x)
    assert np.array_equal(out.view(np.uint8), x.view(np.uint8))


@pytest.mark.parametrize("rounding", ROUNDINGS)
@pytest.mark.parametrize("in_place", [False, True], ids=["new", "in_place"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_quantize(benchmark: Any, dtype: str, in_place: bool, rounding: str) -> None:
    x = weights(dtype)
    fmt = sfp.Format(exp_bits=5, man_bits=3, rounding=rounding)
    expected = sfp.quantize(x, fmt, threads=1)
    label(benchmark, x)
    if in_place:
        buf = x.copy()
        # Quantizing is idempotent, so repeating it in place times the same work every round.
        benchmark(sfp.quantize, buf, fmt, out=buf, threads=1)
        got = buf
    else:
        got = benchmark(sfp.quantize, x, fmt, threads=1)
    assert np.array_equal(got.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_encode(benchmark: Any, dtype: str, name: str, coding: str) -> None:
    x = weights(dtype)
    fmt = sfp.Format(exponent_coding=coding, **FORMATS[name])
    label(benchmark, x)
    frame = benchmark(sfp.encode, x, fmt, threads=1)
    benchmark.extra_info["ratio"] = x.nbytes / len(frame)
    back = sfp.decode(frame)
    assert np.array_equal(back.view(np.uint8), sfp.quantize(x, fmt).view(np.uint8))


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode(benchmark: Any, dtype: str, name: str, coding: str) -> None:
    x = weights(dtype)
    fmt = sfp.Format(exponent_coding=coding, **FORMATS[name])
    frame = sfp.encode(x, fmt, threads=1)
    out = np.empty_like(x)
    label(benchmark, x)
    benchmark(sfp.decode, frame, out=out, threads=1)
    assert np.array_equal(out.view(np.uint8), sfp.quantize(x, fmt).view(np.uint8))
