"""The numcodecs codec: numcodecs' own conformance checks, frozen fixtures, registry, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numcodecs
import numpy as np
import pytest
from numcodecs.tests.common import (
    check_backwards_compatibility,
    check_config,
    check_encode_decode,
    check_err_encode_object_buffer,
)

import schrodinger_fp as sfp
from schrodinger_fp.numcodecs import SchrodingerFP

FIXTURES = Path(__file__).parent / "fixtures"
# A chunked store needs the window fixed by the codec (float16's exponent is kept whole).
LOSSY = sfp.Format(exp_bits=5, man_bits=3, window_top=15)
LOSSY_F16 = sfp.Format(man_bits=3)


def arrays(dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    base = rng.standard_normal(1200).astype(np.dtype(dtype))
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-3, 65000.0]).astype(np.dtype(dtype))
    return [
        base,
        base.reshape(30, 40),
        np.asfortranarray(base.reshape(30, 40)),
        base.reshape(10, 12, 10),
        special,
        np.linspace(-1, 1, 1000).astype(np.dtype(dtype)),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_numcodecs_encode_decode_conformance(dtype: str) -> None:
    codec = SchrodingerFP(dtype=dtype)
    for array in arrays(dtype):
        if dtype == "bfloat16" and np.isnan(array.astype(np.float32)).any():
            # numpy's assert_array_equal cannot match bfloat16 NaNs: compare the bits instead
            assert codec.decode(codec.encode(array)).tobytes() == array.tobytes()
            continue
        check_encode_decode(array, codec)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_lossy_decode_equals_quantize(dtype: str) -> None:
    fmt = LOSSY_F16 if dtype == "float16" else LOSSY
    codec = SchrodingerFP(dtype=dtype, format=fmt)
    for array in arrays(dtype):
        expected = sfp.quantize(array, fmt)
        assert (
            codec.decode(codec.encode(array)).tobytes() == np.ascontiguousarray(expected).tobytes()
        )
        out = np.empty(array.shape, array.dtype)
        codec.decode(codec.encode(array), out=out)
        assert out.tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    "codec",
    [
        SchrodingerFP(),
        SchrodingerFP("float64", LOSSY),
        SchrodingerFP(np.float16, {"man_bits": 4, "rounding": "stochastic", "seed": 9}),
        SchrodingerFP("bfloat16"),
    ],
)
def test_config_round_trip_registry_and_repr(codec: SchrodingerFP) -> None:
    check_config(codec)
    config = codec.get_config()
    assert set(config) == {"id", "dtype", "format"} and config["id"] == "schrodinger_fp"
    assert numcodecs.get_codec(dict(config)) == codec
    assert eval(repr(codec), {"SchrodingerFP": SchrodingerFP}) == codec
    assert codec != SchrodingerFP("float32", {"man_bits": 1})


def test_registered_through_the_entry_point() -> None:
    cls = numcodecs.registry.get_codec({"id": "schrodinger_fp"}).__class__
    assert cls.__module__ == "schrodinger_fp.numcodecs"


def test_encode_never_mutates_the_input() -> None:
    array = arrays("float32")[1]
    frozen = array.copy()
    array.flags.writeable = False
    codec = SchrodingerFP(format=LOSSY)
    codec.encode(array)
    codec.encode(array[::2, ::3])
    assert array.tobytes() == frozen.tobytes()


def test_errors() -> None:
    check_err_encode_object_buffer(SchrodingerFP())
    with pytest.raises(TypeError, match="int32"):
        SchrodingerFP(dtype="int32")
    with pytest.raises(TypeError, match="float64 array"):
        SchrodingerFP("float32").encode(np.zeros(4))
    with pytest.raises(ValueError, match="whole number"):
        SchrodingerFP("float32").encode(b"12345")
    with pytest.raises(ValueError, match="man_bits=11 exceeds float16"):
        SchrodingerFP("float16", {"man_bits": 11})
    with pytest.raises(ValueError, match="unknown Format field"):
        SchrodingerFP("float16", {"bits": 11})
    frame = SchrodingerFP("float64").encode(np.zeros(4))
    with pytest.raises(ValueError, match="frame holds float64"):
        SchrodingerFP("float32").decode(frame)
    with pytest.raises(ValueError, match="out has"):
        SchrodingerFP("float64").decode(frame, out=np.empty(5))
    with pytest.raises(TypeError, match="object"):
        SchrodingerFP("float64").decode(frame, out=np.empty(4, dtype=object))
    with pytest.raises(sfp.DecodeError):
        SchrodingerFP("float64").decode(frame[:-3])


LOSSY_FIXTURE_CODECS = [
    SchrodingerFP("float32", {"exp_bits": 4, "man_bits": 2}),
    SchrodingerFP("float64", {"man_bits": 10, "rounding": "truncate"}),
    SchrodingerFP("float16", {"exp_bits": 3, "man_bits": 1}),
]
WRITE = os.environ.get("SFP_WRITE_FIXTURES") == "1"


def fixture_arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    return [
        (rng.standard_normal((20, 30)) * 0.02).astype(np.float32),
        np.linspace(-100, 100, 500, dtype=np.float32),
    ]


def test_backwards_compatibility_lossless(monkeypatch: pytest.MonkeyPatch) -> None:
    """numcodecs' own check: frames frozen by an earlier build decode to their arrays."""
    root = FIXTURES / "numcodecs"
    fixture = root / "fixture" / "schrodinger_fp"
    if not WRITE:  # numcodecs would silently write missing fixtures; they must exist
        for i in range(len(fixture_arrays())):
            assert (fixture / f"array.{i:02d}.npy").is_file()
            assert (fixture / "codec.00" / f"encoded.{i:02d}.dat").is_file()
    root.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(root)
    check_backwards_compatibility("schrodinger_fp", fixture_arrays(), [SchrodingerFP("float32")])


@pytest.mark.parametrize("j", range(len(LOSSY_FIXTURE_CODECS)))
def test_backwards_compatibility_lossy(j: int) -> None:
    """Lossy frames frozen by an earlier build decode to the same values, bit for bit."""
    codec = LOSSY_FIXTURE_CODECS[j]
    folder = FIXTURES / "numcodecs" / "lossy" / f"codec.{j:02d}"
    if WRITE:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(codec.get_config(), sort_keys=True))
        for i, array in enumerate(fixture_arrays()):
            frame = codec.encode(array.astype(codec.dtype))
            (folder / f"encoded.{i:02d}.dat").write_bytes(frame)
            np.save(folder / f"decoded.{i:02d}.npy", codec.decode(frame))
    assert numcodecs.get_codec(json.loads((folder / "config.json").read_text())) == codec
    for i, array in enumerate(fixture_arrays()):
        frame = (folder / f"encoded.{i:02d}.dat").read_bytes()
        expected = np.load(folder / f"decoded.{i:02d}.npy")
        assert codec.decode(frame).tobytes() == expected.tobytes()
        if codec.format.exp_bits is not None and codec.format.window_top is None:
            # Frames written with a data-dependent window still decode; new ones are refused.
            with pytest.raises(ValueError, match="without window_top"):
                codec.encode(array.astype(codec.dtype))
            continue
        fresh = codec.decode(codec.encode(array.astype(codec.dtype)))
        assert fresh.tobytes() == expected.tobytes()
