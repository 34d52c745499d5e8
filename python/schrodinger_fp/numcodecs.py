"""The schrodinger-fp codec for numcodecs (and so for Zarr v2 arrays, Xarray, Kerchunk, ...).

Registered under the ``numcodecs.codecs`` entry point as ``"schrodinger_fp"``::

    >>> import numcodecs, numpy as np
    >>> codec = numcodecs.get_codec({"id": "schrodinger_fp", "dtype": "float32"})
    >>> x = np.linspace(0, 1, 100, dtype=np.float32)
    >>> bool((codec.decode(codec.encode(x)) == x).all())
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray, ensure_ndarray, ndarray_copy

from schrodinger_fp.chunks import chunk_format
from schrodinger_fp.codec import decode, encode
from schrodinger_fp.dtypes import NARROW_DTYPES, SUPPORTED_DTYPES, numpy_dtype
from schrodinger_fp.format import Format

__all__ = ["SchrodingerFP"]


class SchrodingerFP(Codec):  # type: ignore[misc]
    """Compress float arrays into schrodinger-fp frames.

    Parameters
    ----------
    dtype : str or numpy.dtype, default "float32"
        Element type of the arrays: float32, float64, float16, bfloat16 or a one-byte type
        (``NARROW_DTYPES``: FP8, FP6, FP4, E8M0; lossless only). Raw byte buffers
        given to ``encode`` are read as this type.
    format : Format or dict, optional
        Target format (a ``Format`` or its ``to_dict()``); lossless when omitted. A reduced
        exponent needs ``window_top`` to encode, and stochastic rounding is keyed per chunk
        (see ``schrodinger_fp.chunks``).

    Raises
    ------
    TypeError
        If ``dtype`` is not one the codec encodes.
    ValueError
        If ``format`` is invalid for ``dtype`` (more bits than the type has, unknown fields).

    Notes
    -----
    The configuration is ``{"id": "schrodinger_fp", "dtype": ..., "format": {...}}``; the
    frame itself also records dtype, shape and format, so ``decode`` restores the shape.
    ``encode`` never modifies its input.
    """

    codec_id = "schrodinger_fp"

    def __init__(self, dtype: Any = "float32", format: Format | dict[str, Any] | None = None):
        name = str(dtype) if str(dtype) in SUPPORTED_DTYPES else np.dtype(dtype).name
        if name not in SUPPORTED_DTYPES:
            raise TypeError(f"dtype={name} is not supported; expected one of {SUPPORTED_DTYPES}")
        fmt = Format.of(format)
        fmt.widths(name)
        if name in NARROW_DTYPES and not fmt.is_lossless_for(name):
            raise ValueError(f"{name} is stored as it is: format must be lossless, got {fmt}")
        self.dtype = name
        self.format = fmt

    def get_config(self) -> dict[str, Any]:
        """Return the JSON-ready configuration (``id``, ``dtype``, ``format``)."""
        return {"id": self.codec_id, "dtype": self.dtype, "format": self.format.to_dict()}

    def __repr__(self) -> str:
        return f"SchrodingerFP(dtype={self.dtype!r}, format={self.format.to_dict()!r})"

    def _as_array(self, buf: Any) -> np.ndarray:
        """View ``buf`` as an array of the codec's dtype without copying or modifying it."""
        arr = ensure_ndarray(buf)
        if arr.dtype.name == self.dtype:
            return arr
        if arr.dtype.itemsize == 1 and arr.dtype.kind in "iubV":
            flat = ensure_contiguous_ndarray(arr).reshape(-1)
            if flat.nbytes % numpy_dtype(self.dtype).itemsize:
                raise ValueError(
                    f"buffer of {flat.nbytes} bytes is not a whole number of {self.dtype} values"
                )
            return flat.view(numpy_dtype(self.dtype))
        raise TypeError(
            f"{self!r} cannot encode a {arr.dtype} array; build the codec with that dtype"
        )

    def encode(self, buf: Any) -> bytes:
        """Encode an array (or raw bytes of ``dtype`` values) into a frame.

        Parameters
        ----------
        buf : buffer-like
            An array of the codec's dtype, any shape and strides, or a byte buffer.

        Returns
        -------
        bytes

        Raises
        ------
        TypeError
            For an array of another dtype.
        ValueError
            For a reduced exponent without ``window_top``.
        """
        array = self._as_array(buf)
        return encode(array, chunk_format(self.format, array, self.dtype))

    def decode(self, buf: Any, out: Any = None) -> Any:
        """Decode a frame.

        Parameters
        ----------
        buf : buffer-like
            A frame written by ``encode``.
        out : buffer-like, optional
            Destination of the decoded values (an array of any shape with the same number of
            values, or a writable byte buffer of the same size).

        Returns
        -------
        numpy.ndarray or buffer
            The decoded array (with its original shape), or ``out``.

        Raises
        ------
        schrodinger_fp.DecodeError
            If the frame is corrupt.
        ValueError
            If the frame holds another dtype than the codec's, or ``out`` has the wrong size.
        """
        # One parse of the frame: decode, then check what it held.
        arr = decode(ensure_contiguous_ndarray(buf))
        held = next(n for n in SUPPORTED_DTYPES if numpy_dtype(n) == arr.dtype)
        if held != self.dtype:
            raise ValueError(f"frame holds {held}, {self!r} expects {self.dtype}")
        if out is not None:
            dst = ensure_ndarray(out)
            if dst.dtype == object:
                raise TypeError("cannot decode into an object array")
            if dst.nbytes != arr.nbytes:
                raise ValueError(f"out has {dst.nbytes} bytes, the frame decodes to {arr.nbytes}")
        return arr if out is None else ndarray_copy(arr, out)
