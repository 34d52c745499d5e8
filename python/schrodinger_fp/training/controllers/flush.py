"""The exponent's flush limit: how narrow a window a tensor's own values allow.

A window of ``e`` exponent bits keeps the ``2**e - 1`` binades under the
tensor's largest magnitude and flushes the rest to zero. One bit too few
flushes whole binades at once, and the loss jumps by far more than a
first-order bit gradient shows (``bench/experiments/bit_cost.py``). The rule
(ours): a window may flush at most the share of the tensor's energy that its
mantissa rounding already costs.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["exponent_bits_needed", "flush_budget", "magnitude_range", "top_exponent"]


def flush_budget(man_bits: int) -> float:
    """The share of a tensor's energy its mantissa rounding already costs: ``2**(-2 m) / 28``.

    Round to nearest at ``m`` mantissa bits errs by ``ulp / sqrt(12)`` (rms),
    ``ulp = 2**(e - m)``, on values of mean square ``7/3 * 4**e`` when spread
    evenly over a binade. An exponent window that flushes more energy than
    this makes the exponent, not the mantissa, the tensor's main error
    (:func:`bit_gradients`).
    """
    return 2.0 ** (-2 * man_bits) / 28


def exponent_bits_needed(
    values: np.ndarray, man_bits: int, lowest: int, highest: int, sample: int = 1 << 14
) -> int:
    """The fewest exponent bits in ``[lowest, highest]`` whose window keeps ``values`` in budget.

    A window of ``e`` bits keeps the ``2**e - 1`` binades under the largest
    magnitude and flushes the rest; the answer is the smallest ``e`` that
    flushes at most :func:`flush_budget` of the energy (estimated on a strided
    sample of about ``sample`` values), ``highest`` when none does.
    """
    if lowest == highest:  # one answer whatever the values (a tensor not narrowed yet)
        return lowest
    flat = values.reshape(-1)
    # of the whole tensor: a sample may miss its largest value
    top, finite = _top_and_finite(flat)
    if top is None:
        return lowest
    if flat.size > sample:
        flat = flat[:: -(-flat.size // sample)]
    if finite and lowest < highest:
        # the usual answer first: when the window of ``lowest`` bits holds every binade of the
        # sample, nothing is flushed, and the smallest magnitude alone says so
        largest, smallest = magnitude_range(flat)
        if largest == 0.0 or (1 << lowest) - 1 > top + 1 - int(np.frexp(smallest)[1]):
            return lowest
    mag = flat.astype(np.float64)
    np.abs(mag, out=mag)
    mag = mag[np.isfinite(mag) & (mag > 0)]
    if mag.size == 0:
        return lowest
    # a nonzero float32/16 or bfloat16 is a normal float64, whose frexp exponent is its biased
    # exponent field less 1022: read from the bits, no frexp arrays (float64 subnormals are not)
    ex = (mag.view(np.int64) >> 52) - 1022 if values.dtype.itemsize < 8 else np.frexp(mag)[1]
    depth = np.maximum(top + 1 - ex, 0)  # binades under the top one
    energy = np.bincount(depth, weights=mag * mag)
    below = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]])  # energy at depth >= i
    budget = flush_budget(man_bits) * float(below[0])
    for e in range(lowest, highest):
        kept = (1 << e) - 1
        if kept >= len(energy) or below[kept] <= budget:
            return e
    return highest


def top_exponent(y: np.ndarray) -> int | None:
    """Unbiased exponent of the largest finite magnitude (None: no finite nonzero value)."""
    return _top_and_finite(y)[0]


def _top_and_finite(y: np.ndarray) -> tuple[int | None, bool]:
    """:func:`top_exponent`, and whether ``y`` is known to hold no NaN or infinity."""
    if y.size:  # two reductions, no copy; the masked path only for NaN or infinities
        top = max(float(y.max()), -float(y.min()))
        if math.isfinite(top):
            return (None if top == 0.0 else int(np.frexp(top)[1]) - 1), True
    mag = np.abs(y[np.isfinite(y)])
    top = float(mag.max()) if mag.size else 0.0
    return (None if top == 0.0 else int(np.frexp(top)[1]) - 1), False


def magnitude_range(y: np.ndarray) -> tuple[float, float]:
    """The largest magnitude and the smallest nonzero one of finite ``y``, from one copy.

    With the sign bit cleared the bits order as the magnitudes do; one less
    wraps zero round to the largest, so the minimum is the smallest nonzero's.
    """
    unsigned = np.dtype(f"u{y.dtype.itemsize}")
    bits = np.ascontiguousarray(y).view(unsigned)
    mag = np.bitwise_and(bits, unsigned.type((1 << (8 * y.dtype.itemsize - 1)) - 1))
    top = mag.max()
    if top == 0:
        return 0.0, 0.0
    largest = np.asarray(top, dtype=unsigned).view(y.dtype)
    mag -= unsigned.type(1)
    smallest = np.asarray(mag.min() + unsigned.type(1), dtype=unsigned).view(y.dtype)
    return float(largest), float(smallest)
