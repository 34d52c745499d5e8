"""Zarr arrays compressed with the codec: native v3 codec and the numcodecs codec in Zarr v2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import schrodinger_fp as sfp
from schrodinger_fp.numcodecs import SchrodingerFP
from schrodinger_fp.zarr import SchrodingerFPCodec


def data(shape: tuple[int, ...] = (70, 45), dtype: str = "float32") -> np.ndarray:
    rng = np.random.default_rng(11)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    x.flat[:5] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
    return x


def reopen_in_fresh_process(path: Path) -> np.ndarray:
    """Read the array in a new interpreter: only the entry points can find the codec."""
    out = path.parent / "read.npy"
    code = f"import zarr, numpy as np; np.save({str(out)!r}, zarr.open_array({str(path)!r})[:])"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    return np.load(out)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_v3_native_codec_lossless(tmp_path: Path, dtype: str) -> None:
    x = data(dtype=dtype)
    path = tmp_path / "a.zarr"
    z = zarr.create_array(
        store=str(path),
        shape=x.shape,
        chunks=(16, 20),
        dtype=dtype,
        serializer=SchrodingerFPCodec(),
        compressors=None,
    )
    z[:] = x
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["codecs"] == [{"name": "schrodinger_fp", "configuration": {"format": {}}}]
    assert zarr.open_array(str(path))[:].tobytes() == x.tobytes()
    assert zarr.open_array(str(path))[5:40, 3:21].tobytes() == x[5:40, 3:21].tobytes()
    chunk = (path / "c" / "0" / "0").read_bytes()
    assert sfp.inspect(chunk).shape == (16, 20)  # each chunk is one of our frames


def test_v3_lossy_and_reopened_through_the_entry_point(tmp_path: Path) -> None:
    fmt = sfp.Format(man_bits=3)  # elementwise: chunking cannot change the result
    x = data()
    path = tmp_path / "b.zarr"
    z = zarr.create_array(
        store=str(path),
        shape=x.shape,
        chunks=(32, 32),
        dtype="float32",
        serializer=SchrodingerFPCodec(format=fmt),
    )
    z[:] = x
    expected = sfp.quantize(x, fmt)
    assert reopen_in_fresh_process(path).tobytes() == expected.tobytes()
    meta = json.loads((path / "zarr.json").read_text())
    assert meta["codecs"][0] == {
        "name": "schrodinger_fp",
        "configuration": {"format": {"man_bits": 3}},
    }


def test_v3_codec_refuses_non_float_arrays_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not int32"):
        zarr.create_array(
            store=str(tmp_path / "c.zarr"),
            shape=(4,),
            dtype="int32",
            serializer=SchrodingerFPCodec(),
        )
    with pytest.raises(ValueError, match="man_bits=12 exceeds float16"):
        zarr.create_array(
            store=str(tmp_path / "d.zarr"),
            shape=(4,),
            dtype="float16",
            serializer=SchrodingerFPCodec(format={"man_bits": 12}),
        )
    with pytest.raises(ValueError, match="unknown schrodinger_fp configuration"):
        SchrodingerFPCodec.from_dict({"name": "schrodinger_fp", "configuration": {"x": 1}})
    codec = SchrodingerFPCodec(format={"exp_bits": 4})
    assert SchrodingerFPCodec.from_dict(codec.to_dict()) == codec


def test_v2_array_with_the_numcodecs_codec(tmp_path: Path) -> None:
    x = data(dtype="float64")
    path = tmp_path / "v2.zarr"
    z = zarr.create_array(
        store=str(path),
        shape=x.shape,
        chunks=(25, 25),
        dtype="float64",
        compressors=SchrodingerFP("float64"),
        zarr_format=2,
    )
    z[:] = x
    meta = json.loads((path / ".zarray").read_text())
    assert meta["compressor"] == {"id": "schrodinger_fp", "dtype": "float64", "format": {}}
    assert reopen_in_fresh_process(path).tobytes() == x.tobytes()
