"""Checkpoint directories: shards, their index, config and tokenizer files, in one archive and
back byte for byte; tensors found by name whichever shard holds them."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import schrodinger_fp as sfp

SFP = [sys.executable, "-m", "schrodinger_fp.cli"]


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SFP, *map(str, args)], capture_output=True, text=True, timeout=120)


def ok(*args: object) -> subprocess.CompletedProcess[str]:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result


def hf_checkpoint(root: Path) -> Path:
    """A Hugging Face style directory: two bf16/f32 shards, their index, config, tokenizer."""
    rng = np.random.default_rng(4)
    root.mkdir()
    shards = {
        "model-00001-of-00002.safetensors": {
            "embed.weight": rng.standard_normal((64, 32)).astype(ml_dtypes.bfloat16),
            "layer.0.weight": rng.standard_normal((32, 32)).astype(ml_dtypes.bfloat16),
        },
        "model-00002-of-00002.safetensors": {
            "layer.1.weight": rng.standard_normal((32, 32)).astype(np.float32),
            "norm.bias": np.zeros(32, np.float32),
        },
    }
    weight_map = {}
    for shard, tensors in shards.items():
        save_file(tensors, str(root / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, shard))
    index = {"metadata": {"total_size": 12345}, "weight_map": weight_map}
    (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (root / "config.json").write_text('{"hidden_size": 32}\n')
    (root / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (root / "tokenizer.json").write_bytes(bytes(range(256)) * 40)
    (root / "sub").mkdir()
    (root / "sub" / "notes.txt").write_text("nested files too\n")
    (root / "tokenizer.json").chmod(0o600)
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_checkpoint_directory_round_trips_byte_for_byte(tmp_path: Path) -> None:
    source = hf_checkpoint(tmp_path / "ckpt")
    before = snapshot(source)
    ok("compress", f"{source}/", "-q")
    archive = tmp_path / "ckpt.sfp"
    assert archive.is_file()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # one private file: a private archive
    source.rename(tmp_path / "original")
    ok("decompress", archive, "-q")
    assert snapshot(tmp_path / "ckpt") == before
    result = run("decompress", archive)
    assert result.returncode == 1 and "already exists" in result.stderr
    ok("decompress", archive, "-o", tmp_path / "elsewhere", "-q")
    assert snapshot(tmp_path / "elsewhere") == before
    (tmp_path / "ckpt" / "stray.txt").write_text("not in the archive")
    ok("decompress", archive, "-f", "-q")  # -f replaces the whole directory
    assert snapshot(tmp_path / "ckpt") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt",
        "ckpt.sfp",
        "elsewhere",
        "original",
    ]


def test_tensors_are_found_by_name_across_shards(tmp_path: Path) -> None:
    source = hf_checkpoint(tmp_path / "ckpt")
    ok("compress", source, "-q")
    archive = tmp_path / "ckpt.sfp"
    listing = ok("list", archive).stdout
    assert "embed.weight" in listing and "layer.1.weight" in listing
    assert "4 tensors" in listing and "config.json" in listing
    assert sorted(sfp.load(archive)) == [
        "embed.weight",
        "layer.0.weight",
        "layer.1.weight",
        "norm.bias",
    ]
    weight = sfp.load(archive, "layer.1.weight")["layer.1.weight"]
    with sfp.open(archive) as opened:
        assert opened.file("config.json") == b'{"hidden_size": 32}\n'
    from safetensors.numpy import load_file

    shard = load_file(str(source / "model-00002-of-00002.safetensors"))
    assert weight.tobytes() == shard["layer.1.weight"].tobytes()
    ok("test", archive)


def test_a_shard_index_compresses_the_shards_it_names(tmp_path: Path) -> None:
    source = hf_checkpoint(tmp_path / "ckpt")
    index = source / "model.safetensors.index.json"
    ok("compress", index, "-o", tmp_path / "shards.sfp", "-q")
    named = {
        k: v
        for k, v in snapshot(source).items()
        if k.startswith("model") or k.endswith("index.json")
    }
    out = tmp_path / "out"
    ok("decompress", tmp_path / "shards.sfp", "-o", out, "-q")
    assert snapshot(out) == named
    result = run("decompress", tmp_path / "shards.sfp", "-o", out)
    assert result.returncode == 1 and "already exists" in result.stderr
    (source / "model-00002-of-00002.safetensors").unlink()
    result = run("compress", index, "-o", tmp_path / "again.sfp")
    assert (
        result.returncode == 1
        and "shard model-00002-of-00002.safetensors is missing" in result.stderr
    )


def test_a_lossy_checkpoint_clamps_per_dtype(tmp_path: Path) -> None:
    source = hf_checkpoint(tmp_path / "ckpt")
    ok("compress", source, "--man-bits", "8", "-q")
    listing = ok("list", tmp_path / "ckpt.sfp").stdout
    lines = {line.split()[0]: line for line in listing.splitlines() if line.strip()}
    assert "lossless" in lines["embed.weight"] and "e8m8" in lines["layer.1.weight"]


def test_checkpoint_archives_refuse_stdout_and_to(tmp_path: Path) -> None:
    source = hf_checkpoint(tmp_path / "ckpt")
    ok("compress", source, "-q")
    for extra in (["-c"], ["--to", "npz"]):
        result = run("decompress", tmp_path / "ckpt.sfp", *extra)
        assert result.returncode == 1 and "sfp: error:" in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run("compress", empty)
    assert result.returncode == 1 and "holds no file" in result.stderr


@pytest.mark.parametrize("bad", ["../escape.json", "/abs/x.json", "a/../../b"])
def test_an_index_naming_paths_outside_is_refused(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": bad}}))
    result = run("compress", root / "model.safetensors.index.json")
    assert result.returncode == 1 and "cannot be used as a path" in result.stderr
