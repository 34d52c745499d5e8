"""Trust for archives: hypothesis-driven hostile and corrupted input to ``open``/``load``, a
golden archive frozen per archive version, and bit-flip outcome counts."""

from __future__ import annotations

import contextlib
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schrodinger_fp as sfp
from schrodinger_fp import testing
from schrodinger_fp.storage.index import END_MAGIC, MAGIC, PREAMBLE, TRAILER, VERSION, parse

GOLDEN = Path(__file__).parent.parent / "rust" / "sfp-core" / "tests" / "golden"
_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _tensors() -> dict[str, np.ndarray]:
    w = np.linspace(-3, 3, 96, dtype=np.float32).reshape(8, 12)
    w[0, :4] = [np.nan, -np.inf, -0.0, 1e-40]
    import ml_dtypes

    return {
        "layer.0.weight": w,
        "layer.0.bias": np.linspace(-1, 1, 7).astype(ml_dtypes.bfloat16),
        "step": np.array(1234, dtype=np.int64),
        "mask": np.array([True, False, True]),
    }


_POLICY = {"layer.0.weight": sfp.Format(exp_bits=4, man_bits=2)}


_CACHE: dict[str, Any] = {}


def _archive_bytes(tmp_path: Path) -> bytes:
    if "archive" not in _CACHE:
        path = tmp_path / "a.sfp"
        sfp.save(path, _tensors(), _POLICY)
        _CACHE["archive"] = path.read_bytes()
    return _CACHE["archive"]


def _load(tmp_path: Path, data: bytes) -> dict[str, np.ndarray]:
    path = tmp_path / "x.sfp"
    path.write_bytes(data)
    return sfp.load(path)


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape:
            return False
        if a[k].tobytes() != b[k].tobytes():
            return False
    return True


def _wrap_index(index: bytes, blobs: bytes = b"") -> bytes:
    """An archive around an arbitrary index document, with correct checksum and bounds."""
    head = PREAMBLE.pack(MAGIC, VERSION, 0) + blobs
    trailer = TRAILER.pack(len(head), len(index), zlib.crc32(index), VERSION, END_MAGIC)
    return head + index + trailer


@_SETTINGS
@given(st.binary(max_size=600))
def test_parse_of_arbitrary_bytes_is_a_result_or_decode_error(data):
    for candidate in (data, MAGIC + data, _wrap_index(data)):
        with contextlib.suppress(sfp.DecodeError):
            parse(candidate)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@_SETTINGS
@given(st.data())
def test_hostile_index_documents_are_decode_errors(data):
    # Well-formed JSON with any structure, including entries that are almost right.
    entry = {
        "name": "t",
        "dtype": "float32",
        "shape": [2],
        "encoding": "raw",
        "format": None,
        "offset": 16,
        "length": 8,
        "crc32": 0,
    }
    key = data.draw(st.sampled_from([*entry, None]))
    if key is not None:
        entry[key] = data.draw(_JSON)
    doc = {"version": 1, "tensors": [entry], "metadata": data.draw(_JSON)}
    blob = bytes(64)
    with contextlib.suppress(sfp.DecodeError):
        parse(_wrap_index(json.dumps(doc).encode(), blob))


def test_deeply_nested_index_is_a_decode_error():
    with pytest.raises(sfp.DecodeError, match="nested too deeply"):
        parse(_wrap_index(b"[" * 100_000 + b"]" * 100_000))


def test_forged_names_and_nested_archives(tmp_path):
    data = _archive_bytes(tmp_path)
    offset, length, *_ = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    for bad in ["x\x00y", "", "tab\t", 7]:
        doc = json.loads(data[offset : offset + length])
        doc["tensors"][0]["name"] = bad
        index = json.dumps(doc).encode()
        forged = (
            data[:offset]
            + index
            + TRAILER.pack(offset, len(index), zlib.crc32(index), VERSION, END_MAGIC)
        )
        with pytest.raises(sfp.DecodeError, match="tensor name"):
            _load(tmp_path, forged)
    # An archive stored as a raw uint8 tensor inside another stays bytes: nothing recurses.
    outer = tmp_path / "outer.sfp"
    sfp.save(outer, {"inner": np.frombuffer(data, dtype=np.uint8)})
    assert sfp.load(outer)["inner"].tobytes() == data


@_SETTINGS
@given(st.data())
def test_mutated_archives_load_correctly_or_raise_decode_error(tmp_path, data):
    original = _archive_bytes(tmp_path)
    if "expected" not in _CACHE:
        _CACHE["expected"] = _load(tmp_path, original)
    expected = _CACHE["expected"]
    buf = bytearray(original)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice", "overwrite"]))
    if kind == "flip":
        for pos in data.draw(st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=3)):
            buf[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf) - 1))]
    elif kind == "splice":
        pos = data.draw(st.integers(0, len(buf)))
        buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=32))
    else:
        pos = data.draw(st.integers(0, len(buf) - 1))
        patch = data.draw(st.binary(min_size=1, max_size=16))
        buf[pos : pos + len(patch)] = patch
    try:
        got = _load(tmp_path, bytes(buf))
    except sfp.DecodeError:
        return
    # Only bytes no checksum covers (alignment padding) may change without an error, and then
    # the values must be exactly the original ones.
    assert _same(got, expected)


def test_every_bit_flip_of_the_golden_archive_is_counted(tmp_path):
    data = _golden()[0].read_bytes()
    expected = _load(tmp_path, data)
    outcomes = {"DecodeError": 0, "unchanged values (padding)": 0}
    path = tmp_path / "flip.sfp"
    for bit in range(8 * len(data)):
        buf = bytearray(data)
        buf[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(buf)
        try:
            got = sfp.load(path)
        except sfp.DecodeError:
            outcomes["DecodeError"] += 1
            continue
        assert _same(got, expected), f"bit {bit} changed the values without an error"
        outcomes["unchanged values (padding)"] += 1
    print(f"golden archive ({len(data)} bytes): bit flips {outcomes}")
    assert outcomes["DecodeError"] > 0.8 * 8 * len(data)


def _bits(arr: np.ndarray) -> np.ndarray:
    return testing.bits_of(arr) if arr.dtype.kind in "fV" else arr


def _golden() -> tuple[Path, Path]:
    """The golden archive of this archive version and its expected arrays (as bits); written
    once, with SFP_WRITE_GOLDEN=1, when the version has none."""
    path = GOLDEN / f"archive_v{VERSION}.sfpa"
    expected = GOLDEN / f"archive_v{VERSION}_expected.npz"
    if os.environ.get("SFP_WRITE_GOLDEN") == "1" and not path.exists():
        sfp.save(path, _tensors(), _POLICY)
        tensors = _tensors()
        name = "layer.0.weight"
        tensors[name] = sfp.quantize(tensors[name], _POLICY[name])
        np.savez(expected, **{k: _bits(v) for k, v in tensors.items()})
    return path, expected


def test_golden_archive_loads_bit_exactly():
    """Frozen archive format: every later version must load it to the stored arrays."""
    path, expected_path = _golden()
    got = sfp.load(path)
    with np.load(expected_path) as stored:
        assert set(stored.files) == set(got)
        for name, arr in got.items():
            want, bits = stored[name], _bits(arr)
            assert bits.dtype == want.dtype and bits.shape == want.shape, name
            assert bits.tobytes() == want.tobytes(), name
    assert struct.unpack_from("<8sII", path.read_bytes())[1] == VERSION
