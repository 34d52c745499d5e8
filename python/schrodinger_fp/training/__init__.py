"""Training: which container each tensor is stored in, and the controllers that choose it.

* :class:`Policy` (:mod:`.policy`): tensor name -> :class:`~schrodinger_fp.Format`,
  every change recorded;
* controllers (:mod:`.controllers`): :class:`BitWave`, :class:`QuantumMantissa`,
  :class:`QuantumExponent`, or any object with ``attach`` / ``step``;
* :class:`FootprintRecorder` (:mod:`.footprint`): bytes of real tensors encoded at
  the policy's formats;
* :func:`plot_bitlengths` (:mod:`.plot`, needs matplotlib).

Nothing here imports torch; :mod:`schrodinger_fp.torch` applies all of it to a model.
"""

from .controllers import BitWave, QuantumExponent, QuantumMantissa
from .footprint import FootprintRecorder
from .policy import Policy

__all__ = ["BitWave", "FootprintRecorder", "Policy", "QuantumExponent", "QuantumMantissa"]
