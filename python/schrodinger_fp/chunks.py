"""The format a chunked store (Zarr, numcodecs) encodes each chunk with.

A chunk is encoded on its own, so anything a format derives from the data would depend on the
chunking and on what else shares a chunk. Two things do:

- A reduced exponent's window: by default its top is the largest exponent in the encoded array.
  Chunk by chunk, writing 300.0 into a chunk of values near 0.1 would move the window and flush
  its neighbours to zero. A chunked store therefore needs ``window_top`` set in the codec's
  format, and refuses to write without it (frames already written still decode).
- Stochastic rounding's random bits, keyed by ``(seed, index within the chunk)``: with one seed,
  every chunk would round with the same pattern. Each chunk rounds with a seed derived from the
  codec's seed and a digest of the chunk's values (neither Zarr nor numcodecs tells a codec
  where a chunk lies), so equal chunks round alike and a store written twice is identical;
  stochastic values, unlike the others, depend on the chunking.
"""

from __future__ import annotations

import hashlib

import numpy as np

from schrodinger_fp.format import FIELD_WIDTHS, Format
from schrodinger_fp.seeds import is_stochastic, with_derived_seed

__all__ = ["chunk_format"]


def chunk_format(fmt: Format, chunk: np.ndarray, dtype: str) -> Format:
    """Return the format to encode ``chunk`` (an array of ``dtype``) with.

    Raises
    ------
    ValueError
        If ``fmt`` reduces the exponent without a ``window_top``.
    """
    if (
        fmt.exp_bits is not None
        and fmt.exp_bits < FIELD_WIDTHS[dtype][0]
        and fmt.window_top is None
    ):
        raise ValueError(
            f"exp_bits={fmt.exp_bits} without window_top: in a chunked store the exponent window "
            "must not depend on the values that share a chunk; set window_top in the codec's "
            "format (the exponent of the largest binade to keep, e.g. window_top=0 for values "
            "below 2)"
        )
    if not is_stochastic(fmt):
        return fmt
    digest = hashlib.blake2b(np.ascontiguousarray(chunk).view(np.uint8).data, digest_size=16)
    return with_derived_seed(fmt, digest.digest())
