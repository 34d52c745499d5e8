"""Type stubs of the Rust extension ``schrodinger_fp._core`` (buffers in, buffers out)."""

from collections.abc import Sequence
from typing import Any, Protocol

from typing_extensions import Buffer

__all__ = [
    "BLOCK_FORMATS",
    "CONTAINERS",
    "CONTAINER_VERSION",
    "DEFAULT_LEVEL",
    "DTYPES",
    "EXPONENT_CODINGS",
    "FORMAT_VERSION",
    "MAX_CHUNK",
    "MAX_LEVEL",
    "MAX_THREADS",
    "ROUNDINGS",
    "UNDERFLOWS",
    "DecodeError",
    "decode",
    "decode_blocks",
    "decode_into",
    "encode",
    "encode_blocks",
    "frame_info",
    "quantize",
]

class _FormatLike(Protocol):
    @property
    def exp_bits(self) -> int | None: ...
    @property
    def man_bits(self) -> int | None: ...
    @property
    def rounding(self) -> str: ...
    @property
    def underflow(self) -> str: ...
    @property
    def window_top(self) -> int | None: ...
    @property
    def seed(self) -> int: ...
    @property
    def exponent_coding(self) -> str: ...
    @property
    def level(self) -> int: ...
    @property
    def container(self) -> str | None: ...

class DecodeError(ValueError): ...

MAX_CHUNK: int
MAX_THREADS: int
DEFAULT_LEVEL: int
MAX_LEVEL: int
FORMAT_VERSION: int
CONTAINER_VERSION: int
CONTAINERS: list[str]
BLOCK_FORMATS: list[str]
ROUNDINGS: list[str]
UNDERFLOWS: list[str]
EXPONENT_CODINGS: list[str]
DTYPES: list[str]

def encode(
    src: Buffer,
    dtype: str,
    shape: Sequence[int],
    fmt: _FormatLike,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> bytes: ...
def decode(
    frame: Buffer, threads: int | None = None, max_nbytes: int | None = None
) -> tuple[bytearray, str, list[int]]: ...
def decode_into(
    frame: Buffer,
    out: Buffer,
    shape: Sequence[int],
    dtype: str,
    raw_bits: bool,
    threads: int | None = None,
    max_nbytes: int | None = None,
) -> None: ...
def quantize(
    src: Buffer | None,
    out: Buffer,
    dtype: str,
    shape: Sequence[int],
    fmt: _FormatLike,
    threads: int | None = None,
) -> None: ...
def frame_info(frame: Buffer) -> dict[str, Any]: ...
def encode_blocks(
    elements: Buffer,
    scales: Buffer,
    tensor_scale: float | None,
    container: str,
    dtype: str,
    shape: Sequence[int],
    fmt: _FormatLike,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> bytes: ...
def decode_blocks(
    frame: Buffer, threads: int | None = None
) -> tuple[bytes, bytes, float, str, str, list[int]]: ...
