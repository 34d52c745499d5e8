"""schrodinger-fp: adaptive float containers and lossless exponent coding for neural nets.

>>> import numpy as np, schrodinger_fp as sfp
>>> x = np.linspace(-3, 3, 1000, dtype=np.float32)
>>> y = sfp.decode(sfp.encode(x, sfp.Format(exp_bits=4, man_bits=2)))
>>> bool(np.array_equal(y, sfp.quantize(x, sfp.Format(exp_bits=4, man_bits=2))))
True
"""

from ._core import FORMAT_VERSION, MAX_CHUNK
from .blocks import BlockCodes, decode_blocks, encode_blocks, to_blocks
from .codec import DecodeError, FrameInfo, decode, encode, inspect, quantize
from .dtypes import NARROW_DTYPES, SUPPORTED_DTYPES, WIDE_DTYPES
from .format import BLOCK_FORMATS, CONTAINERS, EXPONENT_CODINGS, ROUNDINGS, UNDERFLOWS, Format
from .stats import exponent_entropy, exponent_histogram
from .storage import Archive, load, open, save
from .training.controllers import BitWave, QuantumExponent, QuantumMantissa
from .training.policy import Policy

__all__ = [
    "BLOCK_FORMATS",
    "CONTAINERS",
    "EXPONENT_CODINGS",
    "FORMAT_VERSION",
    "MAX_CHUNK",
    "NARROW_DTYPES",
    "ROUNDINGS",
    "SUPPORTED_DTYPES",
    "UNDERFLOWS",
    "WIDE_DTYPES",
    "Archive",
    "BitWave",
    "BlockCodes",
    "DecodeError",
    "Format",
    "FrameInfo",
    "Policy",
    "QuantumExponent",
    "QuantumMantissa",
    "decode",
    "decode_blocks",
    "encode",
    "encode_blocks",
    "exponent_entropy",
    "exponent_histogram",
    "inspect",
    "load",
    "open",
    "quantize",
    "save",
    "to_blocks",
]
