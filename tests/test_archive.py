"""Archives: round trips, policies, random access, strict header checks, atomic writes."""

from __future__ import annotations

import errno
import io
import json
import struct
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.storage import atomic as _atomic
from schrodinger_fp.storage.index import END_MAGIC, MAGIC, PREAMBLE, TRAILER

LOSSY = sfp.Format(exp_bits=4, man_bits=2)


def bits(a: np.ndarray) -> bytes:
    """The exact bytes of an array (NaN payloads and signed zeros included)."""
    return np.ascontiguousarray(a).tobytes()


def tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    f32 = rng.standard_normal((33, 17)).astype(np.float32)
    f32[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    f32.view(np.uint32)[1, 0] = 0x7FC0_1234  # a NaN with a payload
    return {
        "w.f32": f32,
        "w.f64": rng.standard_normal(100),
        "w.f16": rng.standard_normal((4, 5, 6)).astype(np.float16),
        "w.bf16": rng.standard_normal(300).astype(ml_dtypes.bfloat16),
        "strided": rng.standard_normal((20, 20)).astype(np.float32)[::3, ::2],
        "big_endian": rng.standard_normal(50).astype(">f4"),
        "scalar": np.float32(2.5),
        "empty": np.zeros((0, 3), np.float32),
        "ids": np.arange(512, dtype=np.int64).reshape(1, 512),
        "mask": rng.random(77) > 0.5,
        "u8": np.arange(256, dtype=np.uint8),
    }


def test_lossless_round_trip_is_bit_exact(tmp_path: Path) -> None:
    src = tensors()
    sfp.save(tmp_path / "a.sfp", src)
    out = sfp.load(tmp_path / "a.sfp")
    assert list(out) == list(src)
    for name, array in src.items():
        expected = np.asarray(array)
        assert out[name].shape == expected.shape, name
        assert out[name].dtype == expected.dtype.newbyteorder("="), name
        assert bits(out[name]) == bits(expected.astype(expected.dtype.newbyteorder("<"))), name


def test_lossy_policy_equals_quantize_and_leaves_other_dtypes_raw(tmp_path: Path) -> None:
    src = tensors()
    entries = sfp.save(tmp_path / "a.sfp", src, LOSSY)
    by_name = {e.name: e for e in entries}
    out = sfp.load(tmp_path / "a.sfp")
    for name in ("w.f32", "w.f64", "w.f16", "w.bf16", "strided"):
        assert bits(out[name]) == bits(sfp.quantize(src[name], LOSSY)), name
        assert by_name[name].encoding == "sfp" and not by_name[name].lossless
    for name in ("ids", "mask", "u8"):
        assert by_name[name].encoding == "raw" and by_name[name].lossless
        assert bits(out[name]) == bits(src[name])


class Rules:
    """A policy-like object: anything with format_for(name)."""

    def format_for(self, name: str) -> sfp.Format | None:
        return LOSSY if name.endswith("f32") else None


@pytest.mark.parametrize(
    "policy",
    [
        {"w.f32": LOSSY},
        Rules(),
        sfp.Policy(rules=[("*.f32", LOSSY)]),
        sfp.Policy.from_json(
            json.dumps(
                {"default": None, "rules": [{"pattern": "w.f3?", "format": LOSSY.to_dict()}]}
            )
        ),
    ],
    ids=["dict", "format_for", "rules", "json"],
)
def test_policy_forms_select_per_tensor(tmp_path: Path, policy: object) -> None:
    src = {k: v for k, v in tensors().items() if k in ("w.f32", "w.f64")}
    sfp.save(tmp_path / "a.sfp", src, policy)
    with sfp.open(tmp_path / "a.sfp") as archive:
        assert archive.entries["w.f32"].format == LOSSY
        assert archive.entries["w.f64"].lossless
        assert bits(archive["w.f64"]) == bits(src["w.f64"])
        assert not archive.lossless


def test_random_access_reads_only_the_named_tensor(tmp_path: Path) -> None:
    src = tensors()
    entries = sfp.save(tmp_path / "a.sfp", src)
    data = bytearray((tmp_path / "a.sfp").read_bytes())
    victim = next(e for e in entries if e.name == "w.f64")
    data[victim.offset + victim.length // 2] ^= 0x10
    (tmp_path / "a.sfp").write_bytes(bytes(data))
    out = sfp.load(tmp_path / "a.sfp", names=["w.f16", "ids"])
    assert bits(out["w.f16"]) == bits(src["w.f16"])
    with pytest.raises(sfp.DecodeError, match=r"w\.f64.*checksum"):
        sfp.load(tmp_path / "a.sfp", names=["w.f64"])
    with pytest.raises(KeyError, match="nope"):
        sfp.load(tmp_path / "a.sfp", names=["nope"])


def test_open_is_a_mapping_with_frame_info(tmp_path: Path) -> None:
    src = tensors()
    sfp.save(tmp_path / "a.sfp", src, {"w.f32": LOSSY}, metadata={"who": "test"})
    archive = sfp.open(tmp_path / "a.sfp")
    assert len(archive) == len(src) and set(archive) == set(src)
    assert archive.metadata == {"who": "test"}
    info = archive.info("w.f32")
    assert info is not None and info.shape == (33, 17) and info.dtype == "float32"
    assert archive.info("ids") is None
    assert archive.frame("ids") == src["ids"].tobytes()
    archive.verify()
    archive.close()
    with pytest.raises(ValueError, match="closed"):
        archive["w.f32"]


def test_save_streams_from_a_generator_and_to_a_file_object(tmp_path: Path) -> None:
    src = tensors()
    seen: list[str] = []
    buffer = io.BytesIO()
    sfp.save(buffer, ((k, v) for k, v in src.items()), progress=lambda e: seen.append(e.name))
    assert seen == list(src)
    (tmp_path / "b.sfp").write_bytes(buffer.getvalue())
    out = sfp.load(tmp_path / "b.sfp")
    assert bits(out["w.bf16"]) == bits(src["w.bf16"])


@pytest.mark.parametrize("name", ["", "tab\there", "nul\0", "x" * 1025])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="tensor name"):
        sfp.save(tmp_path / "a.sfp", {name: np.zeros(3, np.float32)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["dense/kernel", "model/layer_0/bias:0", "x..y", "../up", "a\\b"])
def test_names_that_look_like_paths_are_names(tmp_path: Path, name: str) -> None:
    x = np.arange(6, dtype=np.float32)
    sfp.save(tmp_path / "a.sfp", {name: x})
    assert bits(sfp.load(tmp_path / "a.sfp", name)[name]) == bits(x)


def test_duplicate_names_and_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate tensor name 'a'"):
        sfp.save(tmp_path / "a.sfp", [("a", np.zeros(2)), ("a", np.ones(2))])
    with pytest.raises(TypeError, match=r"'o'.*cannot store dtype object"):
        sfp.save(tmp_path / "a.sfp", {"o": np.array(["x", 1], dtype=object)})
    with pytest.raises(ValueError, match=r"'h'.*man_bits=30 exceeds float16"):
        sfp.save(tmp_path / "a.sfp", {"h": np.zeros(4, np.float16)}, sfp.Format(man_bits=30))
    with pytest.raises(TypeError, match="policy must be"):
        sfp.save(tmp_path / "a.sfp", {"a": np.zeros(2)}, policy=3)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_no_file_and_keeps_the_old_one(tmp_path: Path) -> None:
    def gen():
        yield "a", np.zeros(1000, np.float32)
        raise RuntimeError("source died")

    target = tmp_path / "a.sfp"
    with pytest.raises(RuntimeError):
        sfp.save(target, gen())
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        sfp.save(target, gen())
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(FileExistsError):
        sfp.save(target, {"a": np.zeros(2)}, overwrite=False)
    assert target.read_bytes() == b"old"


class FullDisk(io.RawIOBase):
    """A file object that runs out of space after ``room`` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)


def test_full_disk_file_object_raises_enospc() -> None:
    with pytest.raises(OSError) as info:
        sfp.save(FullDisk(200), tensors())
    assert info.value.errno == errno.ENOSPC


def test_full_disk_on_a_path_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Limited(io.FileIO):
        def write(self, data):  # type: ignore[no-untyped-def, override]
            if self.tell() + len(data) > 300:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(data)

    def fdopen(fd: int, mode: str = "r", *args: object, **kwargs: object) -> io.FileIO:
        return Limited(fd, "wb")

    monkeypatch.setattr(_atomic.os, "fdopen", fdopen)
    with pytest.raises(OSError, match="No space"):
        sfp.save(tmp_path / "a.sfp", tensors())
    assert list(tmp_path.iterdir()) == []


# --- corruption: every malformed archive is a DecodeError, never a crash ----------------


def small_archive(tmp_path: Path) -> bytes:
    src = {"a": np.arange(6, dtype=np.float32), "b": np.arange(3)}
    entries = sfp.save(tmp_path / "s.sfp", src, {"a": sfp.Format(man_bits=3)})
    assert [e.encoding for e in entries] == ["sfp", "raw"]
    return (tmp_path / "s.sfp").read_bytes()


def reindex(data: bytes, index: bytes) -> bytes:
    """Replace the index of an archive by ``index`` with a valid crc and trailer."""
    offset, _, _, version, end = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    return data[:offset] + index + TRAILER.pack(offset, len(index), zlib.crc32(index), version, end)


def edit_index(data: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    offset, length, *_ = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    doc = json.loads(data[offset : offset + length])
    edit(doc)
    return reindex(data, json.dumps(doc).encode())


def open_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.sfp"
    path.write_bytes(data)
    with sfp.open(path) as archive:
        archive.verify()


def test_every_truncation_is_a_decode_error(tmp_path: Path) -> None:
    data = small_archive(tmp_path)
    for size in range(len(data)):
        with pytest.raises(sfp.DecodeError):
            open_bytes(tmp_path, data[:size])


def test_every_bit_flip_is_detected(tmp_path: Path) -> None:
    data = small_archive(tmp_path)
    with sfp.open(tmp_path / "s.sfp") as archive:
        spans = [(e.offset, e.offset + e.length) for e in archive.entries.values()]
    index_offset = TRAILER.unpack_from(data, len(data) - TRAILER.size)[0]
    covered = [(0, PREAMBLE.size), *spans, (index_offset, len(data))]
    positions = [p for start, end in covered for p in range(start, end)]
    assert len(positions) > 100
    for position in positions:
        corrupt = bytearray(data)
        corrupt[position] ^= 0x04
        with pytest.raises(sfp.DecodeError):
            open_bytes(tmp_path, bytes(corrupt))


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"PK\x03\x04" + d[4:], "wrong magic"),
        (lambda d: d[:8] + struct.pack("<I", 2) + d[12:], "version 2 not supported"),
        (lambda d: d[:-8] + b"XXXXXXXX", "trailer not found"),
        (lambda d: reindex(d, b'{"version":1,"version":1,"tensors":[],"metadata":{}}'), "repeats"),
        (lambda d: reindex(d, b"not json"), "not valid JSON"),
        (lambda d: reindex(d, b'{"version":1,"tensors":[]}'), "exactly version"),
    ],
    ids=["magic", "version", "trailer", "duplicate-key", "json", "keys"],
)
def test_malformed_headers(tmp_path: Path, mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(sfp.DecodeError, match=message):
        open_bytes(tmp_path, mangle(small_archive(tmp_path)))


def _set(i: int, key: str, value: object):  # type: ignore[no-untyped-def]
    def edit(doc: dict) -> None:  # type: ignore[type-arg]
        doc["tensors"][i][key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(1, "name", "a"), "twice"),
        (_set(1, "name", "tab\there"), "must not contain control"),
        (_set(1, "name", ""), "1 to 1024 characters"),
        (_set(1, "offset", 16), "overlap"),
        (_set(1, "length", 10**9), "overlap|do not hold"),
        (_set(1, "shape", [4]), "do not hold"),
        (_set(1, "shape", [-3]), "invalid shape"),
        (_set(1, "dtype", "float128"), "unknown dtype"),
        (_set(0, "encoding", "zip"), "unknown encoding"),
        (_set(0, "format", {"man_bits": 99}), "invalid format"),
        (_set(0, "crc32", -1), "unsigned"),
        (lambda doc: doc["tensors"][0].pop("crc32"), "exactly"),
        (lambda doc: doc.update(metadata={"k": 1}), "metadata"),
    ],
)
def test_lying_index_entries(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(sfp.DecodeError, match=message):
        open_bytes(tmp_path, edit_index(small_archive(tmp_path), edit))


def test_frame_that_disagrees_with_the_index(tmp_path: Path) -> None:
    data = small_archive(tmp_path)
    bad = edit_index(data, _set(0, "shape", [7]))
    with pytest.raises(sfp.DecodeError, match="index says"):
        open_bytes(tmp_path, bad)


def test_layout_constants() -> None:
    assert len(MAGIC) == 8 and len(END_MAGIC) == 8
    assert PREAMBLE.size == 16 and TRAILER.size == 32
