"""Framework-free math of Quantum Mantissa / Quantum Exponent.

A tensor ``x`` has real bitlengths ``n_man`` and/or ``n_exp``. With
``f = floor(n)``, ``c = f + 1`` and ``t = n - f``, the forward pass stores
``Q_c(x)`` with probability ``t``, else ``Q_f(x)`` (the paper's method: the
value is always one real container, so a compressed stash holds exactly what
the forward pass used). The tensor itself gets a straight-through gradient.

The loss gradient for ``n`` is estimated from the stored value ``y = Q_k(x)``
alone (ours; the paper uses ``Q_c(x) - Q_f(x)``, which needs both corners of
the full-size input kept for backward)::

    dL/dn ~ sum_i g_i (y_i - Q_j(y_i)) / (k - j)

with ``j = k - 1``, or lower while ``Q_j(y) == y`` everywhere (the look-ahead):
above the damage region one bit fewer changes nothing, and the plain estimator
is exactly zero, so the footprint penalty alone would walk every tensor down
in lockstep until it hits damage. The look-ahead reports the cost per bit of
the first lower container that changes a value, so a tensor stops where its
own values start to suffer. A chained quantizer (an elementwise op after a
quantized producer) gets a gradient the same way. ``g`` is the gradient
arriving at the quantized tensor; the footprint penalty ``gamma * w_T * S`` is
added by the controller.

The exponent also gets a limit (ours, :func:`bit_gradients`): a window one
bit too narrow flushes whole binades, and the loss jumps by far more than
any first-order estimate shows, so the exponent may not go where it would
flush more of the tensor's energy than the mantissa rounding costs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ...format import Format
from ..core_calls import quantize
from .flush import flush_budget, magnitude_range, top_exponent

__all__ = [
    "BitGradients",
    "Plan",
    "QuantumContext",
    "UpperCorner",
    "bit_gradients",
    "corner_format",
    "needs_input",
    "plan",
    "quantum_backward",
    "quantum_forward",
    "sensitivity",
    "split",
    "upper_corners",
]

Corner = tuple[int, int]  # (man_bits, exp_bits)


def split(n: float, lo: int, hi: int) -> tuple[int, int, float]:
    """Split a real bitlength into (floor, ceil, fraction), clamped to [lo, hi].

    ``ceil`` is always ``floor + 1``; at the top of the range ``(hi - 1, hi, 1.0)``
    is returned.

    Raises
    ------
    ValueError
        If ``n`` is not finite or the range is empty.
    """
    if not math.isfinite(n):
        raise ValueError(f"bitlength n={n!r} must be finite")
    if hi <= lo:
        raise ValueError(f"bitlength range [{lo}, {hi}] must hold at least two values")
    n = min(max(float(n), lo), hi)
    f = min(math.floor(n), hi - 1)
    return f, f + 1, n - f


@dataclass(frozen=True)
class Plan:
    """The corner one forward pass stores, and which fields get a gradient.

    Attributes
    ----------
    corner : (int, int)
        (man_bits, exp_bits) of the stored value.
    man_lowest, exp_lowest : int or None
        Lowest valid bitlength of a learned field (the look-ahead stops there);
        None for a field that is not learned.
    offset : int
        Where the strided sample of a large tensor starts (:func:`bit_gradients`).
    """

    corner: Corner
    man_lowest: int | None = None
    exp_lowest: int | None = None
    offset: int = 0


def plan(
    man: float | int,
    exp: float | int,
    *,
    man_range: tuple[int, int],
    exp_range: tuple[int, int],
    real_man: bool,
    real_exp: bool,
    rng: np.random.Generator,
) -> Plan:
    """Sample the stored corner of one tensor.

    Parameters
    ----------
    man, exp : float or int
        Bitlengths; a field whose ``real_*`` flag is False is used as the
        integer it is (clamped) and gets no gradient.
    man_range, exp_range : (int, int)
        Valid (lowest, highest) bitlengths.
    real_man, real_exp : bool
        Which fields are real-valued (learned).
    rng : numpy.random.Generator
        Source of the samples.
    """

    def field(n: float, rng_: tuple[int, int], real: bool) -> int:
        if not real:
            return min(max(round(n), rng_[0]), rng_[1])
        f, c, t = split(n, *rng_)
        return c if rng.random() < t else f

    return Plan(
        (field(man, man_range, real_man), field(exp, exp_range, real_exp)),
        man_range[0] if real_man else None,
        exp_range[0] if real_exp else None,
        int(rng.integers(0, 1 << 30)),
    )


@functools.lru_cache(maxsize=4096)
def corner_format(base: Format, corner: Corner) -> Format:
    """The format of a corner: ``base`` with the corner's mantissa and exponent bits."""
    # cached: a Format validates itself when built, and every tensor asks for a few each step
    return replace(base, man_bits=corner[0], exp_bits=corner[1])


@functools.lru_cache(maxsize=4096)
def _with_top(fmt: Format, top: int | None) -> Format:
    return replace(fmt, window_top=top)


def _quantize_corner(
    a: np.ndarray, base: Format, corner: Corner, top: int | None
) -> tuple[np.ndarray, Format]:
    """``a`` quantized at ``corner`` of ``base`` (window under ``top`` if given), and its format.

    A window needs an exponent field narrower than the source's; where ``quantize`` refuses
    one (the full field, which no window can hold), the corner is quantized with no window.
    """
    fmt = corner_format(base, corner)
    if top is not None:
        fmt = _with_top(fmt, top)
    try:
        return quantize(a, fmt), fmt
    except ValueError:
        fmt = _with_top(fmt, None)
        return quantize(a, fmt), fmt


def _first_damage(
    y: np.ndarray, k: int, finite: bool = False, magnitudes: tuple[float, float] | None = None
) -> int:
    """The largest exponent bitlength below ``k`` whose window cannot hold every binade of ``y``.

    A window of ``e`` bits holds ``2**e - 1`` binades, so with ``b`` binades
    between the smallest and largest magnitude nothing changes above
    ``ceil(log2(b + 1)) - 1``; the search for the first damaging container
    starts there instead of walking down one quantization at a time.
    ``finite``: ``y`` is known to hold no NaN or infinity; ``magnitudes``: its
    :func:`magnitude_range`, when the caller has it.
    """
    if finite and y.size:
        largest, smallest = magnitude_range(y) if magnitudes is None else magnitudes
    else:
        mag = np.abs(y)
        largest = float(mag.max()) if mag.size else 0.0
        if not math.isfinite(largest):  # NaN or infinities: the masked path
            mag = mag[np.isfinite(mag)]
            largest = float(mag.max()) if mag.size else 0.0
        smallest = _smallest_nonzero(mag) if largest != 0.0 else 0.0
    if largest == 0.0:
        return k - 1
    _, top = np.frexp(largest)
    _, bottom = np.frexp(smallest)
    binades = int(top) - int(bottom) + 1
    return min(k - 1, max(math.ceil(math.log2(binades + 1)) - 1, 0))


def _smallest_nonzero(mag: np.ndarray) -> float:
    """The smallest nonzero of finite magnitudes, without a masked copy (as above)."""
    unsigned = np.dtype(f"u{mag.dtype.itemsize}")
    one = unsigned.type(1)
    below = np.ascontiguousarray(mag).view(unsigned) - one
    return float(np.asarray(below.min() + one, dtype=unsigned).view(mag.dtype))


def sensitivity(
    y: np.ndarray, corner: Corner, kind: str, lowest: int, base: Format
) -> np.ndarray | None:
    """``dy/dn`` of field ``kind`` at the stored value ``y`` (module docstring), or None.

    None when the field is already at ``lowest`` or no lower container
    changes any value (the gradient is then zero).
    """
    below = _segment_below(y, corner, kind, lowest, base)
    if below is None:
        return None
    d, span = below
    return d / np.asarray(span, dtype=d.dtype) if span > 1 else d


def _segment_below(
    y: np.ndarray,
    corner: Corner,
    kind: str,
    lowest: int,
    base: Format,
    top: int | None = None,
    finite: bool | None = None,
    magnitudes: tuple[float, float] | None = None,
) -> tuple[np.ndarray, int] | None:
    """``y - Q_j(y)`` for the first lower container ``j`` that changes a value, and ``k - j``.

    ``top``: the window's top when ``y`` is a sample (the whole tensor's, not the sample's).
    ``finite``: whether ``y`` holds no NaN or infinity, when the caller knows; ``magnitudes``:
    its :func:`magnitude_range` then, if known.
    """
    if finite is None:
        finite = bool(np.isfinite(y).all())
    k = corner[0] if kind == "man" else corner[1]
    start = k - 1 if kind == "man" else _first_damage(y, k, finite, magnitudes)
    for j in range(min(start, k - 1), lowest - 1, -1):
        lower = (j, corner[1]) if kind == "man" else (corner[0], j)
        q, _ = _quantize_corner(y, base, lower, top)
        # y and a rounding of it differ by an exact float: no wider type needed; written over
        # q, a fresh array, to save a tensor-sized allocation
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.subtract(y, q, out=q)
        if not finite:
            d[~(np.isfinite(y) & np.isfinite(q))] = 0
        if d.any():
            return d, k - j
    return None


@dataclass(frozen=True)
class BitGradients:
    """What one backward pass says about a tensor's learned bitlengths.

    Attributes
    ----------
    man, exp : float or None
        ``dL/dn`` of each learned field (None for a field not learned); the
        footprint penalty is not included.
    exp_lowest : int or None
        The lowest exponent bitlength the stored values allow (None: no
        limit seen): one below it, the window would flush more of the
        tensor's energy than its mantissa rounding costs (:func:`flush_budget`).
    man_spread, exp_spread : float or None
        The spread of each gradient's terms, ``sqrt(sum_i (g_i d_i)^2) / span``
        (ours): how far the sum of many rounding errors against the gradient
        can be from its true value; 0 where no lower container changes a value.
    loss_scale : float or None
        ``sqrt(sum_i (g_i y_i)^2)`` (ours): the spread the terms would have if every
        value were off by its own size, the scale of this tensor's evidence
        whatever its bitlength (a spread is about ``||d|| / ||y||`` times it).
        A quantum controller prices the footprint in it (:class:`~schrodinger_fp.QuantumMantissa`).
    """

    man: float | None = None
    exp: float | None = None
    exp_lowest: int | None = None
    man_spread: float | None = None
    exp_spread: float | None = None
    loss_scale: float | None = None


@dataclass(frozen=True)
class UpperCorner:
    """``Q_{k+1}(x)`` of a field stored at its lowest bitlength, and the format it is in.

    All that backward needs of the input there: the segment above the stored
    corner. Held in that format, not as the input itself.
    """

    values: np.ndarray
    format: Format


@dataclass
class QuantumContext:
    """What :func:`quantum_backward` needs: the stored value and its plan.

    ``upper`` holds, per learned field that stores its lowest bitlength
    (:func:`needs_input`), the corner above (:func:`upper_corners`): there is
    no segment below, and the one above needs the input at that corner.
    """

    y: np.ndarray
    plan: Plan
    base: Format
    upper: dict[str, np.ndarray] = field(default_factory=dict)


def needs_input(p: Plan) -> bool:
    """Whether a learned field of ``p`` stores its lowest bitlength (:class:`QuantumContext`)."""
    return bool(_at_lowest(p))


def _at_lowest(p: Plan) -> list[str]:
    return [
        kind
        for kind, lowest, k in (
            ("man", p.man_lowest, p.corner[0]),
            ("exp", p.exp_lowest, p.corner[1]),
        )
        if lowest is not None and k == lowest
    ]


def upper_corners(
    x: np.ndarray, y: np.ndarray, p: Plan, base: Format, sample: int | None = 1 << 16
) -> dict[str, UpperCorner]:
    """The corner above the stored one, of the input, for each field at its lowest bitlength.

    ``y`` is the stored value. A tensor that :func:`bit_gradients` samples
    (more than ``sample`` values, :data:`SAMPLE`; None: none is sampled) gets the window top
    of ``y``, as the sample's segments do; then the reduction is elementwise,
    so the sample of the corner is the corner of the sample.
    """
    top = top_exponent(y) if sample is not None and y.size > sample else None
    out = {}
    for kind in _at_lowest(p):
        upper = (p.corner[0] + 1, p.corner[1]) if kind == "man" else (p.corner[0], p.corner[1] + 1)
        out[kind] = UpperCorner(*_quantize_corner(x, base, upper, top))
    return out


def quantum_forward(
    x: np.ndarray, p: Plan, base: Format | None = None
) -> tuple[np.ndarray, QuantumContext]:
    """The stored value of ``x`` under plan ``p``, with :func:`schrodinger_fp.quantize`.

    Parameters
    ----------
    x : numpy.ndarray
        A floating-point array of a supported dtype.
    p : Plan
        From :func:`plan`.
    base : Format, optional
        Rounding and other settings of every corner format (default: ``Format()``).
    """
    b = Format() if base is None else base
    y = quantize(x, corner_format(b, p.corner))
    upper = {k: c.values for k, c in upper_corners(x, y, p, b).items()}
    return y, QuantumContext(y, p, b, upper)


#: Values of a tensor whose sensitivities are summed (ours): larger tensors are sampled.
SAMPLE = 1 << 16


def bit_gradients(g: np.ndarray, ctx: QuantumContext, sample: int | None = SAMPLE) -> BitGradients:
    """``sum(g * dy/dn)`` for each learned field, and the exponent's flush limit.

    The gradient (the paper's, with the look-ahead of the module docstring) is
    first order: a sum of rounding errors against the gradient, close to zero
    on average however much a bit harms. That is right for the mantissa,
    whose loss grows smoothly as bits go, but not for the exponent: a window
    one bit too narrow flushes whole binades at once, and the loss jumps by
    tens of times what the first-order term (or an empirical-Fisher
    curvature term) predicts (``docs/training.md``). So, ours: the exponent
    may not go to a window that flushes more of the tensor's energy than its
    mantissa rounding already costs (:class:`BitGradients`.exp_lowest), a
    limit measured on the tensor's own values each step, not a per-task floor.

    A tensor of more than ``sample`` values is summed over a strided sample of
    about ``sample`` values starting at ``ctx.plan.offset`` (a new offset each
    step), scaled by the stride: an estimate of the full sum at a bounded cost
    per tensor. The sample's exponent window keeps the whole tensor's top, so
    it flushes what the whole tensor's would.
    """
    y, base, top = ctx.y.reshape(-1), ctx.base, None
    upper = {k: v.reshape(-1) for k, v in ctx.upper.items()}
    gf = g.reshape(-1)
    scale = 1.0
    if sample is not None and y.size > sample:
        stride = -(-y.size // sample)
        start = ctx.plan.offset % stride
        y, gf = np.ascontiguousarray(y[start::stride]), np.ascontiguousarray(gf[start::stride])
        upper = {k: np.ascontiguousarray(v[start::stride]) for k, v in upper.items()}
        scale = ctx.y.size / y.size
        top = top_exponent(ctx.y)
    grads: dict[str, float] = {}
    spreads: dict[str, float] = {}
    exp_lowest = None
    magnitudes = None
    exp_k = ctx.plan.corner[1]
    if ctx.plan.exp_lowest is not None and not (exp_k == ctx.plan.exp_lowest and "exp" in upper):
        # the exponent's search starts from the magnitudes, which say whether y is finite too
        finite, magnitudes = _finite_magnitudes(y)
    else:
        finite = bool(np.isfinite(y).all())  # once for both fields
    loss_scale = None
    # one error state for the whole sum (entering one costs as much as a small tensor's product)
    with np.errstate(invalid="ignore", over="ignore"):
        if ctx.plan.man_lowest is not None or ctx.plan.exp_lowest is not None:
            values = _wide(gf) * _wide(y)
            if not finite:
                values[~np.isfinite(values)] = 0
            loss_scale = math.sqrt(scale * float(values @ values))
        for kind, lowest in (("man", ctx.plan.man_lowest), ("exp", ctx.plan.exp_lowest)):
            if lowest is None:
                continue
            k = ctx.plan.corner[0] if kind == "man" else exp_k
            above = k == lowest and kind in upper
            seg = (
                _segment_above(upper[kind], y)
                if above
                else _segment_below(y, ctx.plan.corner, kind, lowest, base, top, finite, magnitudes)
            )
            if seg is None:
                grads[kind] = spreads[kind] = 0.0
                continue
            d, span = seg
            grads[kind] = scale * float(np.dot(gf, d)) / span
            if kind == "exp" and not above:
                d32, y32 = _wide(d), _wide(y)
                flushed, energy = float(d32 @ d32), float(y32 @ y32)
                if flushed > flush_budget(ctx.plan.corner[0]) * energy:
                    exp_lowest = k - span + 1
            # d is a fresh array read for the last time: the terms are written over it
            terms = (
                np.multiply(gf, d, out=d)
                if gf.dtype == d.dtype == np.float32
                else _wide(gf) * _wide(d)
            )
            # a sample of the terms: the full sum of squares is about scale times the sample's
            spreads[kind] = math.sqrt(scale * float(terms @ terms)) / span
    return BitGradients(
        grads.get("man"),
        grads.get("exp"),
        exp_lowest,
        spreads.get("man"),
        spreads.get("exp"),
        loss_scale,
    )


def _finite_magnitudes(y: np.ndarray) -> tuple[bool, tuple[float, float] | None]:
    """Whether ``y`` holds no NaN or infinity, and then its :func:`magnitude_range`, in one copy.

    With the sign bit cleared, NaN and infinities have the largest bits of all.
    """
    if not y.size:
        return True, None
    unsigned = np.dtype(f"u{y.dtype.itemsize}")
    bits = np.ascontiguousarray(y).view(unsigned)
    mag = np.bitwise_and(bits, unsigned.type((1 << (8 * y.dtype.itemsize - 1)) - 1))
    top = mag.max()
    if top >= np.asarray(np.inf, dtype=y.dtype).view(unsigned):
        return False, None
    if top == 0:
        return True, (0.0, 0.0)
    largest = np.asarray(top, dtype=unsigned).view(y.dtype)
    mag -= unsigned.type(1)
    smallest = np.asarray(mag.min() + unsigned.type(1), dtype=unsigned).view(y.dtype)
    return True, (float(largest), float(smallest))


def _wide(a: np.ndarray) -> np.ndarray:
    """``a`` in at least float32, so a sum of squares neither overflows nor rounds away."""
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)


def _segment_above(upper: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, int] | None:
    """``Q_{k+1}(x) - y`` at the bottom of the range, so a damaged tensor can climb back."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = upper - y
    d[~(np.isfinite(upper) & np.isfinite(y))] = 0
    return (d, 1) if d.any() else None


def quantum_backward(g: np.ndarray, ctx: QuantumContext) -> tuple[np.ndarray, BitGradients]:
    """Gradients of the loss for ``x`` (straight-through) and for each learned bitlength.

    Returns
    -------
    gx : numpy.ndarray
        ``g`` itself (straight-through estimator).
    bits : BitGradients
        From :func:`bit_gradients`.
    """
    return g, bit_gradients(g, ctx)
