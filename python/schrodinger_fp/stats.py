"""Exponent statistics: why a tensor compresses as it does.

The lossless ratio of a float tensor is set mostly by how its exponent field is distributed: a
tensor whose values sit in a few binades has a low exponent entropy, and the entropy coder gets
within a few percent of it (``Format(exponent_coding="entropy")``).

>>> import numpy as np, schrodinger_fp as sfp
>>> values, counts = sfp.exponent_histogram(np.array([1.0, 1.5, 2.0, 0.0], dtype=np.float32))
>>> values.tolist(), counts.tolist()
([0, 127, 128], [1, 2, 1])
>>> sfp.exponent_entropy(np.array([1.0, 2.0], dtype=np.float32))
1.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .dtypes import resolve
from .format import FIELD_WIDTHS

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def exponent_fields(x: Any, *, dtype: str | None = None) -> np.ndarray:
    """The raw exponent field of every value, flattened.

    Parameters
    ----------
    x
        A float32, float64, float16 or bfloat16 array (or raw bits with ``dtype``).
    dtype
        The type of raw bits in an unsigned integer array.

    Returns
    -------
    numpy.ndarray
        ``uint16`` biased exponent fields (0 for zeros and subnormals, all ones for inf and NaN).
    """
    arr, name = resolve(x, dtype)
    exp_bits, man_bits = FIELD_WIDTHS[name]
    bits = arr.reshape(-1).view(_UINT[arr.dtype.itemsize])
    return ((bits >> man_bits) & ((1 << exp_bits) - 1)).astype(np.uint16)


def exponent_histogram(x: Any, *, dtype: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct exponent fields of an array and how often each occurs.

    Parameters
    ----------
    x
        A float32, float64, float16 or bfloat16 array (or raw bits with ``dtype``).
    dtype
        The type of raw bits in an unsigned integer array.

    Returns
    -------
    values, counts
        Sorted distinct biased exponent fields (``uint16``) and their counts (``int64``).
    """
    values, counts = np.unique(exponent_fields(x, dtype=dtype), return_counts=True)
    return values, counts.astype(np.int64)


def exponent_entropy(x: Any, *, dtype: str | None = None) -> float:
    """Order-0 entropy of the exponent field, in bits per value.

    This is what an ideal order-0 coder needs per exponent over the whole array; per chunk the
    codec's tables adapt, so it can do slightly better on tensors whose statistics drift.

    Parameters
    ----------
    x
        A float32, float64, float16 or bfloat16 array (or raw bits with ``dtype``).
    dtype
        The type of raw bits in an unsigned integer array.

    Returns
    -------
    float
        Bits per value (0.0 for an empty array or a single exponent).
    """
    _, counts = exponent_histogram(x, dtype=dtype)
    return entropy_of_counts(counts)


def entropy_of_counts(counts: np.ndarray) -> float:
    """Order-0 entropy, in bits per item, of a histogram.

    Parameters
    ----------
    counts
        Non-negative counts.

    Returns
    -------
    float
        ``-sum(p * log2(p))`` over the non-zero counts (0.0 when there are none).
    """
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    total = c.sum()
    if total == 0:
        return 0.0
    p = c / total
    return float(max(0.0, -(p * np.log2(p)).sum()))
