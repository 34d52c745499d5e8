"""PyTorch adapter: applies a :class:`~schrodinger_fp.Policy` to a model's weights and activations.

Optional (``pip install schrodinger-fp[torch]``); importing this module
imports torch, nothing else in the package does.

* Weights are reparametrized (``torch.nn.utils.parametrize``): the forward
  pass reads the weight quantized to its policy format, the optimizer keeps
  updating the full-precision master copy (straight-through gradient).
* Activations (outputs of the chosen modules) are quantized in the forward
  pass, so the tensors the next layers stash for backward are stored in the
  policy's container.
* Tensors managed by :class:`~schrodinger_fp.QuantumMantissa` /
  :class:`~schrodinger_fp.QuantumExponent` go through :class:`QuantumFunction`,
  which also returns the gradient of each real bitlength; the bitlengths are
  ``torch.nn.Parameter`` scalars in their own optimizer group
  (:meth:`Adapter.bit_parameters`), and :meth:`Adapter.penalty` is the
  footprint term to add to the loss.

Quantization runs where the tensor lives: on a GPU with
:func:`schrodinger_fp.torch_quantize.quantize_tensor` (integer tensor
operations, bit-identical to :func:`schrodinger_fp.quantize`); on the CPU with
the Rust core's :func:`schrodinger_fp.quantize` itself (same bits, several times
faster than the tensor kernel there).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from .codec import quantize as core_quantize
from .controllers.base import Controller, StepState, TensorSpec, field_range
from .controllers.qmath import Plan, corner_format, plan
from .controllers.quantum import QuantumExponent, QuantumMantissa, _Quantum
from .format import Format
from .policy import Policy
from .torch_quantize import quantize_tensor

__all__ = ["Adapter", "QuantizeSTE", "QuantumFunction", "attach", "quantize", "quantize_tensor"]

_DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
DEFAULT_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.GELU,
    nn.Conv2d,
    nn.Linear,
    nn.LayerNorm,
    nn.Embedding,
)


_CORE_DTYPES = (torch.float32, torch.float64, torch.float16)


def quantize(x: torch.Tensor, fmt: Format) -> torch.Tensor:
    """Reduce ``x`` to ``fmt`` on its own device, bit-identical to :func:`schrodinger_fp.quantize`.

    CPU tensors of a numpy dtype go through the Rust core (fastest there);
    anything else (GPU tensors, bfloat16) through :func:`quantize_tensor`.

    Parameters
    ----------
    x : torch.Tensor
        float32, float64, float16 or bfloat16, any shape and device.
    fmt : Format
        The target format.

    Returns
    -------
    torch.Tensor
        A new tensor (or ``x`` itself when ``fmt`` is lossless for its dtype).

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

    @staticmethod
    def forward(x: torch.Tensor, fmt: Format) -> torch.Tensor:  # type: ignore[override]
        return quantize(x, fmt)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return g, None


def _diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    ok = torch.isfinite(a) & torch.isfinite(b) & (a != b)
    return torch.where(ok, a - b, torch.zeros_like(a))


class QuantumFunction(torch.autograd.Function):
    """Quantum Mantissa/Exponent forward of a plan; gradients for x and the bitlengths.

    ``forward(x, n_man, n_exp, plan, base)``: ``n_man`` / ``n_exp`` are the
    scalar bitlength parameters (their values already shaped ``plan``). The
    backward returns ``g`` for ``x`` (straight-through) and
    ``sum(g * dy/dn)`` for each bitlength.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        x: torch.Tensor, n_man: torch.Tensor, n_exp: torch.Tensor, p: Plan, base: Format
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cache: dict[tuple[int, int], torch.Tensor] = {}

        def q(c: tuple[int, int]) -> torch.Tensor:
            if c not in cache:
                cache[c] = quantize(x, corner_format(base, c))
            return cache[c]

        if len(p.value) == 1 and p.value[0][0] == 1.0:
            y = q(p.value[0][1]).clone()
        else:
            # in float64, so equal corners give back exactly their value
            y = sum(w * q(c).double() for w, c in p.value).to(x.dtype)  # type: ignore[union-attr]
        zero = torch.zeros_like(x)
        dm = sum((w * _diff(q(a), q(b)) for w, a, b in p.dman), zero)
        de = sum((w * _diff(q(a), q(b)) for w, a, b in p.dexp), zero)
        return y, dm, de

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        _, dm, de = output
        ctx.save_for_backward(dm, de)
        ctx.mark_non_differentiable(dm, de)
        ctx.bit_dtypes = (inputs[1].dtype, inputs[2].dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor, _gdm: Any, _gde: Any) -> tuple[Any, ...]:  # type: ignore[override]
        dm, de = ctx.saved_tensors
        gd = g.double()
        gman = (gd * dm).sum().to(ctx.bit_dtypes[0])
        gexp = (gd * de).sum().to(ctx.bit_dtypes[1])
        return g, gman, gexp, None, None


class _WeightQuant(nn.Module):
    """Parametrization: returns the weight as the adapter quantizes it."""

    def __init__(self, adapter: Adapter, name: str) -> None:
        super().__init__()
        self._adapter = [adapter]  # a list, so the adapter is not registered as a submodule
        self.tensor_name = name

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self._adapter[0].apply(self.tensor_name, w)


class Adapter:
    """Applies a policy (and drives controllers) on one model; built by :func:`attach`."""

    def __init__(
        self,
        model: nn.Module,
        policy: Policy,
        controllers: Sequence[Controller],
        *,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.policy = policy
        self.controllers = list(controllers)
        self.enabled = True
        self.capture = False
        self.captured: dict[str, torch.Tensor] = {}
        self.specs: dict[str, TensorSpec] = {}
        self.weights: dict[str, tuple[nn.Module, str]] = {}
        self._hooks: list[Any] = []
        self._rng = np.random.default_rng(seed)
        self._quantum: dict[str, _Quantum] = {}
        self.bits = nn.ParameterDict()

    # -- the forward path --------------------------------------------------
    def apply(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` as stored under tensor ``name``'s current format."""
        if self.capture:
            self.captured[name] = x.detach()
        if not self.enabled:
            return x
        qm = self._quantum.get("man")
        qe = self._quantum.get("exp")
        real_man = qm is not None and name in qm.bits
        real_exp = qe is not None and name in qe.bits
        fmt = self.policy.format_for(name)
        if not (real_man or real_exp):
            return x if fmt is None else QuantizeSTE.apply(x, fmt)
        base = fmt or Format()
        spec = self.specs[name]
        man_range = (
            qm.ranges[name] if qm is not None and real_man else field_range(spec.dtype, "man")
        )
        exp_range = (
            qe.ranges[name] if qe is not None and real_exp else field_range(spec.dtype, "exp")
        )
        n_man = self.bits[_key(name, "man")] if real_man else None
        n_exp = self.bits[_key(name, "exp")] if real_exp else None
        mode = (qm or qe).mode  # type: ignore[union-attr]
        fixed_man = man_range[1] if base.man_bits is None else base.man_bits
        fixed_exp = exp_range[1] if base.exp_bits is None else base.exp_bits
        p = plan(
            float(n_man.detach()) if n_man is not None else fixed_man,
            float(n_exp.detach()) if n_exp is not None else fixed_exp,
            man_range=man_range,
            exp_range=exp_range,
            real_man=real_man,
            real_exp=real_exp,
            mode=mode,
            rng=self._rng,
        )
        zero = torch.zeros((), dtype=torch.float32, device=x.device)
        y, _, _ = QuantumFunction.apply(
            x, n_man if n_man is not None else zero, n_exp if n_exp is not None else zero, p, base
        )
        return y

    # -- training-loop API -------------------------------------------------
    def bit_parameters(self) -> list[nn.Parameter]:
        """The real bitlengths, for their own optimizer parameter group."""
        return list(self.bits.values())

    def penalty(self) -> torch.Tensor:
        """Footprint penalty ``sum gamma * w_T * n_T`` of the quantum controllers (add to loss)."""
        total = torch.zeros(())
        for kind, c in self._quantum.items():
            for name in c.bits:
                p = self.bits[_key(name, kind)]
                total = total.to(p.device) + c.gamma * c.weights[name] * p
        return total

    @torch.no_grad()
    def step(self, step: int, loss: float | torch.Tensor | None = None) -> None:
        """After the optimizer step: clamp bitlengths and let every controller update the policy."""
        values: dict[str, dict[str, float]] = {}
        for kind, c in self._quantum.items():
            for name in c.bits:
                p = self.bits[_key(name, kind)]
                lo, hi = c.ranges[name]
                p.clamp_(lo, hi)
                values.setdefault(name, {})[kind] = float(p)
        if isinstance(loss, torch.Tensor):
            loss = float(loss.detach())
        state = StepState(step=step, loss=loss, bit_values=values)
        for controller in self.controllers:
            controller.step(state)

    def freeze(self) -> None:
        """Stop learning bitlengths: every tensor now uses its policy's integer container."""
        self._quantum.clear()

    @torch.no_grad()
    def tensors(self) -> dict[str, np.ndarray]:
        """Master weights and the activations captured in the last forward (``capture=True``).

        Returns float arrays keyed by tensor name, for a footprint recorder:
        encoding them at the policy's formats stores exactly what the forward
        pass used.
        """
        out: dict[str, np.ndarray] = {}
        for name, (module, attr) in self.weights.items():
            w = module.parametrizations[attr].original  # type: ignore[union-attr,index]
            out[name] = w.detach().cpu().numpy()
        for name, t in self.captured.items():
            if name not in self.weights:
                out[name] = t.cpu().numpy()
        return out

    def detach(self) -> None:
        """Remove every hook and parametrization, leaving the master weights in place."""
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        for module, attr in self.weights.values():
            parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
        self.weights.clear()


def _key(name: str, kind: str) -> str:
    return f"{name}:{kind}".replace(".", "/")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def attach(
    model: nn.Module,
    policy: Policy,
    example_input: Any,
    *,
    controllers: Sequence[Controller] = (),
    weights: Iterable[str] = ("*",),
    activations: Iterable[str] | tuple[type[nn.Module], ...] = DEFAULT_ACTIVATIONS,
    seed: int = 0,
) -> Adapter:
    """Attach a policy and its controllers to ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its parameters are reparametrized in place.
    policy : Policy
        Formats by tensor name: weights are named as in ``named_parameters()``
        (``"fc1.weight"``), activations ``"<module name>.act"``.
    example_input : tensor or tuple of tensors
        One batch, run once (no grad) to learn the activation shapes.
    controllers : sequence of controllers
        Attached to ``policy`` with every tensor's :class:`TensorSpec`.
    weights : iterable of str
        Globs over parameter names to quantize.
    activations : iterable of str, or tuple of module types
        Globs over module names, or module types, whose outputs to quantize.
    seed : int
        Seed of the sampling in ``mode="sample"``.

    Raises
    ------
    TypeError
        If ``model`` is not a module or a parameter has an unsupported dtype.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    adapter = Adapter(model, policy, controllers, seed=seed)
    weight_globs = list(weights)
    act = activations if isinstance(activations, tuple) else list(activations)
    modules = dict(model.named_modules())
    for pname, param in list(model.named_parameters()):
        if not _matches(pname, weight_globs):
            continue
        if param.dtype not in _DTYPE_NAMES:
            raise TypeError(f"parameter {pname!r} has unsupported dtype {param.dtype}")
        mod_name, _, attr = pname.rpartition(".")
        module = modules[mod_name]
        adapter.specs[pname] = TensorSpec(param.numel(), _DTYPE_NAMES[param.dtype])
        adapter.weights[pname] = (module, attr)
    for mod_name, module in modules.items():
        if mod_name == "":
            continue
        chosen = isinstance(module, act) if isinstance(act, tuple) else _matches(mod_name, act)
        if chosen:
            adapter._hooks.append(module.register_forward_hook(_act_hook(adapter, mod_name)))
    # discover activation shapes with one plain forward pass
    adapter.enabled, adapter.capture = False, True
    with torch.no_grad():
        model(*example_input) if isinstance(example_input, tuple) else model(example_input)
    for name, t in adapter.captured.items():
        if t.dtype in _DTYPE_NAMES:
            adapter.specs[name] = TensorSpec(t.numel(), _DTYPE_NAMES[t.dtype])
    adapter.captured.clear()
    adapter.enabled, adapter.capture = True, False
    for pname, (module, attr) in adapter.weights.items():
        parametrize.register_parametrization(module, attr, _WeightQuant(adapter, pname))
    for c in adapter.controllers:
        c.attach(policy, adapter.specs)
        if isinstance(c, QuantumMantissa | QuantumExponent):
            if c.kind in adapter._quantum:
                raise ValueError(f"two controllers learn the {c.kind!r} bitlength")
            adapter._quantum[c.kind] = c
            device = next(model.parameters()).device
            for name, value in c.bits.items():
                adapter.bits[_key(name, c.kind)] = nn.Parameter(
                    torch.tensor(value, dtype=torch.float32, device=device)
                )
    return adapter


def _act_hook(adapter: Adapter, mod_name: str) -> Any:
    name = f"{mod_name}.act"

    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor) and output.dtype in _DTYPE_NAMES:
            if name not in adapter.specs and adapter.enabled:
                return output
            return adapter.apply(name, output)
        return None

    return hook
