"""The ``sfp`` command's inputs and outputs: types recorded in the archive, permissions, pipes,
long names, mixed dtypes, and what errors name."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import schrodinger_fp as sfp
from schrodinger_fp.cli import main
from schrodinger_fp.storage import archive as archive_module
from schrodinger_fp.storage.tensorfiles import open_tensors

SFP = [sys.executable, "-m", "schrodinger_fp.cli"]


def run(
    *args: object, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*SFP, *map(str, args)], input=stdin, capture_output=True, timeout=120, cwd=cwd
    )


def ok(*args: object, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    result = run(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return result


def fails(*args: object, message: str, code: int = 1) -> str:
    result = run(*args)
    stderr = result.stderr.decode()
    assert result.returncode == code, (result.returncode, stderr)
    assert message in stderr, stderr
    return stderr


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "dense/kernel": rng.standard_normal((32, 16)).astype(np.float32),
        "emb.bf16": rng.standard_normal((64, 64)).astype(ml_dtypes.bfloat16),
        "ids": np.arange(6, dtype=np.int64),
    }


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(weights(), str(path))
    return path


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


def load(data: bytes) -> dict[str, np.ndarray]:
    """Tensors of safetensors bytes (read through a file: safetensors' own bytes reader
    cannot make bfloat16 numpy arrays)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.safetensors"
        path.write_bytes(data)
        tensors = open_tensors(path)
        return {name: np.array(array) for name, array in tensors.items()}


def test_decompress_takes_the_type_the_archive_records(model: Path, tmp_path: Path) -> None:
    ok("compress", model, "-o", tmp_path / "minilm.sfp", "-q")
    ok("decompress", tmp_path / "minilm.sfp", "-q")
    assert same(load_file(str(tmp_path / "minilm")), weights())


def test_a_missing_input_says_so(tmp_path: Path) -> None:
    fails("decompress", tmp_path / "nothing.sfp", message="nothing.sfp: no such file")
    fails("compress", tmp_path / "nothing.safetensors", message="no such file")
    fails("list", tmp_path / "nothing.sfp", message="nothing.sfp: No such file")


def test_permissions_of_the_input_are_kept(model: Path, tmp_path: Path) -> None:
    model.chmod(0o600)
    ok("compress", model, "-q")
    archive = Path(f"{model}.sfp")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    ok("decompress", archive, "-o", tmp_path / "back.safetensors", "-q")
    assert stat.S_IMODE((tmp_path / "back.safetensors").stat().st_mode) == 0o600
    model.chmod(0o640)
    ok("compress", model, "-f", "-q")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o640


def test_stdin_and_stdout(model: Path, tmp_path: Path) -> None:
    data = model.read_bytes()
    archive = ok("compress", "-", "-q", stdin=data).stdout  # stdin in: stdout out, as zstd
    assert archive[:4] == b"\x89SFP"
    (tmp_path / "p.sfp").write_bytes(archive)
    assert same(sfp.load(tmp_path / "p.sfp"), weights())
    ok("compress", "-", "-o", tmp_path / "q.sfp", "-q", stdin=data)
    assert same(sfp.load(tmp_path / "q.sfp"), weights())
    assert ok("compress", model, "-c", "-q").stdout[:4] == b"\x89SFP"
    restored = ok("decompress", tmp_path / "p.sfp", "-c", "-q").stdout
    assert same(load(restored), weights())
    restored = ok("decompress", tmp_path / "p.sfp", "-o", "-", "-q").stdout
    assert same(load(restored), weights())
    with (tmp_path / "p.sfp").open("rb") as handle:  # stdin redirected from a file
        result = subprocess.run(
            [*SFP, "decompress", "-", "-q"], stdin=handle, capture_output=True, timeout=120
        )
    assert result.returncode == 0, result.stderr
    assert same(load(result.stdout), weights())
    npy = tmp_path / "x.npy"
    np.save(npy, np.arange(5, dtype=np.float32))
    archive = ok("compress", "-", "-q", stdin=npy.read_bytes()).stdout
    (tmp_path / "x.sfp").write_bytes(archive)
    assert sfp.load(tmp_path / "x.sfp")["arr_0"].tolist() == [0, 1, 2, 3, 4]


def test_where_a_pipe_cannot_work_it_says_why(model: Path, tmp_path: Path) -> None:
    ok("compress", model, "-q")
    result = run("decompress", "-", stdin=Path(f"{model}.sfp").read_bytes())
    assert result.returncode == 1
    assert b"cannot read an archive from a pipe: its index is at its end" in result.stderr
    np.savez(tmp_path / "z.npz", a=np.zeros(3))
    result = run("compress", "-", stdin=(tmp_path / "z.npz").read_bytes())
    assert result.returncode == 1 and b"an .npz cannot be read from a pipe" in result.stderr
    result = run("compress", "-", stdin=model.read_bytes()[:100])
    assert result.returncode == 1 and b"stream ends inside" in result.stderr


def test_one_bit_count_over_a_mixed_checkpoint(model: Path) -> None:
    result = ok("compress", model, "--man-bits", "8")
    assert b"--man-bits 8 exceeds bfloat16's 7" in result.stderr
    listing = ok("list", f"{model}.sfp").stdout.decode()
    lines = {line.split()[0]: line for line in listing.splitlines()}
    assert "e8m8 nearest (lossy)" in lines["dense/kernel"]
    assert "lossless" in lines["emb.bf16"]
    out = sfp.load(f"{model}.sfp")
    assert out["emb.bf16"].tobytes() == weights()["emb.bf16"].tobytes()
    help_text = ok("compress", "--help").stdout.decode()
    assert "keeps that dtype's whole field" in " ".join(help_text.split())


def test_errors_name_the_users_path_not_a_temporary_file(model: Path, tmp_path: Path) -> None:
    target = tmp_path / "missing_dir" / "x.sfp"
    stderr = fails("compress", model, "-o", target, message=str(target))
    assert ".tmp" not in stderr
    (tmp_path / "junk.sfp").write_bytes(b"x" * 100)
    for command in ("list", "test", "stats"):
        fails(command, tmp_path / "junk.sfp", message="junk.sfp: not a schrodinger-fp archive")


def test_output_names_up_to_the_limit_work(model: Path, tmp_path: Path) -> None:
    for length in (242, 250, 255):
        name = "n" * (length - len(".sfp")) + ".sfp"
        ok("compress", model, "-o", tmp_path / name, "-q")
        assert (tmp_path / name).is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model.name, name])
        (tmp_path / name).unlink()


def test_a_corrupt_frame_is_an_error_in_every_command(tmp_path: Path) -> None:
    from test_archive_reading import corrupt_frame_archive

    path = corrupt_frame_archive(tmp_path / "c.sfp")
    for args in (["test"], ["stats"], ["decompress", "-o", tmp_path / "c.safetensors"]):
        stderr = fails(args[0], path, *args[1:], message="tensor 'bad'")
        assert stderr.startswith("sfp: error: ") and "BufferError" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.sfp"]


def test_an_interrupt_while_decoding_exits_130(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compress", str(model), "-q"]) == 0

    def decode(data: object, **kwargs: object) -> np.ndarray:
        raise KeyboardInterrupt

    monkeypatch.setattr(archive_module, "decode", decode)
    for args in (["test"], ["decompress", "-o", str(tmp_path / "o.safetensors")]):
        assert main([args[0], f"{model}.sfp", *args[1:]]) == 130
        assert "sfp: interrupted (SIGINT)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name, f"{model.name}.sfp"]


def test_threads_out_of_range_is_a_usage_error(model: Path) -> None:
    fails("compress", model, "-T", "5000", message="must be 0 to 1024", code=2)
    assert os.path.exists(model)
