"""The controller protocol: what a controller is given each step and how it writes formats.

A controller is any object with two methods:

``attach(policy, tensors)``
    called once with the :class:`~schrodinger_fp.Policy` it writes to and a
    mapping ``name -> TensorSpec`` of the tensors it may manage;
``step(state)``
    called once per training step with a :class:`StepState`; it writes new
    formats with ``policy.set(name, fmt, step=state.step)``, which records the
    change.

Built-in controllers (:class:`BitWave`, :class:`QuantumMantissa`,
:class:`QuantumExponent`) follow exactly this protocol, so a custom one plugs
in the same way (see the README for an example).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..policy import Policy

__all__ = [
    "FIELD_WIDTHS",
    "Controller",
    "GradientEvidence",
    "StepState",
    "TensorSpec",
    "field_range",
]

#: (exponent bits, mantissa bits) of each supported source dtype.
FIELD_WIDTHS: dict[str, tuple[int, int]] = {
    "float32": (8, 23),
    "float64": (11, 52),
    "float16": (5, 10),
    "bfloat16": (8, 7),
}


def field_range(dtype: str, kind: str) -> tuple[int, int]:
    """Return the valid (lowest, highest) bitlength of a field of ``dtype``.

    Parameters
    ----------
    dtype : str
        One of ``FIELD_WIDTHS``.
    kind : {"man", "exp"}
        Mantissa or exponent field.

    Raises
    ------
    TypeError
        If ``dtype`` is not supported.
    ValueError
        If ``kind`` is not "man" or "exp".
    """
    if dtype not in FIELD_WIDTHS:
        raise TypeError(f"dtype={dtype!r} is not one of {sorted(FIELD_WIDTHS)}")
    e, m = FIELD_WIDTHS[dtype]
    if kind == "man":
        return 0, m
    if kind == "exp":
        return 1, e
    raise ValueError(f"kind={kind!r} must be 'man' or 'exp'")


@dataclass(frozen=True)
class TensorSpec:
    """What a controller knows about a tensor it manages.

    Attributes
    ----------
    size : int
        Number of values (its share of the footprint is ``size / total``).
    dtype : str
        Source dtype name (``"float32"``, ...).
    """

    size: int
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError(f"size={self.size!r} must be a non-negative integer")
        if self.dtype not in FIELD_WIDTHS:
            raise TypeError(f"dtype={self.dtype!r} is not one of {sorted(FIELD_WIDTHS)}")


@dataclass(frozen=True)
class GradientEvidence:
    """What a bit costs, measured on one batch (BitWave decides from it).

    Norms are over the concatenated gradient of every trained parameter;
    ``g_full`` is the gradient at full precision (lossless formats).

    Attributes
    ----------
    noise : float
        ``|g_a - g_b| / 2`` for the two halves ``a``, ``b`` of the batch at
        full precision: the batch gradient's own sampling noise.
    current : float
        ``|g(current formats) - g_full|``.
    narrower : mapping {"man" | "exp": float}
        ``|g(one bit fewer in that field) - g_full|`` for each field that can
        still lose a bit.
    """

    noise: float
    current: float
    narrower: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StepState:
    """What every controller is given at each step.

    Attributes
    ----------
    step : int
        The step number (monotonic).
    loss : float or None
        The training loss of this step.
    bit_grads : mapping name -> {"man" | "exp": float}
        Gradient of the loss (penalty excluded) with respect to each real
        bitlength (:func:`schrodinger_fp.training.controllers.quantum_backward`,
        or the PyTorch adapter); a quantum controller descends along it.
    sizes : mapping name -> int
        Values each tensor held in this step (footprint shares come from the
        training batch, not from an example batch).
    evidence : GradientEvidence or None
        The gradient cost of the current and narrower formats, on steps where
        a controller asked for it (:meth:`BitWave.probe_due`).
    lowest : mapping name -> {"man" | "exp": int}
        The lowest bitlength each tensor's values allowed in this step (the
        exponent's flush limit, :class:`~schrodinger_fp.training.controllers.BitGradients`);
        a quantum controller does not go below it.
    bit_spreads : mapping name -> {"man" | "exp": float}
        The spread of each bit gradient's terms
        (:class:`~schrodinger_fp.training.controllers.BitGradients`): a quantum
        controller prices a bit by its gradient plus a multiple of it.
    loss_scales : mapping name -> float
        The scale of each tensor's evidence whatever its bitlength
        (:class:`~schrodinger_fp.training.controllers.BitGradients`.loss_scale): a
        quantum controller prices the footprint in their sum.
    """

    step: int
    loss: float | None = None
    bit_grads: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    evidence: GradientEvidence | None = None
    lowest: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    bit_spreads: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    loss_scales: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Controller(Protocol):
    """Structural type of a controller (see the module docstring)."""

    def attach(self, policy: Policy, tensors: Mapping[str, TensorSpec]) -> None:
        """Bind to ``policy`` and the tensors it may manage; write initial formats."""

    def step(self, state: StepState) -> None:
        """Observe one training step and write new formats to the policy."""
