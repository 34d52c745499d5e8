"""SIMD levels, thread counts and in-place variants never change the output; threads are bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp

_PROBE = """
import hashlib, numpy as np, ml_dtypes, schrodinger_fp as sfp
rng = np.random.default_rng(5)
out = []
for dt in (np.float32, np.float64, np.float16, ml_dtypes.bfloat16):
    x = (rng.standard_normal(5000) * 3).astype(dt)
    x[::97] = np.inf; x[1::89] = np.nan; x[2::71] = 0
    for f in (sfp.Format(), sfp.Format(man_bits=2, rounding="stochastic", seed=3),
              sfp.Format(exp_bits=3, man_bits=1, underflow="stochastic"), sfp.Format(man_bits=0)):
        out.append(sfp.encode(x, f, chunk_size=1000))
        out.append(sfp.quantize(x, f).tobytes())
print(hashlib.sha256(b"".join(out)).hexdigest())
"""


def _probe(level: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SFP_SIMD", None)
    if level is not None:
        env["SFP_SIMD"] = level
    return subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True)


def test_every_simd_level_gives_the_same_bytes() -> None:
    best = _probe(None)
    assert best.returncode == 0, best.stderr
    ran = 0
    for level in ("scalar", "avx2", "avx512", "neon"):
        r = _probe(level)
        if r.returncode != 0:
            # A level this CPU lacks is a clear error naming it, never a crash.
            assert "ValueError" in r.stderr and f"SFP_SIMD={level}" in r.stderr, r.stderr
            continue
        ran += 1
        assert r.stdout == best.stdout, level
    assert ran >= 1


def test_unknown_simd_level_is_a_value_error() -> None:
    r = _probe("sse9")
    assert r.returncode != 0 and '"avx512"' in r.stderr


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
def test_thread_count_never_changes_bytes(dtype: type) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300_000).astype(dtype)
    for fmt in (sfp.Format(), sfp.Format(man_bits=3, rounding="stochastic", seed=9)):
        frames = {sfp.encode(x, fmt, chunk_size=50_000, threads=t) for t in (1, 2, 3)}
        assert len(frames) == 1
        (frame,) = frames
        outs = {sfp.decode(frame, threads=t).tobytes() for t in (1, 2, 3)}
        quants = {sfp.quantize(x, fmt, threads=t).tobytes() for t in (1, 2, 3)}
        assert len(outs) == 1 and outs == quants


@pytest.mark.parametrize("dtype", [np.float32, np.float16, ml_dtypes.bfloat16])
def test_in_place_equals_allocating(dtype: type) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((300, 70)) * 10).astype(dtype)
    for fmt in (sfp.Format(man_bits=1), sfp.Format(exp_bits=3, man_bits=2, rounding="stochastic")):
        want = sfp.quantize(x, fmt)
        buf = x.copy()
        got = sfp.quantize(buf, fmt, out=buf)
        assert got is buf and buf.tobytes() == want.tobytes()
        other = np.empty_like(x)
        assert sfp.quantize(x, fmt, out=other) is other and other.tobytes() == want.tobytes()
        frame = sfp.encode(x, fmt)
        dst = np.full_like(x, 7)
        assert sfp.decode(frame, out=dst) is dst and dst.tobytes() == want.tobytes()


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs /proc")
def test_many_thread_counts_leave_a_bounded_number_of_threads() -> None:
    # Each distinct count used to keep its own pool for ever (2..40 left hundreds of threads).
    x = np.ones(1000, dtype=np.float32)
    before = _thread_count()
    for n in range(2, 41):
        sfp.decode(sfp.encode(x, threads=n), threads=n)
    # Pools dropped from the kept set end their threads asynchronously: give them a moment.
    deadline = time.monotonic() + 10
    while _thread_count() - before > 4 * 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _thread_count() - before <= 4 * 40


def test_thread_counts_above_the_limit_are_value_errors() -> None:
    x = np.ones(10, dtype=np.float32)
    limit = sfp._core.MAX_THREADS
    sfp.encode(x, threads=limit)
    for call in (
        lambda: sfp.encode(x, threads=limit + 1),
        lambda: sfp.decode(sfp.encode(x), threads=limit + 1),
        lambda: sfp.quantize(x, sfp.Format(man_bits=3), threads=limit + 1),
    ):
        with pytest.raises(ValueError, match=f"threads={limit + 1} is outside 1..={limit}"):
            call()


def test_large_operations_release_the_gil() -> None:
    # A Python thread wakes from a short sleep while the main thread is inside one long encode.
    # Had the call held the GIL, the thread could run no bytecode (so record no time) before the
    # call returned.
    x = np.random.default_rng(0).standard_normal(1 << 24).astype(np.float32)
    woke: list[float] = []

    def wake() -> None:
        time.sleep(0.02)
        woke.append(time.perf_counter())

    t = threading.Thread(target=wake)
    t.start()
    sfp.encode(x, threads=1)
    returned = time.perf_counter()
    t.join()
    assert woke and woke[0] < returned
