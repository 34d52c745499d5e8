"""A native Zarr v3 array-to-bytes codec: ``{"name": "schrodinger_fp", "configuration": {...}}``.

It takes the place of Zarr's ``bytes`` codec (chunks go in as arrays, come out as frames)
and is registered under the ``zarr.codecs`` entry point, so arrays written with it open
anywhere the package is installed::

    >>> import zarr, numpy as np
    >>> from schrodinger_fp import Format
    >>> from schrodinger_fp.zarr import SchrodingerFPCodec
    >>> z = zarr.create_array(store={}, shape=(100,), chunks=(10,), dtype="float32",
    ...                       serializer=SchrodingerFPCodec(format=Format(man_bits=7)),
    ...                       compressors=None)
    >>> z[:] = np.linspace(0, 1, 100, dtype=np.float32)
    >>> float(z[99])
    1.0
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from schrodinger_fp.chunks import chunk_format
from schrodinger_fp.codec import DecodeError, decode, encode
from schrodinger_fp.dtypes import NARROW_DTYPES, SUPPORTED_DTYPES, numpy_dtype
from schrodinger_fp.format import Format

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

__all__ = ["CODEC_NAME", "SchrodingerFPCodec"]

CODEC_NAME = "schrodinger_fp"


@dataclass(frozen=True)
class SchrodingerFPCodec(ArrayBytesCodec):
    """Zarr v3 codec that stores each chunk as a schrodinger-fp frame.

    Parameters
    ----------
    format : Format or dict, optional
        Target format (a ``Format`` or its ``to_dict()``); lossless when omitted. A reduced
        exponent needs ``window_top``, and stochastic rounding is keyed per chunk (see
        ``schrodinger_fp.chunks``). A block format (``Format.named("mxfp8_e4m3")``) scales
        blocks along the last axis of each chunk, so the chunks' last dimension must be a
        multiple of its block (32; 16 for NVFP4, whose tensor scale is then per chunk).
    raw_dtype : str, optional
        Zarr has no FP8 data types: a ``uint8`` array holds the bits of this one-byte type
        (``"float8_e4m3fn"``, ``"float8_e5m2"``, ...), stored losslessly.

    Notes
    -----
    The codec codes the chunk completely; Zarr's default zstd compressor on top of it gains
    almost nothing and costs time, so create arrays with ``compressors=None``.
    The array's data type must be float32, float64 or float16. Encoding and decoding run in
    worker threads (the codec releases the GIL), so Zarr processes chunks concurrently.
    """

    is_fixed_size = False

    format: Format
    raw_dtype: str | None

    def __init__(
        self, *, format: Format | dict[str, Any] | None = None, raw_dtype: str | None = None
    ) -> None:
        fmt = Format.of(format)
        if raw_dtype is not None and raw_dtype not in NARROW_DTYPES:
            raise ValueError(f"raw_dtype={raw_dtype!r} is not one of {', '.join(NARROW_DTYPES)}")
        object.__setattr__(self, "format", fmt)
        object.__setattr__(self, "raw_dtype", raw_dtype)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build the codec from its Zarr metadata."""
        _, configuration = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        configuration = configuration or {}
        unknown = set(configuration) - {"format", "raw_dtype"}
        if unknown:
            raise ValueError(f"unknown {CODEC_NAME} configuration keys {sorted(unknown)}")
        fmt = configuration.get("format")
        if fmt is not None and not isinstance(fmt, dict):
            raise ValueError(f"{CODEC_NAME} format must be a dict, got {fmt!r}")
        raw_dtype = configuration.get("raw_dtype")
        if raw_dtype is not None and not isinstance(raw_dtype, str):
            raise ValueError(f"{CODEC_NAME} raw_dtype must be a string, got {raw_dtype!r}")
        return cls(format=fmt, raw_dtype=raw_dtype)

    def to_dict(self) -> dict[str, Any]:
        """Return the codec's Zarr metadata."""
        configuration: dict[str, Any] = {"format": self.format.to_dict()}
        if self.raw_dtype is not None:
            configuration["raw_dtype"] = self.raw_dtype
        return {"name": CODEC_NAME, "configuration": configuration}

    def validate(
        self,
        *,
        shape: tuple[int, ...],
        dtype: ZDType[TBaseDType, TBaseScalar],
        chunk_grid: ChunkGrid,
    ) -> None:
        """Refuse arrays whose data type the codec cannot encode.

        Raises
        ------
        TypeError
            For a data type other than float32, float64, float16 (or bfloat16).
        ValueError
            If the format keeps more bits than the data type has.
        """
        name = dtype.to_native_dtype().name
        if self.raw_dtype is not None:
            if name != "uint8":
                raise TypeError(f"raw_dtype={self.raw_dtype!r} needs a uint8 array, not {name}")
            name = self.raw_dtype
        if name not in SUPPORTED_DTYPES:
            raise TypeError(f"{CODEC_NAME} encodes {SUPPORTED_DTYPES}, not {name}")
        self.format.widths(name)
        chunks = getattr(chunk_grid, "chunk_shape", None)
        if self.format.is_block and chunks:
            block = 16 if self.format.container == "nvfp4" else 32
            if chunks[-1] % block and chunks[-1] != shape[-1]:
                raise ValueError(
                    f"{self.format.container} scales blocks of {block} along the last axis: "
                    f"chunks of {chunks[-1]} there would split them"
                )

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        array = decode(chunk_bytes.as_numpy_array())
        if self.raw_dtype is not None and array.dtype == numpy_dtype(self.raw_dtype):
            array = array.view("uint8")
        expected = chunk_spec.dtype.to_native_dtype()
        if array.dtype.name != expected.name or array.size != _size(chunk_spec.shape):
            raise DecodeError(
                f"chunk frame holds {array.dtype} {array.shape}, the array expects "
                f"{expected} {chunk_spec.shape}"
            )
        array = array.astype(expected, copy=False).reshape(chunk_spec.shape)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(array)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        array = chunk_array.as_numpy_array()
        name = chunk_spec.dtype.to_native_dtype().name
        if self.raw_dtype is not None:
            array, name = array.view(numpy_dtype(self.raw_dtype)), self.raw_dtype
        fmt = chunk_format(self.format, array, name)
        frame = encode(array, fmt)
        return chunk_spec.prototype.buffer.from_bytes(frame)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        """Not known in advance: frames are variable-sized.

        Raises
        ------
        NotImplementedError
            Always.
        """
        raise NotImplementedError


def _size(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total
