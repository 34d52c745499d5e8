"""Step time of training with the controllers, as a ratio to a plain step measured in the same run.

    python bench/experiments/controller_overhead.py [--tasks digits text] [--rounds 6]
    python bench/experiments/controller_overhead.py --tasks text --profile QM+QE

Variants of one task, each its own model, optimizer and batches, run in
interleaved rounds of ``period`` steps (BitWave measures once a round, so each
round carries its share of the measurement):

* plain: the model alone, no adapter, no stash;
* stash: the adapter at fixed formats (e4m3 for every tensor) inside ``compressed_stash``;
* BitWave / QM+QE: the experiment's settings (``footprint_training.SETTINGS``) inside the stash;
* QM+QE auto: the same, the stash's frames coded by the codec's ``"auto"`` (entropy-coded
  exponents, sign and top mantissa bits) instead of flat containers.

Times are CPU seconds of this process (one thread: other jobs on a shared
machine change them less than wall time); the ratio is the median over rounds
of a variant's round time over plain's in the same round.
``--profile`` runs one variant under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from footprint_training import controllers
from tasks import TASKS, Task, take

import schrodinger_fp as sfp
from schrodinger_fp.torch import attach, compressed_stash

VARIANTS = ("plain", "stash", "BitWave", "QM+QE", "QM+QE auto")


def make_step(task: Task, variant: str, seed: int = 0) -> Callable[[], None]:
    """One training step of ``variant`` on the next batch, as a closure."""
    torch.manual_seed(seed)
    model = task.make_model()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=task.lr)
    g = torch.Generator().manual_seed(1000 + seed)
    if variant == "plain":

        def plain() -> None:
            x, y = task.batch(g)
            loss = task.loss(model, x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return plain
    policy = sfp.Policy()
    if variant == "stash":
        policy.set_default(sfp.Format(exp_bits=4, man_bits=3))
    method, _, coding = variant.partition(" ")
    ctrl = [] if method == "stash" else controllers(method)
    adapter = attach(model, policy, task.example, controllers=ctrl, weights=task.weights)
    counter = [0]

    def adapted() -> None:
        x, y = task.batch(g)
        with compressed_stash(adapter, exponent_coding=coding or "raw"):
            loss = task.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        adapter.step(counter[0], loss, probe=lambda part: task.loss(model, take(x, part), y[part]))
        counter[0] += 1

    return adapted


def measure(task: Task, variants: list[str], rounds: int, period: int) -> dict[str, list[float]]:
    """Per variant, each round's time over plain's in the same round."""
    steps = {v: make_step(task, v) for v in ["plain", *variants]}
    for step in steps.values():  # warm-up: allocations, first formats, one BitWave measurement
        for _ in range(period):
            step()
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        times = {}
        for v, step in steps.items():
            t0 = time.process_time()
            for _ in range(period):
                step()
            times[v] = time.process_time() - t0
        for v in variants:
            ratios[v].append(times[v] / times["plain"])
    return ratios


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=["digits", "text"])
    ap.add_argument("--variants", nargs="+", choices=VARIANTS[1:], default=list(VARIANTS[1:]))
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--period", type=int, default=10, help="steps per round (BitWave's period)")
    ap.add_argument("--profile", choices=VARIANTS, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.profile:
        for key in args.tasks:
            task = TASKS[key]()
            step = make_step(task, args.profile)
            for _ in range(args.period):
                step()
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(args.rounds * args.period):
                step()
            prof.disable()
            print(f"## {task.name}: {args.profile}")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        return
    print("| task | variant | step time vs plain (median of rounds) | min - max |")
    print("|---|---|---|---|")
    for key in args.tasks:
        task = TASKS[key]()
        ratios = measure(task, args.variants, args.rounds, args.period)
        for v, rs in ratios.items():
            print(
                f"| {task.name} | {v} | {statistics.median(rs):.2f}x | "
                f"{min(rs):.2f} - {max(rs):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
