"""SIMD levels, thread counts and in-place variants never change the output (issue 4)."""

from __future__ import annotations

import os
import subprocess
import sys

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
