"""PyTorch: apply a :class:`~schrodinger_fp.Policy` to a model and hold its stash in containers.

Optional (``pip install schrodinger-fp[torch]``); importing this package
imports torch, nothing else in schrodinger_fp does.

* :func:`attach` (:mod:`.attach`, :mod:`.adapter`): weights and module outputs
  quantized to the policy's formats, controllers driven once per step;
* :func:`compressed_stash` (:mod:`.stash`): every tensor autograd saves for
  backward held as an encoded frame in its container, decoded for backward;
* :func:`quantize_tensor` (:mod:`.tensor_port`): the core's reduction written
  with tensor operations, bit-identical to :func:`schrodinger_fp.quantize`, on any device.
"""

from .adapter import Adapter, QuantizeSTE, QuantumFunction, quantize
from .attach import attach
from .stash import CompressedStash, StashStats, compressed_stash
from .tensor_port import quantize_tensor

__all__ = [
    "Adapter",
    "CompressedStash",
    "QuantizeSTE",
    "QuantumFunction",
    "StashStats",
    "attach",
    "compressed_stash",
    "quantize",
    "quantize_tensor",
]
