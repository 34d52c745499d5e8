"""The terms of a mantissa bit's price over a QM+QE training run, and what they scale with.

    python bench/experiments/price_terms.py [--task digits] [--steps 1000] [--confidence 1.0]

Trains one task of ``tasks.py`` with Quantum Mantissa/Exponent at the experiment's
setting (``footprint_training.SETTINGS``) inside the compressed stash, and prints, per
phase of training and per tensor, the means of the three terms of a mantissa bit's price
(``QuantumMantissa.step``): the bit gradient, ``confidence`` standard errors of its
average, and the penalty ``gamma * w_T * S`` in the step's loss scale ``S``; beside them
a penalty priced in the loss, ``0.001 * w_T * L`` (``LOSS_PRICED_GAMMA``), and the phase's
mean loss and loss scale. Writes ``price_terms_<task>.md`` to --out.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from footprint_training import SETTINGS, controllers
from tasks import TASKS

import schrodinger_fp as sfp
from schrodinger_fp.torch import attach, compressed_stash
from schrodinger_fp.training.controllers.base import StepState
from schrodinger_fp.training.controllers.quantum import _MEAN_ERROR

#: The setting of a penalty priced in the loss, ``gamma * w_T * L``, shown for comparison.
LOSS_PRICED_GAMMA = 0.001

#: (step, loss, loss scale, {tensor: (gradient, pessimistic term, penalty in S, in L)})
Row = tuple[int, float, float, dict[str, tuple[float, float, float, float]]]


class PriceTrace:
    """A controller that changes nothing: it reads the price terms of ``qm`` each step.

    Listed after ``qm``, it sees the footprint shares ``qm`` priced that step with.
    """

    def __init__(self, qm: sfp.QuantumMantissa) -> None:
        self.qm = qm
        self.rows: list[Row] = []

    def attach(self, policy: sfp.Policy, tensors: object) -> None:
        pass

    def step(self, state: StepState) -> None:
        qm, loss = self.qm, float(state.loss or 0.0)
        scale = qm.loss_scale(state)
        terms = {}
        for name in qm.bits:
            grad = state.bit_grads.get(name, {}).get("man")
            if grad is None:
                continue
            spread = state.bit_spreads.get(name, {}).get("man", 0.0)
            terms[name] = (
                grad,
                qm.confidence * _MEAN_ERROR * spread,
                qm.penalty_grad(name, scale),
                LOSS_PRICED_GAMMA * qm.weights[name] * loss,
            )
        self.rows.append((state.step, loss, scale, terms))


def trace(task_key: str, steps: int, seed: int) -> tuple[list[Row], dict[str, str]]:
    task = TASKS[task_key]()
    torch.manual_seed(seed)
    model = task.make_model()
    policy = sfp.Policy()
    ctrl = controllers("QM+QE")
    qm = ctrl[0]
    assert isinstance(qm, sfp.QuantumMantissa)
    observer = PriceTrace(qm)
    adapter = attach(
        model, policy, task.example, controllers=[*ctrl, observer], weights=task.weights, seed=seed
    )
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=task.lr)
    g = torch.Generator().manual_seed(1000 + seed)
    for step in range(steps):
        x, y = task.batch(g)
        with compressed_stash(adapter):
            loss = task.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        adapter.step(step, loss)
    final = {n: f"e{f.exp_bits}m{f.man_bits}" for n in qm.bits if (f := policy.format_for(n))}
    return observer.rows, final


def table(rows: list[Row], final: dict[str, str], phases: int = 4) -> str:
    cut = [round(i * len(rows) / phases) for i in range(phases + 1)]
    lines = [
        "| steps | mean loss L | mean loss scale S | tensor | bit gradient | "
        "confidence x standard error | penalty gamma w_T S | priced in the loss: 0.001 w_T L "
        "| final |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lo, hi in itertools.pairwise(cut):
        part = rows[lo:hi]
        loss = statistics.mean(r[1] for r in part)
        scale = statistics.mean(r[2] for r in part)
        head = f"| {part[0][0]}-{part[-1][0]} | {loss:.4f} | {scale:.4f} "
        for name in final:
            t = [r[3][name] for r in part if name in r[3]]
            if not t:
                continue
            mean = [statistics.mean(v[i] for v in t) for i in range(4)]
            lines.append(
                f"{head}| {name} | {mean[0]:+.1e} | {mean[1]:.1e} | {mean[2]:.1e} "
                f"| {mean[3]:.1e} | {final[name]} |"
            )
            head = "| | | "
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=list(TASKS), default="digits")
    ap.add_argument("--steps", type=int, default=None, help="default: the task's step count")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confidence", type=float, default=SETTINGS["QM+QE"]["confidence"])
    ap.add_argument("--out", type=Path, default=Path("bench/experiments/results"))
    args = ap.parse_args()
    SETTINGS["QM+QE"]["confidence"] = args.confidence
    torch.set_num_threads(1)
    steps = args.steps or TASKS[args.task]().steps
    rows, final = trace(args.task, steps, args.seed)
    text = f"{args.task}, QM+QE {SETTINGS['QM+QE']}, seed {args.seed}, {steps} steps:\n\n" + table(
        rows, final
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"price_terms_{args.task}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
