"""What a narrower container really costs, against what a bit gradient can see of it.

    python bench/experiments/bit_cost.py [--steps 150]

Trains the char LM of ``tasks.py`` in FP32 for ``--steps`` steps, then, on one
batch, stores one tensor at a time in a narrower format (a module output or a
weight; everything else lossless) and prints, per format:

* the true change of the loss (a forward pass at that format);
* the first-order estimate ``-g . D`` (``D = x - Q(x)``), what the Quantum
  Mantissa/Exponent bit gradient is made of;
* the spread of the first order's terms ``sqrt(sum_i (g_i D_i)^2)``, which
  Quantum Mantissa/Exponent add to a bit's price (``confidence`` times it);
* a curvature estimate ``0.5 D^T H D`` with the empirical Fisher
  ``H = N sum_s g_s g_s^T`` (``N`` sequences; a weight's per-sample gradients
  are not at hand, so ``N sum_i g_i^2 D_i^2``);
* the share of the tensor's energy the format loses, ``|D|^2 / |x|^2``, and
  ``flush_budget(m)``, the share round to nearest at ``m`` mantissa bits costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasks import TASKS

import schrodinger_fp as sfp
from schrodinger_fp.torch import attach
from schrodinger_fp.training.controllers.flush import flush_budget

ACTIVATIONS = ("body.layers.0.linear1",)
WEIGHTS = ("body.layers.0.linear1.weight", "body.layers.1.self_attn.in_proj_weight")
FORMATS = ((8, 3), (8, 1), (8, 0), (3, 3), (2, 3), (1, 3), (3, 1), (2, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = TASKS["text"]()
    torch.manual_seed(0)
    model = task.make_model()
    opt = torch.optim.Adam(model.parameters(), lr=task.lr)
    g = torch.Generator().manual_seed(1000)
    for _ in range(args.steps):
        x, y = task.batch(g)
        loss = task.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy = sfp.Policy()
    adapter = attach(model, policy, task.example)
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    for name in ACTIVATIONS:

        def keep(m: torch.nn.Module, i: object, o: torch.Tensor, name: str = name) -> None:
            if o.requires_grad:
                o.retain_grad()
                outputs[f"{name}.act"] = o

        modules[name].register_forward_hook(keep)
    x, y = task.batch(g)
    samples = x.shape[0]
    adapter.enabled = False
    loss = task.loss(model, x, y)
    opt.zero_grad()
    loss.backward()
    base = float(loss.detach())
    adapter.enabled = True
    params = dict(model.named_parameters())
    tensors = [(n, outputs[n], True) for n in outputs] + [(n, params[n], False) for n in WEIGHTS]
    print(f"char LM after {args.steps} FP32 steps, loss {base:.4f}, {samples} sequences")
    print(
        "| tensor | format | true loss change | first order | spread | curvature "
        "| energy lost | budget |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, t, rows in tensors:
        value = t.detach().numpy()
        grad = t.grad.detach().numpy().astype(np.float64)  # type: ignore[union-attr]
        for e, m in FORMATS:
            fmt = sfp.Format(exp_bits=e, man_bits=m)
            policy.set(name, fmt)
            with torch.no_grad():
                true = float(task.loss(model, x, y)) - base
            policy.set(name, sfp.Format())
            d = (value - sfp.quantize(value, fmt)).astype(np.float64)
            gd = grad * d
            per = gd.reshape(samples, -1).sum(1) if rows else gd.reshape(-1)
            curvature = 0.5 * samples * float(per @ per)
            spread = float(np.sqrt((gd * gd).sum()))
            lost = float((d**2).sum() / (value.astype(np.float64) ** 2).sum())
            print(
                f"| {name} | e{e}m{m} | {true:+.5f} | {-float(gd.sum()):+.5f} | {spread:.5f} "
                f"| {curvature:.5f} "
                f"| {lost:.2e} | {flush_budget(m):.2e} |"
            )


if __name__ == "__main__":
    main()
