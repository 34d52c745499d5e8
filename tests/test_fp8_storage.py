"""FP8 tensors and named containers in tensor files, archives, policies, controllers and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.storage.tensorfiles import open_tensors, write_safetensors
from schrodinger_fp.training.controllers import NamedContainers, StepState, TensorSpec

SFP = [sys.executable, "-m", "schrodinger_fp.cli"]


def fp8_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    w = rng.normal(0, 0.05, (64, 96))
    return {
        "w.e4m3": w.astype(ml_dtypes.float8_e4m3fn),
        "w.e5m2": w.astype(ml_dtypes.float8_e5m2),
        "w.scale": np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu),
        "bias": rng.normal(size=96).astype(np.float32),
    }


def write(path: Path, tensors: dict[str, np.ndarray]) -> None:
    specs = [(k, v.dtype.name, v.shape) for k, v in tensors.items()]
    with open(path, "wb") as f:
        write_safetensors(f, specs, tensors.values())


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_safetensors_fp8_tags_round_trip(tmp_path: Path) -> None:
    tensors = fp8_tensors()
    write(tmp_path / "m.safetensors", tensors)
    header = (tmp_path / "m.safetensors").read_bytes()[8:400]
    assert b'"F8_E4M3"' in header and b'"F8_E5M2"' in header and b'"F8_E8M0"' in header
    back = dict(open_tensors(tmp_path / "m.safetensors").items())
    assert all(same_bits(back[k], v) for k, v in tensors.items())


def test_archives_store_fp8_losslessly_and_apply_named_rules(tmp_path: Path) -> None:
    tensors = fp8_tensors()
    policy = sfp.Policy(sfp.Format(man_bits=2), [("bias", sfp.Format.named("mxfp4"))])
    sfp.save(tmp_path / "a.sfp", tensors, policy, clamp=True)
    back = sfp.load(tmp_path / "a.sfp")
    for name in ("w.e4m3", "w.e5m2", "w.scale"):
        assert same_bits(back[name], tensors[name])
    mx = sfp.quantize(tensors["bias"], sfp.Format.named("mxfp4"))
    assert same_bits(back["bias"], mx)
    with sfp.open(tmp_path / "a.sfp") as archive:
        assert archive.entries["w.e4m3"].ratio > 1.1
        assert archive.entries["bias"].format == sfp.Format.named("mxfp4")


def test_policy_rules_name_fp8_and_mx_formats_through_json(tmp_path: Path) -> None:
    policy = sfp.Policy(sfp.Format.named("float8_e4m3fn"), [("*.ffn.*", sfp.Format.named("nvfp4"))])
    policy.save(tmp_path / "p.json")
    back = sfp.Policy.load(tmp_path / "p.json")
    assert back.format_for("l0.ffn.w") == sfp.Format.named("nvfp4")
    assert back.format_for("l0.attn.w") == sfp.Format.named("float8_e4m3fn")


def test_quantum_controllers_store_the_smallest_container_that_holds_the_widths() -> None:
    chooser = NamedContainers(["float8_e4m3fn", "float8_e5m2", "bfloat16", "mxfp4"])
    policy = sfp.Policy()
    qm = sfp.QuantumMantissa(lr=1.0, containers=chooser)
    qe = sfp.QuantumExponent(lr=1.0, containers=chooser)
    tensors = {"w": TensorSpec(1000, "float32")}
    qm.attach(policy, tensors)
    qe.attach(policy, tensors)
    # Full widths (8, 23): no container holds them, so the tensor is stored as it is.
    assert policy.format_for("w") == sfp.Format()
    seen = []
    for step in range(40):
        # Positive bit gradients: both widths shrink a bit per step.
        state = StepState(step=step, bit_grads={"w": {"man": 1.0, "exp": 1.0}})
        qm.step(state)
        qe.step(state)
        seen.append(str(policy.format_for("w")))
    # The exponent shrinks faster (8 -> 1 by step 8): m <= 7 first fits bfloat16, m <= 3
    # float8_e4m3fn (which ties float8_e5m2 at 8 bits and is listed first), m <= 1 mxfp4.
    order = [name for i, name in enumerate(seen) if i == 0 or seen[i - 1] != name]
    assert order == ["lossless", "bfloat16", "float8_e4m3fn", "mxfp4"]
    # Alone, the mantissa controller keeps float32's 8 exponent bits: no FP8 type holds them.
    policy = sfp.Policy()
    qm = sfp.QuantumMantissa(lr=1.0, containers=NamedContainers(["float8_e4m3fn", "bfloat16"]))
    qm.attach(policy, tensors)
    for step in range(40):
        qm.step(StepState(step=step, bit_grads={"w": {"man": 1.0}}))
    assert policy.format_for("w") == sfp.Format.named("bfloat16")
    with pytest.raises(ValueError, match="container 'fp7' is not one of"):
        NamedContainers(["fp7"])


def test_cli_compresses_fp8_and_takes_a_container(tmp_path: Path) -> None:
    tensors = fp8_tensors()
    src = tmp_path / "m.safetensors"
    write(src, tensors)
    subprocess.run([*SFP, "compress", "-q", str(src)], check=True, timeout=120)
    out = tmp_path / "back.safetensors"
    cmd = [*SFP, "decompress", "-q", str(src) + ".sfp", "-o", str(out)]
    subprocess.run(cmd, check=True, timeout=120)
    back = dict(open_tensors(out).items())
    assert all(same_bits(back[k], v) for k, v in tensors.items())
    named = tmp_path / "n.sfp"
    cmd = [*SFP, "compress", "-q", "--container", "float8_e4m3fn", str(src), "-o", str(named)]
    subprocess.run(cmd, check=True, timeout=120)
    listing = subprocess.run(
        [*SFP, "list", str(named)], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    assert "float8_e4m3fn (lossy)" in listing
    bias = sfp.load(named)["bias"]
    assert same_bits(bias, sfp.quantize(tensors["bias"], sfp.Format.named("float8_e4m3fn")))
    bad = subprocess.run(
        [*SFP, "compress", "--container", "nvfp4", "--man-bits", "2", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--container cannot be combined" in bad.stderr
