"""Quantum Mantissa and Quantum Exponent: per-tensor bitlengths learned by gradient descent."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import ClassVar

from ..format import Format
from ..policy import Policy
from .base import StepState, TensorSpec, field_range

__all__ = ["QuantumExponent", "QuantumMantissa"]


class _Quantum:
    """Shared machinery of :class:`QuantumMantissa` and :class:`QuantumExponent`.

    Each managed tensor ``T`` has a real bitlength ``n_T`` for this
    controller's field. The footprint penalty added to the loss is
    ``gamma * sum_T w_T * n_T`` with ``w_T = size_T / sum(size)`` (the
    tensor's share of the footprint), so its gradient is ``gamma * w_T``.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self,
        *,
        gamma: float = 0.01,
        lr: float = 0.05,
        optimizer: str = "adam",
        init_bits: float | None = None,
        min_bits: int | None = None,
        max_bits: int | None = None,
        mode: str = "interpolate",
        include: Iterable[str] = ("*",),
        exclude: Iterable[str] = (),
    ) -> None:
        if not math.isfinite(gamma) or gamma < 0:
            raise ValueError(f"gamma={gamma!r} must be a finite number >= 0")
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr={lr!r} must be a finite number > 0")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer={optimizer!r} must be 'sgd' or 'adam'")
        if mode not in ("interpolate", "sample"):
            raise ValueError(f"mode={mode!r} must be 'interpolate' or 'sample'")
        if init_bits is not None and not math.isfinite(init_bits):
            raise ValueError(f"init_bits={init_bits!r} must be finite")
        self.gamma = float(gamma)
        self.lr = float(lr)
        self.optimizer = optimizer
        self.init_bits = init_bits
        self.min_bits = min_bits
        self.max_bits = max_bits
        self.mode = mode
        self.include = list(include)
        self.exclude = list(exclude)
        self.bits: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.ranges: dict[str, tuple[int, int]] = {}
        self._policy: Policy | None = None
        self._adam: dict[str, tuple[float, float, int]] = {}

    # -- protocol --------------------------------------------------------
    def attach(self, policy: Policy, tensors: Mapping[str, TensorSpec]) -> None:
        """Start a bitlength for each tensor matched by ``include`` and not ``exclude``.

        Bitlengths start at ``init_bits`` (default: the source width),
        clamped to the tensor's range, and are written to the policy.

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
            hi = hi if self.max_bits is None else min(hi, self.max_bits)
            if hi <= lo:
                raise ValueError(
                    f"{type(self).__name__}: range [{lo}, {hi}] for {n!r} holds fewer than two "
                    f"bitlengths (min_bits={self.min_bits}, max_bits={self.max_bits})"
                )
            self.ranges[n] = (lo, hi)
            start = hi if self.init_bits is None else self.init_bits
            self.bits[n] = min(max(float(start), lo), hi)
            self.weights[n] = tensors[n].size / total
        self._policy = policy
        self._write(None)

    def step(self, state: StepState) -> None:
        """Update the bitlengths and write the stored containers to the policy.

        For each managed tensor: a value in ``state.bit_values`` is adopted
        as is (an external optimizer updated it); otherwise a gradient in
        ``state.bit_grads`` is descended with ``gradient + gamma * w_T``.
        Values are clamped to the tensor's range.

        Raises
        ------
        RuntimeError
            If called before :meth:`attach`.
        ValueError
            If a given value or gradient is not finite.
        """
        if self._policy is None:
            raise RuntimeError(f"{type(self).__name__}.step called before attach")
        for name in self.bits:
            value = state.bit_values.get(name, {}).get(self.kind)
            if value is not None:
                if not math.isfinite(value):
                    raise ValueError(f"bit value {value!r} for {name!r} is not finite")
                self.bits[name] = self._clamp(name, value)
                continue
            grad = state.bit_grads.get(name, {}).get(self.kind)
            if grad is None:
                continue
            if not math.isfinite(grad):
                raise ValueError(f"bit gradient {grad!r} for {name!r} is not finite")
            g = grad + self.penalty_grad(name)
            self.bits[name] = self._clamp(name, self.bits[name] - self._update(name, g))
        self._write(state.step)

    # -- queries ---------------------------------------------------------
    def penalty_grad(self, name: str) -> float:
        """Gradient of the footprint penalty for tensor ``name``: ``gamma * w_T``."""
        return self.gamma * self.weights[name]

    def penalty(self) -> float:
        """The footprint penalty ``gamma * sum_T w_T n_T`` at the current bitlengths."""
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

    def _update(self, name: str, g: float) -> float:
        if self.optimizer == "sgd":
            return self.lr * g
        m, v, t = self._adam.get(name, (0.0, 0.0, 0))
        t += 1
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        self._adam[name] = (m, v, t)
        mhat = m / (1 - 0.9**t)
        vhat = v / (1 - 0.999**t)
        return self.lr * mhat / (math.sqrt(vhat) + 1e-8)

    def _write(self, step: int | None) -> None:
        assert self._policy is not None
        key = "man_bits" if self.kind == "man" else "exp_bits"
        for name in self.bits:
            old = self._policy.format_for(name) or Format()
            bits = self.container(name)
            new = replace(old, man_bits=bits) if key == "man_bits" else replace(old, exp_bits=bits)
            self._policy.set(name, new, step=step)


class QuantumMantissa(_Quantum):
    """Learns a mantissa bitlength per tensor (Quantum Mantissa).

    Parameters
    ----------
    gamma : float, default 0.01
        Weight of the footprint penalty ``gamma * sum_T w_T n_T``.
    lr : float, default 0.05
        Step size of the bitlengths' own optimizer (used when the bitlengths
        are updated from ``StepState.bit_grads``; the PyTorch adapter uses its
        own parameter group instead).
    optimizer : {"adam", "sgd"}, default "adam"
        The bitlengths' own optimizer.
    init_bits : float, optional
        Starting bitlength (default: the source's full width).
    min_bits, max_bits : int, optional
        Narrow the valid range (default: 0 .. the source width).
    mode : {"interpolate", "sample"}, default "interpolate"
        Forward of a real bitlength (see :mod:`schrodinger_fp.controllers.qmath`).
    include, exclude : iterable of str
        Globs choosing which tensors get a learned bitlength.
    """

    kind: ClassVar[str] = "man"


class QuantumExponent(_Quantum):
    """Learns an exponent bitlength per tensor (Quantum Exponent).

    Same parameters as :class:`QuantumMantissa`; the default range is
    1 .. the source's exponent width. Fewer exponent bits keep a window of
    ``2**e - 1`` exponents under the tensor's largest and flush the rest.
    """

    kind: ClassVar[str] = "exp"
