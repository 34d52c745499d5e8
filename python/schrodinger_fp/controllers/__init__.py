"""Controllers that choose each tensor's container during training.

See :mod:`schrodinger_fp.controllers.base` for the protocol every controller
follows, :class:`BitWave` (loss-driven, network-wide) and
:class:`QuantumMantissa` / :class:`QuantumExponent` (learned per tensor).
"""

from .base import FIELD_WIDTHS, Controller, StepState, TensorSpec, field_range
from .bitwave import BitWave, Decision
from .qmath import Plan, QuantumContext, plan, quantum_backward, quantum_forward
from .quantum import QuantumExponent, QuantumMantissa

__all__ = [
    "FIELD_WIDTHS",
    "BitWave",
    "Controller",
    "Decision",
    "Plan",
    "QuantumContext",
    "QuantumExponent",
    "QuantumMantissa",
    "StepState",
    "TensorSpec",
    "field_range",
    "plan",
    "quantum_backward",
    "quantum_forward",
]
