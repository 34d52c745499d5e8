"""Quantum Mantissa and Quantum Exponent: per-tensor bitlengths learned by gradient descent."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import ClassVar

from ...format import Format
from ..policy import Policy
from .base import StepState, TensorSpec, field_range
from .containers import NamedContainers

__all__ = ["QuantumExponent", "QuantumMantissa"]

#: Adam's first moment (the gradient the bits descend) averages the steps' gradients.
_BETA1 = 0.9
#: The standard error of that average per step's spread: ``sqrt((1 - b1) / (1 + b1))``
#: for an exponential average of independent terms.
_MEAN_ERROR = math.sqrt((1 - _BETA1) / (1 + _BETA1))


class _Quantum:
    """Shared machinery of :class:`QuantumMantissa` and :class:`QuantumExponent`.

    Each managed tensor ``T`` has a real bitlength ``n_T`` for this
    controller's field and a share of the footprint ``w_T = size_T / sum(size)``.
    The paper adds ``gamma * sum_T w_T * n_T`` to the loss, so a bit's penalty
    gradient is ``gamma * w_T``. Here (ours) the footprint is priced in the
    scale of the step's own evidence, ``gamma * w_T * S`` with ``S`` the sum of
    the managed tensors' loss scales ``sqrt(sum_i (g_i y_i)^2)``
    (``StepState.loss_scales``): the spread a bit gradient's terms would have if
    every value were off by its own size. A bit gradient and its spread are
    about ``||d|| / ||y||`` times such a scale, so price and evidence grow and
    shrink together, whatever the loss does. Priced absolutely, the penalty
    strips a model near zero training loss (whose bit gradients vanish) until
    it breaks; priced in the loss itself (``gamma * w_T * L``), it vanishes
    faster than the evidence: on the digits CNN the training loss fell 1000x
    and the bit gradients' spread 30x, and no mantissa bit moved.

    Ours, too: a bit is priced pessimistically. The bit gradient is a sum of
    rounding errors against the gradient; at one or two mantissa bits that
    sum says little about the true cost (``bench/experiments/bit_cost.py``:
    at 0 bits it even has the wrong sign), while the spread of its terms
    (``StepState.bit_spreads``) is as large as the part it misses. Adam
    descends an average of the steps' gradients, whose standard error is
    ``sqrt((1 - beta1) / (1 + beta1))`` times a step's spread; each step adds
    ``confidence`` times that to the bit's cost, so a tensor loses a bit only
    while the footprint saved outweighs the cost its own evidence cannot rule
    out. Where the errors are small against the gradient's noise the spread
    is small too, and the paper's rule is left as it is.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        *,
        gamma: float = 0.008,
        lr: float = 0.1,
        confidence: float = 1.0,
        init_bits: float | None = None,
        min_bits: int | None = None,
        max_bits: int | None = None,
        include: Iterable[str] = ("*",),
        exclude: Iterable[str] = (),
        containers: NamedContainers | None = None,
    ) -> None:
        if not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"gamma={gamma!r} must be a finite number >= 0")
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr={lr!r} must be a finite number > 0")
        if not math.isfinite(confidence) or confidence < 0:
            raise ValueError(f"confidence={confidence!r} must be a finite number >= 0")
        if init_bits is not None and not math.isfinite(init_bits):
            raise ValueError(f"init_bits={init_bits!r} must be finite")
        self.gamma = float(gamma)
        self.lr = float(lr)
        self.confidence = float(confidence)
        self.init_bits = init_bits
        self.min_bits = min_bits
        self.max_bits = max_bits
        self.include = list(include)
        self.exclude = list(exclude)
        self.containers = containers
        self.dtypes: dict[str, str] = {}
        self.bits: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.ranges: dict[str, tuple[int, int]] = {}
        self._policy: Policy | None = None
        self._adam: dict[str, tuple[float, float, int]] = {}

    # -- protocol --------------------------------------------------------
    def attach(self, policy: Policy, tensors: Mapping[str, TensorSpec]) -> None:
        """Start a bitlength for each tensor matched by ``include`` and not ``exclude``.

        Bitlengths start at ``init_bits`` (default: the source width),
        clamped to the tensor's range, and are written to the policy. Unless
        ``max_bits`` says otherwise, ``init_bits`` is also the highest
        bitlength (a start from bfloat16's 7 mantissa bits never grows past them).

        Raises
        ------
        ValueError
            If no tensor matches, or ``min_bits`` / ``max_bits`` leave an empty range.
        """
        names = [
            n
            for n in tensors
            if any(fnmatch.fnmatchcase(n, p) for p in self.include)
            and not any(fnmatch.fnmatchcase(n, p) for p in self.exclude)
        ]
        if not names:
            raise ValueError(
                f"{type(self).__name__}: no tensor matches include={self.include} "
                f"exclude={self.exclude}"
            )
        total = sum(tensors[n].size for n in names) or 1
        for n in names:
            lo, hi = field_range(tensors[n].dtype, self.kind)
            lo = lo if self.min_bits is None else max(lo, self.min_bits)
            if self.max_bits is not None:
                hi = min(hi, self.max_bits)
            elif self.init_bits is not None:
                hi = min(hi, math.ceil(self.init_bits))
            if hi <= lo:
                raise ValueError(
                    f"{type(self).__name__}: range [{lo}, {hi}] for {n!r} holds fewer than two "
                    f"bitlengths (min_bits={self.min_bits}, max_bits={self.max_bits})"
                )
            self.ranges[n] = (lo, hi)
            start = hi if self.init_bits is None else self.init_bits
            self.bits[n] = min(max(float(start), lo), hi)
            self.weights[n] = tensors[n].size / total
            self.dtypes[n] = tensors[n].dtype
        self._policy = policy
        self._write(None)

    def step(self, state: StepState) -> None:
        """Update the bitlengths and write the stored containers to the policy.

        ``state.sizes`` (the values each tensor held in this step's batch)
        refreshes the footprint shares ``w_T``. For each managed tensor with a
        gradient in ``state.bit_grads``, Adam descends
        ``gradient - confidence * sqrt((1 - beta1) / (1 + beta1)) * spread + gamma * w_T * S``
        (``S`` from :meth:`loss_scale`);
        values are clamped to the tensor's range and kept at or above ``state.lowest``.

        Raises
        ------
        RuntimeError
            If called before :meth:`attach`.
        ValueError
            If a given value, gradient or loss scale is not finite.
        """
        if self._policy is None:
            raise RuntimeError(f"{type(self).__name__}.step called before attach")
        if state.sizes:
            self._reweigh(state.sizes)
        scale = self.loss_scale(state)
        for name in self.bits:
            grad = state.bit_grads.get(name, {}).get(self.kind)
            if grad is None:
                continue
            if not math.isfinite(grad):
                raise ValueError(f"bit gradient {grad!r} for {name!r} is not finite")
            spread = state.bit_spreads.get(name, {}).get(self.kind, 0.0)
            if not math.isfinite(spread):
                raise ValueError(f"bit gradient spread {spread!r} for {name!r} is not finite")
            # dL/dn < 0 where a bit helps: the pessimistic price is more negative
            g = grad - self.confidence * _MEAN_ERROR * spread + self.penalty_grad(name, scale)
            bits = self.bits[name] - self._update(name, g)
            floor = state.lowest.get(name, {}).get(self.kind)
            self.bits[name] = self._clamp(name, bits if floor is None else max(bits, floor))
        self._write(state.step)

    # -- queries ---------------------------------------------------------
    def penalty_grad(self, name: str, scale: float = 1.0) -> float:
        """Gradient of the footprint penalty of ``name``: ``gamma * w_T * scale``."""
        return self.gamma * self.weights[name] * scale

    def loss_scale(self, state: StepState) -> float:
        """The scale the footprint is priced in: the sum of the managed tensors' loss scales.

        1 (the paper's absolute price) when the step gives none.

        Raises
        ------
        ValueError
            If a loss scale is not finite.
        """
        scales = [state.loss_scales[n] for n in self.bits if n in state.loss_scales]
        for s in scales:
            if not math.isfinite(s):
                raise ValueError(f"loss scale {s!r} is not finite")
        return math.fsum(scales) if scales else 1.0

    def penalty(self) -> float:
        """The footprint penalty ``gamma * sum_T w_T n_T`` at the current bitlengths.

        In units of the step's loss scale (:meth:`loss_scale`), which prices each bit.
        """
        return self.gamma * sum(self.weights[n] * b for n, b in self.bits.items())

    def container(self, name: str) -> int:
        """The integer bitlength actually stored for ``name``: the ceiling of ``n``.

        The forward pass may use the ceiling corner, so the container must hold it.
        """
        lo, hi = self.ranges[name]
        return min(max(math.ceil(self.bits[name] - 1e-9), lo), hi)

    # -- internals -------------------------------------------------------
    def _clamp(self, name: str, value: float) -> float:
        lo, hi = self.ranges[name]
        return min(max(float(value), lo), hi)

    def _reweigh(self, sizes: Mapping[str, int]) -> None:
        """Footprint shares from the sizes seen in training (the example batch may be smaller)."""
        seen = {n: sizes.get(n) for n in self.bits}
        if any(s is None for s in seen.values()):
            return  # a partial step (e.g. no activation seen): keep the previous shares
        total = sum(s for s in seen.values() if s is not None) or 1
        self.weights = {n: (s or 0) / total for n, s in seen.items()}

    def _update(self, name: str, g: float) -> float:
        # Adam: a bit gradient is a sum over a whole tensor and its scale varies by orders of
        # magnitude between tensors and tasks; a plain SGD step on it barely moves the bits
        m, v, t = self._adam.get(name, (0.0, 0.0, 0))
        t += 1
        m = _BETA1 * m + (1 - _BETA1) * g
        v = 0.999 * v + 0.001 * g * g
        self._adam[name] = (m, v, t)
        mhat = m / (1 - _BETA1**t)
        vhat = v / (1 - 0.999**t)
        return self.lr * mhat / (math.sqrt(vhat) + 1e-8)

    def _write(self, step: int | None) -> None:
        assert self._policy is not None
        key = "man_bits" if self.kind == "man" else "exp_bits"
        for name in self.bits:
            old = self._policy.format_for(name) or Format()
            bits = self.container(name)
            if self.containers is not None:
                new = self.containers.choose(name, self.dtypes[name], self.kind, bits)
            elif getattr(old, key) == bits:
                continue  # most steps move no container: no new format, no rule to look up
            elif key == "man_bits":
                new = replace(old, man_bits=bits)
            else:
                new = replace(old, exp_bits=bits)
            self._policy.set(name, new, step=step)


class QuantumMantissa(_Quantum):
    """Learns a mantissa bitlength per tensor (Quantum Mantissa).

    Parameters
    ----------
    gamma : float, default 0.008
        Price of a bit of the whole footprint, in units of the step's loss scale
        (``StepState.loss_scales``, summed over the managed tensors).
    lr : float, default 0.1
        Step size of the bitlengths' Adam optimizer (bits per step, at most
        about ``lr``). The controller owns it: the bitlengths are not torch
        parameters, so no user optimizer can miss them.
    confidence : float, default 1.0
        How many standard errors of the averaged bit gradient are added to a
        bit's cost (ours; 0 is the paper's first-order price).
    init_bits : float, optional
        Starting bitlength (default: the source's full width), also the
        highest unless ``max_bits`` is given.
    min_bits, max_bits : int, optional
        Narrow the valid range (default: 0 .. the source width). There is no
        floor by default: the gradient itself says where a tensor's values
        start to suffer (see :mod:`schrodinger_fp.training.controllers.qmath`).
    include, exclude : iterable of str
        Globs choosing which tensors get a learned bitlength.
    containers : NamedContainers, optional
        Store each tensor in the smallest of these named containers that holds its learned
        widths, instead of a window format of exactly those widths.
    """

    kind: ClassVar[str] = "man"


class QuantumExponent(_Quantum):
    """Learns an exponent bitlength per tensor (Quantum Exponent).

    Same parameters as :class:`QuantumMantissa`; the default range is
    1 .. the source's exponent width. Fewer exponent bits keep a window of
    ``2**e - 1`` exponents under the tensor's largest and flush the rest.
    The bitlength never goes below the window its tensor's values need
    (``StepState.lowest``): one that would flush more of the tensor's energy
    than its mantissa rounding costs
    (:func:`~schrodinger_fp.training.controllers.qmath.flush_budget`; ours:
    a first-order bit gradient sees a fraction of what such a window costs).
    """

    kind: ClassVar[str] = "exp"
