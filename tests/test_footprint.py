"""FootprintRecorder: bytes are the codec's real output at the policy's formats."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.training.footprint import FootprintRecorder, available_codings


def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "w": rng.standard_normal((64, 32)).astype(np.float32),
        "a": np.maximum(rng.standard_normal(4096), 0).astype(np.float32),
    }


def test_bytes_are_the_encoded_frames_at_the_policy_formats() -> None:
    policy = sfp.Policy()
    policy.set("a", sfp.Format(exp_bits=4, man_bits=1))
    rec = FootprintRecorder(policy, codings=("raw", "gecko"), every=5)
    ts = tensors()
    assert rec.record(3, ts) is None and not rec.samples  # not due
    s = rec.record(5, ts)
    assert s is not None
    for c in ("raw", "gecko"):
        want = len(sfp.encode(ts["w"], sfp.Format(exponent_coding=c))) + len(
            sfp.encode(ts["a"], sfp.Format(exp_bits=4, man_bits=1, exponent_coding=c))
        )
        assert s.encoded[c] == want
        assert rec.last_bytes["a"][c] < rec.last_bytes["w"][c]
    assert s.fp32_bytes == 4 * (64 * 32 + 4096)
    assert s.container_bits == pytest.approx((2048 * 32 + 4096 * 6) / 6144)
    assert rec.ratio("raw") == pytest.approx(s.fp32_bytes / s.encoded["raw"])
    for c in ("raw", "gecko"):  # one frame header per tensor, as the codec reports it
        hdr = sum(
            sfp.inspect(
                sfp.encode(x, replace(policy.format_for(n) or sfp.Format(), exponent_coding=c))
            ).streams["header"]
            for n, x in ts.items()
        )
        assert s.headers[c] == hdr > 0
        assert rec.header_share(c) == pytest.approx(hdr / s.encoded[c])


def test_ratio_sums_bytes_over_samples_and_last() -> None:
    policy = sfp.Policy()
    rec = FootprintRecorder(policy, codings=("raw",))
    ts = tensors()
    rec.record(0, ts)  # lossless: a little over FP32 (frame headers)
    policy.set_default(sfp.Format(exp_bits=3, man_bits=0))
    rec.record(1, ts)
    a, b = rec.samples
    assert 0.95 < a.ratio("raw") < 1.1 and b.ratio("raw") > 5.0
    both = (a.fp32_bytes + b.fp32_bytes) / (a.encoded["raw"] + b.encoded["raw"])
    assert rec.ratio("raw") == pytest.approx(both)
    assert rec.ratio("raw", last=1) == pytest.approx(b.ratio("raw"))
    assert rec.container_bits(last=1) == 4.0
    with pytest.raises(ValueError, match="'gecko'"):
        rec.ratio("gecko")


def test_recorder_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="every=0"):
        FootprintRecorder(sfp.Policy(), every=0)
    with pytest.raises(ValueError, match="codings"):
        FootprintRecorder(sfp.Policy(), codings=())
    rec = FootprintRecorder(sfp.Policy(), codings=("raw",))
    with pytest.raises(ValueError, match="no footprint sample"):
        rec.ratio("raw")
    with pytest.raises(TypeError, match="'i'"):
        rec.record(0, {"i": np.arange(4)})


def test_available_codings_lists_what_the_core_accepts() -> None:
    got = available_codings(("raw", "gecko", "entropy", "nonsense"))
    assert got[0] == "raw" and "nonsense" not in got
    assert set(got) <= set(sfp.EXPONENT_CODINGS)
