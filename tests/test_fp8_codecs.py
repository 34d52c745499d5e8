"""numcodecs and Zarr take the one-byte types and the named and block-scaled containers."""

from __future__ import annotations

import ml_dtypes
import numcodecs
import numpy as np
import pytest
import zarr

import schrodinger_fp as sfp
from schrodinger_fp.zarr import SchrodingerFPCodec


def fp8(n: int = 4096) -> np.ndarray:
    return np.random.default_rng(5).normal(0, 1, n).astype(ml_dtypes.float8_e4m3fn)


@pytest.mark.parametrize("name", sfp.NARROW_DTYPES)
def test_numcodecs_round_trips_narrow_types(name: str) -> None:
    bits = 8 if name.startswith("float8") else int(name[5])
    x = (np.arange(3000) % (1 << bits)).astype(np.uint8).view(getattr(ml_dtypes, name))
    codec = numcodecs.get_codec({"id": "schrodinger_fp", "dtype": name})
    assert codec.decode(codec.encode(x)).tobytes() == x.tobytes()
    assert codec.decode(codec.encode(x.view(np.uint8).tobytes())).tobytes() == x.tobytes()
    with pytest.raises(ValueError, match="is stored as it is"):
        numcodecs.get_codec({"id": "schrodinger_fp", "dtype": name, "format": {"exp_bits": 1}})


def test_numcodecs_named_and_block_formats() -> None:
    x = np.random.default_rng(6).normal(size=(8, 64)).astype(np.float32)
    for name in ("float8_e5m2", "mxfp6_e3m2", "nvfp4"):
        fmt = sfp.Format.named(name)
        codec = numcodecs.get_codec({"id": "schrodinger_fp", "format": fmt.to_dict()})
        got = codec.decode(codec.encode(x))
        assert got.tobytes() == sfp.quantize(x, fmt).tobytes()
        assert codec.get_config()["format"] == {"container": name}


def test_zarr_stores_fp8_bits_in_uint8_arrays() -> None:
    x = fp8().reshape(64, 64)
    z = zarr.create_array(
        store={},
        shape=x.shape,
        chunks=(16, 64),
        dtype="uint8",
        serializer=SchrodingerFPCodec(raw_dtype="float8_e4m3fn"),
        compressors=None,
    )
    z[:] = x.view(np.uint8)
    assert z[:].tobytes() == x.tobytes()
    codec = SchrodingerFPCodec.from_dict(SchrodingerFPCodec(raw_dtype="float8_e5m2").to_dict())
    assert codec.raw_dtype == "float8_e5m2"
    with pytest.raises(ValueError, match="raw_dtype='float9' is not one of"):
        SchrodingerFPCodec(raw_dtype="float9")


def test_zarr_block_formats_keep_whole_blocks_in_a_chunk() -> None:
    x = np.random.default_rng(7).normal(size=(32, 128)).astype(np.float32)
    fmt = sfp.Format.named("mxfp8_e4m3")
    z = zarr.create_array(
        store={},
        shape=x.shape,
        chunks=(8, 64),
        dtype="float32",
        serializer=SchrodingerFPCodec(format=fmt),
        compressors=None,
    )
    z[:] = x
    assert z[:].tobytes() == sfp.quantize(x, fmt).tobytes()
    with pytest.raises(ValueError, match="chunks of 48 there would split them"):
        zarr.create_array(
            store={},
            shape=x.shape,
            chunks=(8, 48),
            dtype="float32",
            serializer=SchrodingerFPCodec(format=fmt),
            compressors=None,
        )
