"""Gradient evidence for BitWave: what one bit fewer does to the gradient, against batch noise.

One measurement runs the user's ``probe(part) -> loss`` on the step's batch
four times or more, each a forward and backward pass of its own (the
training step's graph is not touched):

* the even and the odd half of the batch at full precision: their mean is the
  full-precision gradient ``g_full`` (exact for a mean loss over equal halves),
  half their difference the gradient noise of the batch;
* the whole batch at the current formats, and at one bit fewer in each field
  that can lose one, every saved tensor held at its format as the compressed
  stash would (by fake quantization: the same values).

Buffers (BatchNorm statistics) and the random state are restored after each
pass, so every pass sees the same dropout masks and the training run is left
as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from ..format import Format
from ..training.controllers.base import GradientEvidence
from .stash import CompressedStash

if TYPE_CHECKING:
    from .adapter import Adapter

__all__ = ["Probe", "gradient_evidence"]

#: ``probe(part) -> loss`` of the part ``part`` (a slice) of the step's batch.
Probe = Callable[[slice], torch.Tensor]


def _seed(seed: int) -> None:
    """``torch.manual_seed(seed)``, cheaply where no accelerator is present.

    ``torch.manual_seed`` also queues a seed for each accelerator not initialised yet, and
    formats the caller's stack to do so: hundreds of microseconds, as much as a probe pass of
    a small model. Without an accelerator that queue is never run, so the CPU generator is
    all there is to seed.
    """
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    present = (
        accelerator.is_available()
        if accelerator is not None
        else torch.cuda.is_available()
        or torch.backends.mps.is_available()
        or (hasattr(torch, "xpu") and torch.xpu.is_available())
    )
    if present:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


@contextmanager
def _isolated(adapter: Adapter) -> Iterator[None]:
    """Run a pass that leaves no trace: buffers, random state and bit gradients kept."""
    model = adapter.model
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    adapter._collect = False
    try:
        with torch.random.fork_rng(devices=[]):
            _seed(adapter._step)
            yield
    finally:
        adapter._collect = True
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])


def _gradient(
    adapter: Adapter, probe: Probe, part: slice, formats: Mapping[str, Format | None] | None
) -> list[torch.Tensor]:
    """The gradient of every trained parameter; ``formats=None``: full precision."""
    from .adapter import quantize

    params = [p for p in adapter.model.parameters() if p.requires_grad]
    with _isolated(adapter), torch.enable_grad():
        if formats is None:
            adapter.enabled = False
            try:
                loss = probe(part)
            finally:
                adapter.enabled = True
        else:
            adapter._override = dict(formats)

            def held(t: torch.Tensor, fmt: Format) -> torch.Tensor:
                # weights and module outputs the adapter quantized are in their container already
                return t if adapter.produced_at(t, fmt) else quantize(t, fmt)

            try:
                with CompressedStash(adapter.saved_format, min_bytes=0, quantizer=held):
                    loss = probe(part)
            finally:
                adapter._override = None
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True)]


def _distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """``|a - b|`` over all parameters, without concatenating them (a model's worth of memory)."""
    norms = [
        torch.linalg.vector_norm(x - y, dtype=torch.float64) for x, y in zip(a, b, strict=True)
    ]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0  # one host sync


def gradient_evidence(
    adapter: Adapter, candidates: Mapping[str, Mapping[str, Format | None]], probe: Probe
) -> GradientEvidence:
    """Measure :class:`GradientEvidence` for the current formats and each candidate field.

    Parameters
    ----------
    adapter : Adapter
        The attached adapter.
    candidates : mapping field -> (tensor name -> format)
        The formats with one bit fewer in each field (``BitWave.candidates()``).
    probe : callable
        ``probe(part) -> loss`` of the part ``part`` of this step's batch.
    """
    ga = _gradient(adapter, probe, slice(0, None, 2), None)
    gb = _gradient(adapter, probe, slice(1, None, 2), None)
    full = [(a + b) / 2 for a, b in zip(ga, gb, strict=True)]
    noise = _distance(ga, gb) / 2
    del ga, gb
    current = _distance(_gradient(adapter, probe, slice(None), {}), full)
    narrower = {
        field: _distance(_gradient(adapter, probe, slice(None), fmts), full)
        for field, fmts in candidates.items()
    }
    return GradientEvidence(noise=noise, current=current, narrower=narrower)
