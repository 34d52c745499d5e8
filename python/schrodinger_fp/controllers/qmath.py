"""Framework-free math of Quantum Mantissa / Quantum Exponent.

A tensor ``x`` has real bitlengths ``n_man`` and/or ``n_exp``. With
``f = floor(n)``, ``c = f + 1`` and ``t = n - f``, the forward value is
``Q_f(x)`` or ``Q_c(x)``:

* ``mode="interpolate"``: ``(1 - t) Q_f(x) + t Q_c(x)`` (bilinear when both
  fields are real), whose derivative in ``n`` is exactly ``Q_c(x) - Q_f(x)``;
* ``mode="sample"``: ``Q_c(x)`` with probability ``t``, else ``Q_f(x)``
  (what a real container stores), with the same gradient estimator.

The loss gradient for ``n`` is then ``sum_i g_i (Q_c(x_i) - Q_f(x_i))``, with
``g`` the gradient arriving at the quantized tensor; the tensor itself gets a
straight-through gradient. The footprint penalty ``gamma * w_T`` is added by the
controller. :func:`plan` picks the corner formats and their weights;
:func:`quantum_forward` / :func:`quantum_backward` evaluate them with
:func:`schrodinger_fp.quantize` on numpy arrays, and the PyTorch adapter
evaluates the same plan with its own kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..codec import quantize
from ..format import Format

__all__ = ["Plan", "QuantumContext", "plan", "quantum_backward", "quantum_forward", "split"]

Corner = tuple[int, int]  # (man_bits, exp_bits)


def split(n: float, lo: int, hi: int) -> tuple[int, int, float]:
    """Split a real bitlength into (floor, ceil, fraction), clamped to [lo, hi].

    ``ceil`` is always ``floor + 1`` (so a gradient exists at integers); at
    the top of the range ``(hi - 1, hi, 1.0)`` is returned.

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
    """Which quantized corners to evaluate and how to combine them.

    Attributes
    ----------
    value : list of (weight, corner)
        The forward value is ``sum weight * Q_corner(x)`` (zero weights dropped).
    dman, dexp : list of (weight, upper corner, lower corner)
        ``dy/dn = sum weight * (Q_upper(x) - Q_lower(x))``; empty for a field
        that is not real-valued.
    """

    value: list[tuple[float, Corner]]
    dman: list[tuple[float, Corner, Corner]]
    dexp: list[tuple[float, Corner, Corner]]

    def corners(self) -> set[Corner]:
        """Every corner the plan needs."""
        out = {c for _, c in self.value}
        for _, a, b in self.dman + self.dexp:
            out |= {a, b}
        return out


def plan(
    man: float | int,
    exp: float | int,
    *,
    man_range: tuple[int, int],
    exp_range: tuple[int, int],
    real_man: bool,
    real_exp: bool,
    mode: str = "interpolate",
    rng: np.random.Generator | None = None,
) -> Plan:
    """Build the :class:`Plan` for one tensor.

    Parameters
    ----------
    man, exp : float or int
        Bitlengths; a field whose ``real_*`` flag is False is used as the
        integer it is (clamped) and gets no gradient.
    man_range, exp_range : (int, int)
        Valid (lowest, highest) bitlengths.
    real_man, real_exp : bool
        Which fields are real-valued (learned).
    mode : {"interpolate", "sample"}
        How the forward value is formed (module docstring).
    rng : numpy.random.Generator, optional
        Source of the samples for ``mode="sample"`` (required then).

    Raises
    ------
    ValueError
        If ``mode`` is unknown, or ``rng`` is missing for sampling.
    """
    if mode not in ("interpolate", "sample"):
        raise ValueError(f"mode={mode!r} must be 'interpolate' or 'sample'")
    if mode == "sample" and rng is None:
        raise ValueError("mode='sample' needs an rng")

    def field(n: float, rng_: tuple[int, int], real: bool) -> tuple[int, int, float]:
        if real:
            return split(n, *rng_)
        k = min(max(round(n), rng_[0]), rng_[1])
        return k, k, 0.0

    fm, cm, tm = field(man, man_range, real_man)
    fe, ce, te = field(exp, exp_range, real_exp)
    if mode == "interpolate":
        value = [
            ((1 - tm) * (1 - te), (fm, fe)),
            (tm * (1 - te), (cm, fe)),
            ((1 - tm) * te, (fm, ce)),
            (tm * te, (cm, ce)),
        ]
        merged: dict[Corner, float] = {}
        for w, c in value:
            if w != 0.0:
                merged[c] = merged.get(c, 0.0) + w
        dman = [(1 - te, (cm, fe), (fm, fe)), (te, (cm, ce), (fm, ce))] if real_man else []
        dexp = [(1 - tm, (fm, ce), (fm, fe)), (tm, (cm, ce), (cm, fe))] if real_exp else []
        return Plan(
            [(w, c) for c, w in merged.items()],
            [d for d in dman if d[0] != 0.0],
            [d for d in dexp if d[0] != 0.0],
        )
    assert rng is not None
    um = cm if real_man and rng.random() < tm else fm
    ue = ce if real_exp and rng.random() < te else fe
    return Plan(
        [(1.0, (um, ue))],
        [(1.0, (cm, ue), (fm, ue))] if real_man else [],
        [(1.0, (um, ce), (um, fe))] if real_exp else [],
    )


def corner_format(base: Format, corner: Corner) -> Format:
    """The format of a corner: ``base`` with the corner's mantissa and exponent bits."""
    return replace(base, man_bits=corner[0], exp_bits=corner[1])


def evaluate(
    p: Plan, q: Callable[[Corner], np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Evaluate a plan with a corner quantizer ``q``: (value, dy/dn_man, dy/dn_exp).

    Differences between corners that are equal (infinities, NaN kept out of
    band) count as 0, so they never poison a gradient.
    """
    cache: dict[Corner, np.ndarray] = {}

    def get(c: Corner) -> np.ndarray:
        if c not in cache:
            cache[c] = q(c)
        return cache[c]

    def diff(terms: list[tuple[float, Corner, Corner]]) -> np.ndarray | None:
        if not terms:
            return None
        acc: np.ndarray | None = None
        for w, a, b in terms:
            qa, qb = get(a), get(b)
            with np.errstate(invalid="ignore", over="ignore"):
                d = np.where((qa == qb) | ~np.isfinite(qa) | ~np.isfinite(qb), 0, qa - qb)
            acc = w * d if acc is None else acc + w * d
        return acc

    if len(p.value) == 1 and p.value[0][0] == 1.0:
        y = get(p.value[0][1])
    else:  # in float64, so equal corners give back exactly their value
        y = np.zeros(np.shape(get(p.value[0][1])), dtype=np.float64)
        for w, c in p.value:
            y = y + w * get(c).astype(np.float64)
    return np.asarray(y), diff(p.dman), diff(p.dexp)


@dataclass
class QuantumContext:
    """What :func:`quantum_backward` needs: the sensitivities dy/dn per field."""

    dman: np.ndarray | None
    dexp: np.ndarray | None


def quantum_forward(
    x: np.ndarray,
    p: Plan,
    base: Format | None = None,
) -> tuple[np.ndarray, QuantumContext]:
    """Quantized forward value of ``x`` under plan ``p``, with :func:`schrodinger_fp.quantize`.

    Parameters
    ----------
    x : numpy.ndarray
        A floating-point array of a supported dtype.
    p : Plan
        From :func:`plan`.
    base : Format, optional
        Rounding and other settings of every corner format (default: ``Format()``).

    Returns
    -------
    value : numpy.ndarray
        Same dtype and shape as ``x``.
    ctx : QuantumContext
        For :func:`quantum_backward`.
    """
    b = Format() if base is None else base
    y, dm, de = evaluate(p, lambda c: quantize(x, corner_format(b, c)))
    return y.astype(x.dtype, copy=False), QuantumContext(dm, de)


def quantum_backward(
    g: np.ndarray, ctx: QuantumContext
) -> tuple[np.ndarray, float | None, float | None]:
    """Gradients of the loss for ``x`` (straight-through) and for each real bitlength.

    Parameters
    ----------
    g : numpy.ndarray
        Gradient of the loss at the quantized tensor.
    ctx : QuantumContext
        From :func:`quantum_forward`.

    Returns
    -------
    gx : numpy.ndarray
        ``g`` itself (straight-through estimator).
    gman, gexp : float or None
        ``sum(g * dy/dn)`` for each real field (None for a fixed one); the
        footprint penalty is not included.
    """
    gman = None if ctx.dman is None else float(np.sum(g.astype(np.float64) * ctx.dman))
    gexp = None if ctx.dexp is None else float(np.sum(g.astype(np.float64) * ctx.dexp))
    return g, gman, gexp
