"""Controllers that choose each tensor's container during training.

See :mod:`.base` for the protocol every controller follows, :class:`BitWave`
(network-wide, decided from gradient evidence) and :class:`QuantumMantissa` /
:class:`QuantumExponent` (learned per tensor).
"""

from .base import FIELD_WIDTHS, Controller, GradientEvidence, StepState, TensorSpec, field_range
from .bitwave import BitWave, Decision
from .containers import NamedContainers
from .qmath import BitGradients, Plan, QuantumContext, plan, quantum_backward, quantum_forward
from .quantum import QuantumExponent, QuantumMantissa

__all__ = [
    "FIELD_WIDTHS",
    "BitGradients",
    "BitWave",
    "Controller",
    "Decision",
    "GradientEvidence",
    "NamedContainers",
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
