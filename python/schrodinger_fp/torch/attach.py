"""attach(): hook a policy and its controllers onto a model, and name every tensor.

One forward pass on an example batch (buffers and random state restored)
finds every weight, module output and other saved tensor with its size; the
hooks it leaves make each later forward pass quantize what the policy says.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ..training.controllers.base import Controller, TensorSpec
from ..training.controllers.quantum import QuantumExponent, QuantumMantissa
from ..training.policy import Policy
from .adapter import Adapter
from .stash import _DTYPE_NAMES, MIN_BYTES

__all__ = ["attach"]

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def attach(
    model: nn.Module,
    policy: Policy,
    example_input: Any,
    *,
    controllers: Sequence[Controller] = (),
    weights: Iterable[str] = ("*",),
    activations: Iterable[str | type[nn.Module]] = ("*",),
    seed: int = 0,
) -> Adapter:
    """Attach a policy and its controllers to ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The model. Its parameters, their names and its ``state_dict`` are left
        as they are; hooks do the rest.
    policy : Policy
        Formats by tensor name: weights as in ``model.named_parameters()``
        (``"fc1.weight"``), module outputs ``"<module>.act"``, other saved
        tensors ``"<module>.saved"``.
    example_input : tensor, tuple of tensors or dict of keyword arguments
        One batch, run once to learn every tensor's name and size. Buffers
        (BatchNorm statistics) and the random state are restored afterwards.
    controllers : sequence of controllers
        Attached to ``policy``: BitWave with every tensor, the quantum
        controllers with the weights and module outputs.
    weights : iterable of str
        Globs over parameter names to quantize.
    activations : iterable of str or module types
        Globs over module names, or module types, whose outputs to quantize
        (default: every module but the model itself and plain containers).
    seed : int
        Seed of the corner sampling of the quantum controllers.

    Raises
    ------
    TypeError
        If ``model`` is not a module or a parameter has an unsupported dtype.
    ValueError
        If two controllers learn the same field.

    Warns
    -----
    UserWarning
        If a policy rule matches no tensor of the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    adapter = Adapter(model, policy, controllers, seed)
    weight_globs = list(weights)
    chosen_types = tuple(a for a in activations if isinstance(a, type))
    act_globs = [a for a in activations if isinstance(a, str)]
    for pname, param in model.named_parameters():
        if not _matches(pname, weight_globs):
            continue
        if param.dtype not in _DTYPE_NAMES:
            raise TypeError(f"parameter {pname!r} has unsupported dtype {param.dtype}")
        mod_name, _, attr = pname.rpartition(".")
        adapter.specs[pname] = TensorSpec(param.numel(), _DTYPE_NAMES[param.dtype])
        adapter.weights[pname] = (model.get_submodule(mod_name), attr)
    hooks = adapter._hooks
    hooks.append(model.register_forward_pre_hook(adapter._swap_weights))
    for mod_name, module in model.named_modules():
        if mod_name:
            hooks.append(module.register_forward_pre_hook(_push(adapter, mod_name)))
            hooks.append(module.register_forward_hook(_pop(adapter), always_call=True))
        if mod_name == "" or isinstance(module, _CONTAINERS):
            continue
        if isinstance(module, chosen_types) or _matches(mod_name, act_globs):
            hooks.append(module.register_forward_hook(_act_hook(adapter, f"{mod_name}.act")))
    hooks.append(model.register_forward_hook(adapter._restore_weights, always_call=True))
    _discover(adapter, example_input)
    names = set(adapter.specs)
    for pattern, _ in policy.rules:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            warnings.warn(
                f"policy rule {pattern!r} matches no tensor of the model; tensors are named as "
                f"in named_parameters() and '<module>.act' / '<module>.saved', e.g. "
                f"{sorted(names)[:4]}",
                UserWarning,
                stacklevel=2,
            )
    # a weight the stash holds as it is (under its default min_bytes in FP32) has no container
    # to learn, and its bit gradient would cost as much as a large tensor's
    learnable = {
        n: s
        for n, s in adapter.specs.items()
        if not n.endswith(".saved") and not (n in adapter.weights and 4 * s.size < MIN_BYTES)
    }
    for c in adapter.controllers:
        if isinstance(c, QuantumMantissa | QuantumExponent):
            if c.kind in adapter._quantum:
                raise ValueError(f"two controllers learn the {c.kind!r} bitlength")
            c.attach(policy, learnable)
            adapter._quantum[c.kind] = c
        else:
            c.attach(policy, adapter.specs)
    adapter._follow(None)
    return adapter


def _discover(adapter: Adapter, example_input: Any) -> None:
    """One forward pass to name and size every tensor; buffers and random state restored."""
    model = adapter.model
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    sizes: dict[str, int] = {}
    dtypes: dict[str, str] = {}
    seen: set[tuple[Any, ...]] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.numel(), t.dtype)
        if t.dtype in _DTYPE_NAMES and key not in seen:
            seen.add(key)
            name, _ = adapter.saved_format(t)
            if name.endswith(".saved"):
                sizes[name] = sizes.get(name, 0) + t.numel()
                dtypes[name] = _DTYPE_NAMES[t.dtype]
        return t

    adapter.enabled = False
    try:
        with (
            torch.random.fork_rng(devices=[]),
            torch.enable_grad(),
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        ):
            output = _call(model, example_input)
        key = _output_key(output)
        produced = None if key is None else adapter._produced.get(key)
        if produced is not None and produced[1].endswith(".act"):
            # what the loss saves outside the model (log-probabilities) is the model output's
            # kin: with learned formats it takes that output's format, with the exponent bits
            # its own values need
            adapter.follows["<outside>.saved"] = produced[1]
    finally:
        adapter.enabled = True
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        adapter._produced.clear()
    for name, size in adapter._sizes.items():
        if name not in adapter.weights:
            adapter.specs[name] = TensorSpec(size, adapter._dtypes[name])
    adapter._sizes.clear()
    for name, size in sizes.items():
        adapter.specs[name] = TensorSpec(size, dtypes[name])
        act = _nearest_act(name[: -len(".saved")], adapter.specs)
        if act is not None:
            adapter.follows[name] = act


def _nearest_act(module: str, specs: dict[str, TensorSpec]) -> str | None:
    while True:
        if f"{module}.act" in specs:
            return f"{module}.act"
        if module in ("", "<outside>"):
            return None
        module = module.rpartition(".")[0]


def _output_key(output: Any) -> tuple[Any, ...] | None:
    if not isinstance(output, torch.Tensor):
        return None
    return (
        output.untyped_storage().data_ptr(),
        output.storage_offset(),
        output.numel(),
        output.dtype,
    )


def _call(model: nn.Module, batch: Any) -> Any:
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, tuple):
        return model(*batch)
    return model(batch)


def _push(adapter: Adapter, name: str) -> Any:
    def hook(module: nn.Module, inputs: Any) -> None:
        adapter._stack.append(name)

    return hook


def _pop(adapter: Adapter) -> Any:
    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if adapter._stack:
            adapter._stack.pop()

    return hook


def _act_hook(adapter: Adapter, name: str) -> Any:
    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        if isinstance(output, torch.Tensor) and output.dtype in _DTYPE_NAMES:
            return adapter.apply(name, output)
        if (
            isinstance(output, tuple)
            and output
            and isinstance(output[0], torch.Tensor)
            and output[0].dtype in _DTYPE_NAMES
        ):
            return (adapter.apply(name, output[0]), *output[1:])
        return None

    return hook
