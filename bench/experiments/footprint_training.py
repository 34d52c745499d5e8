"""Training footprint from the real stash: FP32, BitWave, QM+QE on three tasks, several seeds.

    python bench/experiments/footprint_training.py [--tasks digits text minilm] [--seeds 3]

Every step runs the forward pass inside ``compressed_stash(adapter)``, so what
autograd saves (weights and activations, each distinct tensor once) is held
as encoded frames; the footprint is FP32 bytes / bytes held, summed over all
steps ("raw": flat containers, what the stash holds), and the same tensors
Gecko-coded ("Gecko") and coded by the codec's default ``"auto"`` (Huffman-coded
exponents and mantissa lanes where they pay: beyond the paper) on every
``record_every``-th step. Step times are CPU seconds of this process (one
thread), so other jobs on a shared machine disturb them less than wall time;
the recorder's encoding is left out. Methods use one
setting each on every task, no floors (``SETTINGS``). Writes
``results.json``, ``table.md`` and bitlength plots (seed 0) to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tasks import TASKS, Task, take

import schrodinger_fp as sfp
from schrodinger_fp.torch import attach, compressed_stash
from schrodinger_fp.training.footprint import FootprintRecorder
from schrodinger_fp.training.plot import plot_bitlengths

#: One setting per method, the same on every task. Both start from bfloat16's e8m7.
SETTINGS: dict[str, dict[str, Any]] = {
    "FP32": {},
    "BitWave": dict(period=10, k=0.25, init_man_bits=7),
    "QM+QE": dict(gamma=0.008, lr=0.1, confidence=1.0, init_man_bits=7),
}
PAPER = {"BitWave": (3.19, 4.56), "QM+QE": (4.74, 5.64)}


def controllers(method: str) -> list[Any]:
    cfg = SETTINGS[method]
    if method == "BitWave":
        return [sfp.BitWave(**cfg)]
    if method == "QM+QE":
        shared = dict(gamma=cfg["gamma"], lr=cfg["lr"], confidence=cfg["confidence"])
        return [
            sfp.QuantumMantissa(
                **shared, init_bits=cfg["init_man_bits"], min_bits=cfg.get("man_min_bits")
            ),
            sfp.QuantumExponent(**shared, min_bits=cfg.get("exp_min_bits")),
        ]
    return []


def override(settings: list[str]) -> None:
    """Apply ``METHOD.KEY=VALUE`` settings (a check of another setting; not the experiment's)."""
    for item in settings:
        target, _, value = item.partition("=")
        method, _, key = target.partition(".")
        if method not in SETTINGS or not key or not value:
            methods = ", ".join(SETTINGS)
            raise SystemExit(f"--set {item!r}: expected METHOD.KEY=VALUE, METHOD one of {methods}")
        try:
            SETTINGS[method][key] = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"--set {item!r}: {value!r} is not a number or JSON value") from None


def plain_step_seconds(task: Task, steps: int = 10) -> float:
    """Seconds per step of the same model with no adapter and no stash."""
    torch.manual_seed(0)
    model = task.make_model()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=task.lr)
    g = torch.Generator().manual_seed(0)
    batches = [task.batch(g) for _ in range(steps + 2)]
    for i, (x, y) in enumerate(batches):
        if i == 2:
            t0 = time.process_time()
        loss = task.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.process_time() - t0) / steps


def run(task: Task, method: str, seed: int, out: Path | None) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = task.make_model()
    policy = sfp.Policy()
    ctrl = controllers(method)
    adapter = attach(model, policy, task.example, controllers=ctrl, weights=task.weights, seed=seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=task.lr)
    g = torch.Generator().manual_seed(1000 + seed)
    recorder = FootprintRecorder(policy, codings=("raw", "gecko", "auto"))
    fp32 = held = 0
    sampled_fp32 = sampled_gecko = sampled_auto = 0
    recording = 0.0  # the footprint recorder's own encoding is not part of a step
    t0 = time.process_time()
    for step in range(task.steps):
        x, y = task.batch(g)
        due = step % task.record_every == 0 or step == task.steps - 1
        with compressed_stash(adapter, capture=due) as stash:
            loss = task.loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        adapter.step(
            step, loss, probe=lambda part, x=x, y=y: task.loss(model, take(x, part), y[part])
        )
        s = stash.stats
        fp32 += s.fp32_bytes
        held += s.held_bytes
        if due:
            r0 = time.process_time()
            sample = recorder.record(step, stash.captured, stash.formats)
            recording += time.process_time() - r0
            assert sample is not None and sample.encoded["raw"] == s.frame_bytes
            sampled_fp32 += s.fp32_bytes
            sampled_gecko += s.held_bytes - s.frame_bytes + sample.encoded["gecko"]
            sampled_auto += s.held_bytes - s.frame_bytes + sample.encoded["auto"]
    seconds = time.process_time() - t0 - recording
    adapter.freeze()
    model.eval()
    with torch.no_grad():
        score = task.evaluate(model)
    if out is not None and method != "FP32" and seed == 0:
        big = sorted(adapter.specs, key=lambda n: -adapter.specs[n].size)[:8]
        tag = f"{task.name.split()[0]}_{method.replace('+', '')}"
        plot_bitlengths(policy, big, out / f"{tag}_bitlengths.png", title=f"{task.name}: {method}")
    final = {n: f"e{f.exp_bits}m{f.man_bits}" for n in adapter.specs if (f := policy.format_for(n))}
    return dict(
        task=task.name,
        method=method,
        seed=seed,
        metric=task.metric,
        score=score,
        ratio=fp32 / held,
        ratio_gecko=sampled_fp32 / sampled_gecko,
        ratio_auto=sampled_fp32 / sampled_auto,
        last_ratio=s.ratio,
        step_seconds=seconds / task.steps,
        final=final,
        decisions=[(d.step, d.action, d.field) for c in ctrl for d in getattr(c, "decisions", [])],
    )


def _mean_sd(values: list[float], fmt: str) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.mean(values), fmt)} ± {format(sd, fmt)}"


def table(rows: list[dict[str, Any]], plain: dict[str, float]) -> str:
    """Markdown: mean ± standard deviation over the seeds of every (task, method)."""
    lines = [
        "| task | method | test score | vs FP32 | footprint raw | footprint Gecko "
        "| footprint auto | paper raw / Gecko | step time vs plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    for (task, method), rs in groups.items():
        base = groups.get((task, "FP32"))
        metric = rs[0]["metric"]
        scores = [r["score"] for r in rs]
        if base is None:
            delta = "-"
        else:  # paired by seed: the same initialisation and batches as the FP32 run
            ref = {r["seed"]: r["score"] for r in base}
            if metric == "accuracy":
                diffs = [100 * (r["score"] - ref[r["seed"]]) for r in rs]
                delta = _mean_sd(diffs, "+.2f") + " pt"
            else:
                diffs = [100 * (r["score"] - ref[r["seed"]]) / ref[r["seed"]] for r in rs]
                delta = _mean_sd(diffs, "+.2f") + " %"
        paper = "{:.2f}x / {:.2f}x".format(*PAPER[method]) if method in PAPER else "-"
        slow = [r["step_seconds"] / plain[task] for r in rs]
        lines.append(
            f"| {task} | {method} | {metric} {_mean_sd(scores, '.4f')} | {delta} "
            f"| {_mean_sd([r['ratio'] for r in rs], '.2f')}x "
            f"| {_mean_sd([r['ratio_gecko'] for r in rs], '.2f')}x "
            f"| {_mean_sd([r['ratio_auto'] for r in rs], '.2f')}x | {paper} "
            f"| {_mean_sd(slow, '.2f')}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    ap.add_argument("--methods", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="override every task's step count")
    ap.add_argument("--out", type=Path, default=Path("bench/experiments/results"))
    ap.add_argument("--table", action="store_true", help="only print the table of --out's results")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="change a setting, e.g. QM+QE.gamma=0.003 or QM+QE.man_min_bits=3",
    )
    args = ap.parse_args()
    override(args.set)
    if args.table:
        saved = json.loads((args.out / "results.json").read_text())
        print(table(saved["runs"], saved["plain_step_seconds"]))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    plain: dict[str, float] = {}
    for key in args.tasks:
        task = TASKS[key]()
        if args.steps:
            task.steps = args.steps
        plain[task.name] = plain_step_seconds(task)
        print(f"{task.name}: plain step {1000 * plain[task.name]:.1f} ms", flush=True)
        for method in args.methods:
            for seed in range(args.seeds):
                r = run(task, method, seed, args.out)
                print(
                    f"{task.name} {method} seed {seed}: {r['metric']} {r['score']:.4f} "
                    f"raw {r['ratio']:.2f}x gecko {r['ratio_gecko']:.2f}x "
                    f"auto {r['ratio_auto']:.2f}x "
                    f"{1000 * r['step_seconds']:.0f} ms/step",
                    flush=True,
                )
                rows.append(r)
        text = table(rows, plain)
        (args.out / "table.md").write_text(text + "\n")
        (args.out / "results.json").write_text(
            json.dumps({"plain_step_seconds": plain, "settings": SETTINGS, "runs": rows}, indent=1)
        )
    print()
    print(table(rows, plain))


if __name__ == "__main__":
    main()
