"""Every error path from Python: the right exception, with a message naming what was wrong."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import schrodinger_fp as sfp

X = np.linspace(-1, 1, 1000, dtype=np.float32)
FMT = sfp.Format(exp_bits=4, man_bits=2)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(sfp.DecodeError, ValueError)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: sfp.encode(X, sfp.Format(man_bits=31)),
            ValueError,
            "man_bits=31 exceeds float32's 23",
        ),
        (
            lambda: sfp.encode(X.astype(np.float16), sfp.Format(exp_bits=6)),
            ValueError,
            "exp_bits=6 exceeds float16's 5",
        ),
        (
            lambda: sfp.encode(X, sfp.Format(exp_bits=4, window_top=500)),
            ValueError,
            "window_top=500 is outside -112..=127",
        ),
        (
            lambda: sfp.encode(X, sfp.Format(window_top=2, exp_bits=8)),
            ValueError,
            "window_top=2 needs exp_bits below float32's 8",
        ),
        (lambda: sfp.encode(np.arange(5)), TypeError, "dtype int64 is not supported"),
        (
            lambda: sfp.encode(np.zeros(3, dtype=np.complex64)),
            TypeError,
            "dtype complex64 is not supported",
        ),
        (
            lambda: sfp.encode(X, dtype="bfloat16"),
            ValueError,
            "dtype='bfloat16' does not match the array's float32",
        ),
        (
            lambda: sfp.encode(X.view(np.uint32), dtype="bfloat16"),
            TypeError,
            "as raw bits of bfloat16 \\(needs uint16\\)",
        ),
        (lambda: sfp.encode(X, dtype="float8"), TypeError, "dtype 'float8' is not supported"),
        (lambda: sfp.encode(X, "e4m2"), TypeError, "fmt must be a schrodinger_fp.Format, got str"),
        (lambda: sfp.encode(X, chunk_size=0), ValueError, "chunk_size=0 is outside 1..=1048576"),
        (lambda: sfp.encode(X, chunk_size=2**21), ValueError, "chunk_size=2097152 is outside"),
        (lambda: sfp.encode(X, threads=0), ValueError, "threads=0 is outside 1..=256"),
        (
            lambda: sfp.quantize(X, FMT, out=np.empty(999, np.float32)),
            ValueError,
            r"out is float32\(999,\), the result is float32\(1000,\)",
        ),
        (
            lambda: sfp.quantize(X, FMT, out=np.empty(1000, np.float64)),
            ValueError,
            "out is float64",
        ),
        (
            lambda: sfp.quantize(X, FMT, out=X[::-1]),
            ValueError,
            "out must be C-contiguous and writable",
        ),
        (lambda: sfp.quantize(X, FMT, out=[0.0]), TypeError, "out must be a numpy array, got list"),
        (lambda: sfp.decode(12), TypeError, "a frame must be bytes-like, got int"),
    ],
)
def test_bad_arguments(call, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_read_only_out_and_overlap_are_refused() -> None:
    ro = np.empty_like(X)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be C-contiguous and writable"):
        sfp.quantize(X, FMT, out=ro)
    buf = np.linspace(0, 1, 100, dtype=np.float32)
    with pytest.raises(ValueError, match="out overlaps x without being x"):
        sfp.quantize(buf[:50], FMT, out=buf[25:75])
    frame = bytearray(sfp.encode(X, sfp.Format(exponent_coding="raw")))  # longer than X's bytes
    with pytest.raises(ValueError, match="out overlaps the frame being decoded"):
        sfp.decode(frame, out=np.frombuffer(frame, dtype=np.float32, count=1000))


GOOD = sfp.encode(X, FMT, chunk_size=300)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated: magic needs 4 bytes at offset 0, only 0 left"),
        (b"PK\x03\x04" + bytes(60), "not a schrodinger-fp frame: magic"),
        (GOOD[:4] + b"\x09\x00" + GOOD[6:], "frame version 9 is not supported"),
        (GOOD[:6] + b"\x0b" + GOOD[7:], "unknown dtype id 11"),
        (GOOD[:20], "truncated: chunk count needs 4 bytes at offset 20, only 0 left"),
        (GOOD[:-1], "chunk lengths add up to"),
        (GOOD + b"\x00", "chunk lengths add up to"),
        (GOOD[:40] + bytes([GOOD[40] ^ 1]) + GOOD[41:], "header checksum mismatch"),
        (GOOD[:-5] + bytes([GOOD[-5] ^ 0x10]) + GOOD[-4:], "checksum mismatch in chunk 3"),
    ],
)
def test_corrupt_frames_raise_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(sfp.DecodeError, match=message):
        sfp.decode(data)


def test_decode_error_from_inspect_too() -> None:
    with pytest.raises(sfp.DecodeError, match="not a schrodinger-fp frame"):
        sfp.inspect(b"\x00" * 64)


def test_max_nbytes_refuses_larger_frames_naming_both_sizes() -> None:
    blob = sfp.encode(np.zeros(1000, dtype=np.float32))
    assert sfp.decode(blob, max_nbytes=4000).shape == (1000,)
    with pytest.raises(
        sfp.DecodeError, match="holds 4000 bytes of float32, more than max_nbytes=3999"
    ):
        sfp.decode(blob, max_nbytes=3999)
    with pytest.raises(sfp.DecodeError, match="more than max_nbytes=3999"):
        sfp.decode(blob, out=np.empty(1000, dtype=np.float32), max_nbytes=3999)


def test_a_shape_too_large_to_address_is_a_decode_error() -> None:
    # A real frame of a (0, 0) array with its shape patched to 2^31 x 2^31: the element count fits
    # 64 bits, its bytes cannot be addressed; the header is refused before anything is allocated.
    blob = bytearray(sfp.encode(np.zeros((0, 0), dtype=np.float32)))
    struct.pack_into("<QQ", blob, 32, 1 << 31, 1 << 31)
    with pytest.raises(sfp.DecodeError, match=r"shape \[2147483648, 2147483648\] is too large"):
        sfp.decode(bytes(blob))
