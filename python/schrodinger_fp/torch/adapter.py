"""PyTorch adapter: applies a :class:`~schrodinger_fp.Policy` to a model's weights and activations.

* Weights: each forward pass of the attached model reads every weight
  quantized to its policy format; the parameter itself (its name, its
  ``state_dict`` key, what the optimizer updates) stays the full-precision
  master copy (straight-through gradient).
* Activations: the outputs of the chosen modules are quantized in the forward
  pass, so the next layers read and stash them in the policy's container.
* Every other tensor autograd saves is named ``"<module>.saved"``; the
  :func:`~schrodinger_fp.torch.compressed_stash` holds it at that name's format.
* Tensors learned by :class:`~schrodinger_fp.QuantumMantissa` /
  :class:`~schrodinger_fp.QuantumExponent` go through :class:`QuantumFunction`;
  the bitlength gradients reach the controllers in :meth:`Adapter.step`, which
  own their optimizer and the footprint penalty (nothing to add to the loss,
  nothing to give an optimizer).
* :class:`~schrodinger_fp.BitWave` gets its gradient evidence from
  :meth:`Adapter.step`'s ``probe``.

Quantization runs where the tensor lives: on the CPU with the Rust core's
:func:`schrodinger_fp.quantize`; elsewhere with
:func:`~schrodinger_fp.torch.quantize_tensor` (bit-identical).
"""

from __future__ import annotations

import math
import warnings
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..format import Format
from ..training.controllers.base import Controller, StepState, TensorSpec, field_range
from ..training.controllers.flush import exponent_bits_needed
from ..training.controllers.qmath import (
    BitGradients,
    Plan,
    QuantumContext,
    bit_gradients,
    corner_format,
    needs_input,
    plan,
    upper_corners,
)
from ..training.controllers.quantum import _Quantum
from ..training.core_calls import quantize as core_quantize
from ..training.policy import Policy
from .probe import Probe, gradient_evidence
from .stash import _DTYPE_NAMES, _from_numpy, _to_numpy
from .tensor_port import quantize_tensor

__all__ = ["Adapter", "QuantizeSTE", "QuantumFunction", "quantize"]

_CORE_DTYPES = (torch.float32, torch.float64, torch.float16)


def quantize(x: torch.Tensor, fmt: Format) -> torch.Tensor:
    """Reduce ``x`` to ``fmt`` on its own device, bit-identical to :func:`schrodinger_fp.quantize`.

    Raises
    ------
    TypeError
        If the dtype is not supported or ``fmt`` is not a Format.
    ValueError
        If the format's bitlengths exceed the dtype's fields.
    """
    if x.device.type != "cpu" or x.dtype not in _CORE_DTYPES or not isinstance(fmt, Format):
        return quantize_tensor(x, fmt)
    if fmt.window_top is None and fmt.is_lossless_for(_DTYPE_NAMES[x.dtype]):
        return x
    arr = x.detach().contiguous().numpy()
    return torch.from_numpy(core_quantize(arr, fmt, threads=1))


class QuantizeSTE(torch.autograd.Function):
    """``quantize(x, fmt)`` forward, identity (straight-through) backward."""

    # forward takes ctx (no setup_context): torch binds the arguments of a separate
    # setup_context with inspect.signature on every call, a fixed cost per tensor
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fmt: Format) -> torch.Tensor:  # type: ignore[override]
        y = quantize(x, fmt)
        return y.clone() if y is x else y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return g, None


class QuantumFunction(torch.autograd.Function):
    """Quantum Mantissa/Exponent: store one corner, return bitlength gradients to a sink.

    ``apply(x, plan, base, sink, uppers)``: the forward value is ``x`` at the
    plan's corner; backward returns ``g`` for ``x`` (straight-through) and calls
    ``sink(bits)`` with the :class:`BitGradients` of the learned fields, computed
    from the stored value alone (:mod:`schrodinger_fp.training.controllers.qmath`),
    so nothing but that value is kept for backward; and, for a field stored at
    its lowest bitlength, the input at the corner above, appended to
    ``uppers`` with its format (what the compressed stash holds it in).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        p: Plan,
        base: Format,
        sink: Callable[[BitGradients], None],
        uppers: list[tuple[torch.Tensor, Format]],
    ) -> torch.Tensor:
        # ctx in forward, as in QuantizeSTE: no per-call binding of a setup_context
        y = quantize(x, corner_format(base, p.corner))
        y = y.clone() if y is x else y
        kept: list[torch.Tensor] = []
        ctx.upper_kinds = []
        if needs_input(p):  # a field at its lowest: backward needs the corner above, not x
            for kind, c in upper_corners(_to_numpy(x), _to_numpy(y), p, base).items():
                kept.append(_from_numpy(c.values, x.dtype).to(x.device))
                ctx.upper_kinds.append(kind)
                uppers.append((kept[-1], c.format))  # the stash holds it at that corner
        ctx.save_for_backward(y, *kept)
        ctx.plan, ctx.base, ctx.sink = p, base, sink
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        y, *kept = ctx.saved_tensors
        upper = {k: _to_numpy(u) for k, u in zip(ctx.upper_kinds, kept, strict=True)}
        qctx = QuantumContext(_to_numpy(y), ctx.plan, ctx.base, upper)
        ctx.sink(bit_gradients(_to_numpy(g), qctx))
        return g, None, None, None, None


def _fresh_seed(fmt: Format, step: int, name: str) -> Format:
    """A stochastic format's seed for this step and tensor (the same seed every step is a bias)."""
    if fmt.rounding != "stochastic" and fmt.underflow != "stochastic":
        return fmt
    mixed = zlib.crc32(f"{fmt.seed}:{step}:{name}".encode()) & 0x7FFFFFFF
    return replace(fmt, seed=mixed)


class Adapter:
    """Applies a policy (and drives controllers) on one model; built by :func:`attach`.

    Attributes
    ----------
    specs : dict name -> TensorSpec
        Every tensor the adapter knows: weights (``named_parameters()`` names),
        module outputs (``"<module>.act"``) and other saved tensors (``"<module>.saved"``).
    """

    def __init__(
        self, model: nn.Module, policy: Policy, controllers: Sequence[Controller], seed: int
    ) -> None:
        self.model = model
        self.policy = policy
        self.controllers = list(controllers)
        self.enabled = True
        self.specs: dict[str, TensorSpec] = {}
        self.weights: dict[str, tuple[nn.Module, str]] = {}
        self.follows: dict[str, str] = {}  # "<module>.saved" -> the ".act" whose format it takes
        self._hooks: list[Any] = []
        self._rng = np.random.default_rng(seed)
        self._quantum: dict[str, _Quantum] = {}
        self._stack: list[str] = []
        self._produced: dict[tuple[Any, ...], tuple[Any, str, Format | None]] = {}
        self._override: dict[str, Format | None] | None = None
        self._bit_grads: dict[str, dict[str, float]] = {}
        self._lowest: dict[str, dict[str, int]] = {}
        self._spread_squares: dict[str, dict[str, float]] = {}
        self._scale_squares: dict[str, float] = {}
        self._sizes: dict[str, int] = {}
        self._dtypes: dict[str, str] = {}
        self._pending: tuple[str, Format | None, list[tuple[torch.Tensor, Format]]] | None = None
        self._step = 0
        self._collect = True
        self._warned: set[str] = set()

    # -- formats ---------------------------------------------------------
    def format_for(self, name: str) -> Format | None:
        """The format tensor ``name`` is stored in now."""
        if self._override is not None and name in self._override:
            return self._override[name]
        return self.policy.format_for(name)

    def saved_format(self, t: torch.Tensor) -> tuple[str, Format | None]:
        """Name and format of a tensor autograd saves (the stash's lookup)."""
        if self._pending is not None:
            name, fmt, uppers = self._pending
            for upper, upper_fmt in uppers:  # the corner above, kept at the bottom of a range
                if t is upper:
                    return f"{name}.upper", upper_fmt
            return name, fmt
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel(), t.dtype)
        entry = self._produced.get(key)
        if entry is not None and entry[0]() is not None:
            return entry[1], entry[2]
        name = f"{self._stack[-1] if self._stack else '<outside>'}.saved"
        fmt = self.format_for(name) if self.enabled else None
        if fmt is not None and self._quantum and name in self.follows:
            fmt = self._widened(t, fmt)
        return name, fmt

    @staticmethod
    def kept_for_controllers(name: str) -> bool:
        """Whether saved tensor ``name`` is kept only for a controller's own gradient.

        The corner above a field at its lowest bitlength (``"<tensor>.upper"``): a
        training without the controllers would save nothing of it.
        """
        return name.endswith(".upper")

    def _widened(self, t: torch.Tensor, fmt: Format) -> Format:
        """A followed format with the exponent bits ``t``'s own values need.

        Softmax probabilities or pre-normalisation sums span more binades than
        the module output whose learned format they take, and only the
        gradients (never the forward pass, never a bit gradient) see what their
        window flushes.
        """
        dtype = _DTYPE_NAMES.get(t.dtype)
        if dtype is None or fmt.exp_bits is None:
            return fmt
        highest = field_range(dtype, "exp")[1]
        man = field_range(dtype, "man")[1] if fmt.man_bits is None else fmt.man_bits
        need = exponent_bits_needed(_to_numpy(t), man, fmt.exp_bits, highest)
        return fmt if need <= fmt.exp_bits else replace(fmt, exp_bits=need)

    def produced_at(self, t: torch.Tensor, fmt: Format) -> bool:
        """Whether ``t`` is a tensor this forward pass quantized to ``fmt`` (nothing left to do)."""
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel(), t.dtype)
        entry = self._produced.get(key)
        return entry is not None and entry[0]() is not None and entry[2] == fmt

    # -- the forward path --------------------------------------------------
    def apply(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` as stored under tensor ``name``'s current format."""
        if self._collect and torch.is_grad_enabled():
            self._sizes[name] = x.numel()
            self._dtypes[name] = _DTYPE_NAMES[x.dtype]
        y, fmt = self._quantized(name, x) if self.enabled else (x, None)
        key = (y.untyped_storage().data_ptr(), y.storage_offset(), y.numel(), y.dtype)
        self._produced[key] = (weakref.ref(y), name, fmt)
        return y

    def _quantized(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, Format | None]:
        qm, qe = self._quantum.get("man"), self._quantum.get("exp")
        real_man = qm is not None and name in qm.bits
        real_exp = qe is not None and name in qe.bits
        fmt = self.format_for(name)
        learning = (real_man or real_exp) and self.model.training and torch.is_grad_enabled()
        if not learning:
            if fmt is None:
                return x, None
            fmt = _fresh_seed(fmt, self._step, name)
            return QuantizeSTE.apply(x, fmt), fmt
        base = _fresh_seed(fmt or Format(), self._step, name)
        dtype = self.specs[name].dtype
        man_range = qm.ranges[name] if qm is not None and real_man else field_range(dtype, "man")
        exp_range = qe.ranges[name] if qe is not None and real_exp else field_range(dtype, "exp")
        p = plan(
            qm.bits[name] if qm is not None and real_man else _bits(base.man_bits, man_range),
            qe.bits[name] if qe is not None and real_exp else _bits(base.exp_bits, exp_range),
            man_range=man_range,
            exp_range=exp_range,
            real_man=real_man,
            real_exp=real_exp,
            rng=self._rng,
        )
        stored = corner_format(base, p.corner)
        # QuantumFunction saves its output while it runs, before apply() can register it
        uppers: list[tuple[torch.Tensor, Format]] = []
        self._pending = (name, stored, uppers)
        try:
            y = QuantumFunction.apply(x, p, base, self._sink(name), uppers)
        finally:
            self._pending = None
        return y, stored

    def _sink(self, name: str) -> Callable[[BitGradients], None]:
        def sink(bits: BitGradients) -> None:
            if not self._collect:
                return
            grads = self._bit_grads.setdefault(name, {})
            for kind, g in (("man", bits.man), ("exp", bits.exp)):
                if g is not None:
                    grads[kind] = grads.get(kind, 0.0) + g
            squares = self._spread_squares.setdefault(name, {})
            for kind, s in (("man", bits.man_spread), ("exp", bits.exp_spread)):
                if s is not None:  # the terms of several uses of a tensor add up
                    squares[kind] = squares.get(kind, 0.0) + s * s
            if bits.loss_scale is not None:
                self._scale_squares[name] = self._scale_squares.get(name, 0.0) + bits.loss_scale**2
            if bits.exp_lowest is not None:
                lowest = self._lowest.setdefault(name, {})
                lowest["exp"] = max(lowest.get("exp", 0), bits.exp_lowest)

        return sink

    # -- training-loop API -------------------------------------------------
    def step(
        self, step: int, loss: float | torch.Tensor | None = None, *, probe: Probe | None = None
    ) -> None:
        """After the optimizer step: let every controller update the policy.

        Parameters
        ----------
        step : int
            The step number.
        loss : float or tensor, optional
            This step's loss (for controllers that read it).
        probe : callable, optional
            ``probe(part) -> loss`` of the part ``part`` (a slice) of this
            step's batch, e.g. ``lambda part: loss_fn(model(x[part]), y[part])``.
            :class:`~schrodinger_fp.BitWave` needs it every ``period`` steps.

        Raises
        ------
        ValueError
            If a controller needs gradient evidence and ``probe`` is missing.
        """
        if isinstance(loss, torch.Tensor):
            loss = float(loss.detach())
        if self._quantum and not self._bit_grads and "grads" not in self._warned:
            self._warned.add("grads")
            warnings.warn(
                "no bitlength gradient reached the adapter since the last step, so Quantum "
                "Mantissa/Exponent learn nothing: call loss.backward() on a loss computed by "
                "the attached model in train mode before adapter.step()",
                RuntimeWarning,
                stacklevel=2,
            )
        evidence = None
        for c in self.controllers:
            due = getattr(c, "probe_due", None)
            if due is not None and due(step) and probe is not None:
                evidence = gradient_evidence(self, c.candidates(), probe)  # type: ignore[attr-defined]
        state = StepState(
            step=step,
            loss=loss,
            bit_grads=self._bit_grads,
            sizes=dict(self._sizes),
            evidence=evidence,
            lowest=self._lowest,
            bit_spreads={
                n: {k: math.sqrt(v) for k, v in sq.items()}
                for n, sq in self._spread_squares.items()
            },
            loss_scales={n: math.sqrt(v) for n, v in self._scale_squares.items()},
        )
        for controller in self.controllers:
            controller.step(state)
        self._follow(step)
        self._bit_grads = {}
        self._lowest = {}
        self._spread_squares = {}
        self._scale_squares = {}
        self._sizes.clear()
        self._step = step + 1

    def freeze(self) -> None:
        """Stop learning bitlengths: every tensor now uses its policy's integer container."""
        self._quantum.clear()

    def detach(self) -> None:
        """Remove every hook; the model is left as it was before :func:`attach`."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._produced.clear()

    # -- internals -------------------------------------------------------
    def _follow(self, step: int | None) -> None:
        """Saved tensors take the learned format of the module output they belong to."""
        if not self._quantum:
            return
        for saved, act in self.follows.items():
            fmt = self.policy.format_for(act)
            if fmt is not None:
                self.policy.set(saved, fmt, step=step)

    def _swap_weights(self, module: nn.Module, inputs: Any) -> None:
        # new forward: tensors produced before belong to an earlier graph
        self._produced.clear()
        for name, (mod, attr) in self.weights.items():
            # an instance attribute shadows the parameter for this forward pass only, so the
            # parameter keeps its name, state_dict key and optimizer slot
            param = mod._parameters[attr]
            if param is not None:
                mod.__dict__[attr] = self.apply(name, param)

    def _restore_weights(self, module: nn.Module, inputs: Any, output: Any) -> None:
        for mod, attr in self.weights.values():
            mod.__dict__.pop(attr, None)


def _bits(bits: int | None, rng: tuple[int, int]) -> int:
    return rng[1] if bits is None else bits
