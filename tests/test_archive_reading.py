"""Reading archives: failures surface as themselves, files change under a reader, file objects,
names, the seeds of stochastic rounding per tensor, one format over several dtypes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.storage import archive as archive_module
from schrodinger_fp.storage.index import END_MAGIC, TRAILER, VERSION

STOCHASTIC = sfp.Format(man_bits=2, rounding="stochastic", seed=5)


def corrupt_frame_archive(path: Path) -> Path:
    """An archive whose entry checksum matches a frame that is corrupt inside."""
    x = np.random.default_rng(1).standard_normal(4096).astype(np.float32)
    sfp.save(path, {"ok": np.ones(3, np.float32), "bad": x})
    data = bytearray(path.read_bytes())
    offset, length, *_ = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    doc = json.loads(data[offset : offset + length])
    entry = doc["tensors"][1]
    start, end = entry["offset"], entry["offset"] + entry["length"]
    data[end - 40 : end] = bytes(40)  # the last chunk's payload: the frame checksum fails
    entry["crc32"] = zlib.crc32(data[start:end])
    index = json.dumps(doc).encode()
    trailer = TRAILER.pack(offset, len(index), zlib.crc32(index), VERSION, END_MAGIC)
    path.write_bytes(bytes(data[:offset]) + index + trailer)
    return path


def test_a_corrupt_frame_raises_decode_error_from_load_and_open(tmp_path: Path) -> None:
    path = corrupt_frame_archive(tmp_path / "c.sfp")
    with pytest.raises(sfp.DecodeError, match="tensor 'bad'"):
        sfp.load(path)
    with pytest.raises(sfp.DecodeError, match="tensor 'bad'"), sfp.open(path) as archive:
        archive["bad"]
    with sfp.open(path) as archive:
        assert archive["ok"].tolist() == [1.0, 1.0, 1.0]
        with pytest.raises(sfp.DecodeError):
            archive.verify()


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt])
def test_an_exception_while_decoding_surfaces_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[BaseException]
) -> None:
    sfp.save(tmp_path / "a.sfp", {"w": np.arange(1000, dtype=np.float32)})

    def decode(data: object, **kwargs: object) -> np.ndarray:
        view = memoryview(data)  # type: ignore[arg-type]  # held by the traceback
        assert view.nbytes
        raise error()

    monkeypatch.setattr(archive_module, "decode", decode)
    with pytest.raises(error), sfp.open(tmp_path / "a.sfp") as archive:
        archive["w"]
    with pytest.raises(error):
        sfp.load(tmp_path / "a.sfp")


def test_truncating_an_open_archive_is_a_decode_error_not_a_crash(tmp_path: Path) -> None:
    # In a child process: a memory-mapped reader would die of SIGBUS here.
    path = tmp_path / "t.sfp"
    sfp.save(path, {"w": np.random.default_rng(0).standard_normal(300_000).astype(np.float32)})
    script = f"""
import os, schrodinger_fp as sfp
archive = sfp.open({str(path)!r})
os.truncate({str(path)!r}, 4096)
try:
    archive["w"]
except sfp.DecodeError as exc:
    print("DecodeError:", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "DecodeError:" in result.stdout and "truncated" in result.stdout


def test_load_and_open_take_file_objects(tmp_path: Path) -> None:
    tensors = {"a": np.arange(10, dtype=np.float32), "b": np.ones((2, 3), ml_dtypes.bfloat16)}
    buffer = io.BytesIO()
    sfp.save(buffer, tensors)
    buffer.seek(0)
    out = sfp.load(buffer)
    assert out["a"].tobytes() == tensors["a"].tobytes()
    assert out["b"].tobytes() == tensors["b"].tobytes()
    sfp.save(tmp_path / "f.sfp", tensors)
    with (tmp_path / "f.sfp").open("rb") as handle, sfp.open(handle) as archive:
        assert archive["a"].tolist() == list(range(10))
    with pytest.raises(TypeError, match="path or a binary file object"):
        sfp.open(42)  # type: ignore[arg-type]


def test_load_with_one_name_reads_that_tensor(tmp_path: Path) -> None:
    sfp.save(tmp_path / "a.sfp", {"weight": np.ones(3, np.float32), "w": np.zeros(2)})
    assert list(sfp.load(tmp_path / "a.sfp", names="weight")) == ["weight"]
    with pytest.raises(KeyError, match="'x'"):
        sfp.load(tmp_path / "a.sfp", names="x")


def test_errors_about_a_file_name_it(tmp_path: Path) -> None:
    (tmp_path / "not.sfp").write_bytes(b"hello world, this is not an archive at all, no.")
    with pytest.raises(sfp.DecodeError, match=r"not\.sfp: not a schrodinger-fp archive"):
        sfp.open(tmp_path / "not.sfp")


def test_stochastic_rounding_differs_per_tensor_and_is_reproducible(tmp_path: Path) -> None:
    x = np.random.default_rng(2).standard_normal(5000).astype(np.float32)
    sfp.save(tmp_path / "a.sfp", {"first": x, "second": x}, STOCHASTIC)
    sfp.save(tmp_path / "b.sfp", {"first": x, "second": x}, STOCHASTIC)
    assert (tmp_path / "a.sfp").read_bytes() == (tmp_path / "b.sfp").read_bytes()
    out = sfp.load(tmp_path / "a.sfp")
    assert out["first"].tobytes() != out["second"].tobytes()
    with sfp.open(tmp_path / "a.sfp") as archive:
        for name in ("first", "second"):
            fmt = archive.entries[name].format
            assert fmt is not None and fmt.seed != STOCHASTIC.seed
            assert sfp.quantize(x, fmt).tobytes() == out[name].tobytes()


def test_one_format_over_several_dtypes_with_clamp(tmp_path: Path) -> None:
    tensors = {
        "f32": np.linspace(-2, 2, 100, dtype=np.float32),
        "bf16": np.linspace(-2, 2, 100).astype(ml_dtypes.bfloat16),
    }
    fmt = sfp.Format(man_bits=8)
    with pytest.raises(ValueError, match="man_bits=8 exceeds bfloat16's 7"):
        sfp.save(tmp_path / "a.sfp", tensors, fmt)
    entries = {e.name: e for e in sfp.save(tmp_path / "a.sfp", tensors, fmt, clamp=True)}
    assert not entries["f32"].lossless and entries["bf16"].lossless
    out = sfp.load(tmp_path / "a.sfp")
    assert out["bf16"].tobytes() == tensors["bf16"].tobytes()
    assert out["f32"].tobytes() == sfp.quantize(tensors["f32"], fmt).tobytes()


def test_a_safetensors_input_truncated_while_read_is_an_error_not_a_crash(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"a": np.ones(100_000, np.float32), "b": np.ones(100_000, np.float32)}, str(path))
    script = f"""
import os
from schrodinger_fp.storage.tensorfiles import open_tensors
tensors = open_tensors({str(path)!r})
os.truncate({str(path)!r}, 4096)
try:
    [array.sum() for _, array in tensors.items()]
except ValueError as exc:
    print("ValueError:", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert "truncated" in result.stdout
