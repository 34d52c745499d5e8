"""The paper's footprint on real training, CPU only, one command.

    python bench/experiments/footprint_training.py [--task digits|text|all] [--out DIR]

Tasks: a small CNN on scikit-learn's digits (real 8x8 scans, shipped with the
package) and a small character-level transformer LM on real text found on
every machine (the Python standard library's own source files). Methods: FP32
baseline, BitWave, QM+QE, with the settings in ``SETTINGS``. The footprint of
the weights and the stashed activations (module outputs) is measured by
encoding them with the codec at the policy's formats every ``steps / 50``
steps, step 0 and the last step included, once per exponent coding: flat
("raw"), Gecko, and the rANS entropy coder. "run" averages over every
recorded step (FP32 bytes summed / encoded bytes summed); "final" is the last
step. Prints the final bitlengths per tensor and a markdown table; writes
plots of bitlengths over steps (PNG), the final policies and ``results.json``
to --out.
"""

from __future__ import annotations

import argparse
import json
import sysconfig
import time
from pathlib import Path

import torch
from torch import nn

import schrodinger_fp as sfp
from schrodinger_fp.footprint import FootprintRecorder, available_codings
from schrodinger_fp.plot import plot_bitlengths
from schrodinger_fp.torch import attach


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc(x.flatten(1))


class TinyLM(nn.Module):
    def __init__(self, vocab: int, d: int = 64, ctx: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        self.mask = nn.Transformer.generate_square_subsequent_mask(ctx)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(t))
        return self.head(self.body(h, mask=self.mask[:t, :t], is_causal=True))


def digits_task() -> dict:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=g)
    tr, te = perm[:1400], perm[1400:]
    return dict(
        name="digits CNN",
        model=CNN,
        train=(x[tr], y[tr]),
        test=(x[te], y[te]),
        steps=1000,  # 46 epochs: with 600 the run mean still held much of the first transient
        record_every=20,
        batch=64,
        lr=3e-3,
        metric="accuracy",
        # the CNN loses nothing at 1 mantissa bit (the char LM needs 3: see SETTINGS)
        settings={"BitWave": dict(min_man_bits=1)},
    )


def text_task() -> dict:
    lib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(lib.glob("[a-m]*.py"))
    text = "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)[:600_000]
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    split = int(0.9 * len(ids))
    return dict(
        name=f"char transformer LM ({len(files)} stdlib files)",
        model=lambda: TinyLM(len(chars)),
        train=ids[:split],
        test=ids[split:],
        steps=600,
        record_every=12,
        batch=32,
        lr=3e-3,
        metric="loss",
    )


def lm_batch(ids: torch.Tensor, batch: int, g: torch.Generator) -> tuple:
    start = torch.randint(0, len(ids) - 65, (batch,), generator=g)
    x = torch.stack([ids[s : s + 64] for s in start])
    y = torch.stack([ids[s + 1 : s + 65] for s in start])
    return x, y


#: Controller settings of each method (documented in the README's issue-7 section).
SETTINGS: dict[str, dict] = {
    "FP32": {},
    # one decision per 10 steps, no cool-down, 2 bits off per "remove", 2 bits back when the
    # period's loss is 3 % worse than the moving average; starting at bfloat16's e8m7 (as QM+QE
    # does) with a mantissa floor of 3 bits: on the char LM, floors of 1 / 2 bits cost +8.0 % /
    # +4.1 % loss, 3 bits +0.3 % (the digits task sets its own floor). The trial test
    # (``regret``) stays off: on the char LM it undid the first removal (the early loss trend is
    # steep) and missed the cost of m1/m2, which shows as slower learning below the noise of
    # 10-step means.
    "BitWave": dict(
        period=10,
        cooldown=0,
        step_bits=2,
        add_bits=2,
        improve=0.0,
        worsen=0.03,
        init_man_bits=7,
        min_man_bits=3,
        min_exp_bits=4,
        regret=None,
    ),
    # penalty weight gamma 0.01 (0.005 left the char LM at 3.9x, 0.02 cost it +1.3 % loss;
    # on digits 0.006-0.01 give the same footprint), Adam on the bitlengths at lr 0.5 decayed
    # linearly to 0 (bitlengths settle early, then stay; lr 1.0 did worse on digits), mantissa
    # starting at bfloat16's 7 bits, floors 1 mantissa and 4 exponent bits (3-bit exponents
    # flushed too much of the digits' ReLU outputs, -1.8 points; the char LM's loss, +2.1 %)
    "QM+QE": dict(
        gamma=0.01,
        bit_lr=0.5,
        bit_lr_decay=True,
        init_man=7,
        init_exp=None,
        min_man=1,
        min_exp=4,
        mode="interpolate",
    ),
}


def make_controllers(method: str, cfg: dict) -> list:
    if method == "BitWave":
        return [sfp.BitWave(**cfg)]
    if method == "QM+QE":
        common = dict(gamma=cfg["gamma"], mode=cfg["mode"])
        qm = sfp.QuantumMantissa(init_bits=cfg["init_man"], min_bits=cfg["min_man"], **common)
        qe = sfp.QuantumExponent(init_bits=cfg["init_exp"], min_bits=cfg["min_exp"], **common)
        return [qm, qe]
    return []


def run(
    task: dict, method: str, codings: list[str], out: Path | None, cfg: dict | None = None
) -> dict:
    torch.manual_seed(0)
    model = task["model"]()
    g = torch.Generator().manual_seed(1)
    is_lm = task["metric"] == "loss"
    example = lm_batch(task["train"], 4, g)[0] if is_lm else task["train"][0][:8]
    cfg = dict(SETTINGS[method], **task.get("settings", {}).get(method, {}), **(cfg or {}))
    controllers = make_controllers(method, cfg)
    policy = sfp.Policy()
    adapter = attach(model, policy, example, controllers=controllers)
    opt = torch.optim.Adam(model.parameters(), lr=task["lr"])
    bit_opt = torch.optim.Adam(adapter.bit_parameters(), lr=cfg["bit_lr"]) if adapter.bits else None
    sched = None
    if bit_opt and cfg["bit_lr_decay"]:  # linear decay to 0: bitlengths settle, then stay
        sched = torch.optim.lr_scheduler.LambdaLR(bit_opt, lambda s: 1 - s / task["steps"])
    recorder = FootprintRecorder(policy, codings=tuple(codings), every=task["record_every"])
    lossf = nn.functional.cross_entropy
    t0 = time.perf_counter()
    for step in range(task["steps"] + 1):
        if is_lm:
            xb, yb = lm_batch(task["train"], task["batch"], g)
        else:
            idx = torch.randint(0, len(task["train"][0]), (task["batch"],), generator=g)
            xb, yb = task["train"][0][idx], task["train"][1][idx]
        adapter.capture = recorder.due(step)
        logits = model(xb)
        loss = lossf(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))
        if adapter.capture:  # footprint of this step's weights and stashed activations
            recorder.record(step, adapter.tensors())
            adapter.captured.clear()
        if step == task["steps"]:
            break
        opt.zero_grad()
        if bit_opt:
            bit_opt.zero_grad()
        (loss + adapter.penalty()).backward()
        opt.step()
        if bit_opt:
            bit_opt.step()
        if sched:
            sched.step()
        adapter.step(step, loss)
    adapter.freeze()
    with torch.no_grad():
        if is_lm:
            ge = torch.Generator().manual_seed(2)
            losses = [
                lossf(model(x).transpose(1, 2), y)
                for x, y in (lm_batch(task["test"], 64, ge) for _ in range(8))
            ]
            score = float(torch.stack(losses).mean())
        else:
            score = float((model(task["test"][0]).argmax(1) == task["test"][1]).float().mean())
    tag = f"{task['name'].split()[0]}_{method.replace('+', '')}"
    if out is not None and method != "FP32":
        names = sorted(adapter.specs, key=lambda n: -adapter.specs[n].size)[:8]
        plot_bitlengths(
            policy, names, out / f"{tag}_bitlengths.png", title=f"{task['name']}: {method}"
        )
    final = {n: policy.format_for(n) for n in adapter.specs}
    return dict(
        task=task["name"],
        method=method,
        metric=task["metric"],
        score=score,
        ratios={c: recorder.ratio(c) for c in codings},
        final_ratios={c: recorder.ratio(c, last=1) for c in codings},
        bits=recorder.container_bits(),
        final_bits=recorder.container_bits(last=1),
        headers={c: recorder.header_share(c) for c in codings},
        final={n: (f.exp_bits, f.man_bits) if f else None for n, f in final.items()},
        policy=policy,
        seconds=time.perf_counter() - t0,
        actions=_actions(controllers),
    )


def _actions(controllers: list) -> dict[str, int]:
    """How often BitWave took each action (empty for the other methods)."""
    counts: dict[str, int] = {}
    for c in controllers:
        for d in getattr(c, "decisions", []):
            counts[d.action] = counts.get(d.action, 0) + 1
    return counts


PAPER = {"BitWave": "3.19x / 4.56x", "QM+QE": "4.74x / 5.64x"}


def table(rows: list[dict], codings: list[str]) -> str:
    """Markdown table: score (and its change against FP32), footprint per exponent coding."""
    cols = " | ".join(f"x {c} (run / final)" for c in codings)
    head = (
        f"| task | method | metric (vs FP32) | {cols} | container bits (run / final) "
        "| paper x (raw / Gecko) |\n|---|---|---|" + "---|" * len(codings) + "---|---|"
    )
    lines = [head]
    base: dict[str, float] = {}
    for r in rows:
        if r["method"] == "FP32":
            base[r["task"]] = r["score"]
        b = base.get(r["task"], r["score"])
        if r["metric"] == "accuracy":
            delta = f"{100 * (r['score'] - b):+.2f} pt"
        else:
            delta = f"{100 * (r['score'] - b) / b:+.2f} %"
        ratios = " | ".join(f"{r['ratios'][c]:.2f} / {r['final_ratios'][c]:.2f}" for c in codings)
        lines.append(
            f"| {r['task']} | {r['method']} | {r['metric']} {r['score']:.4f} ({delta}) | "
            f"{ratios} | {r['bits']:.2f} / {r['final_bits']:.2f} | {PAPER.get(r['method'], '-')} |"
        )
    return "\n".join(lines)


def final_bits(r: dict) -> str:
    """Final (exponent, mantissa) bits per tensor, tensors with equal bits grouped."""
    groups: dict[tuple[int, int], list[str]] = {}
    for name, eb in sorted(r["final"].items()):
        if eb is not None:
            groups.setdefault(eb, []).append(name)
    parts = [f"e{e}m{m}: {', '.join(ns)}" for (e, m), ns in sorted(groups.items())]
    return f"{r['task']} {r['method']} final bits -- " + "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["digits", "text", "all"], default="all")
    ap.add_argument("--out", type=Path, default=Path("bench/experiments/results"))
    ap.add_argument("--steps", type=int, default=None, help="override the step count")
    ap.add_argument(
        "--methods", nargs="+", choices=list(SETTINGS), default=list(SETTINGS), help="methods"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    codings = available_codings(("raw", "gecko", "entropy"))
    print(f"exponent codings measured: {codings}")
    tasks = {"digits": [digits_task], "text": [text_task], "all": [digits_task, text_task]}
    rows = []
    for make in tasks[args.task]:
        task = make()
        if args.steps:
            task["steps"] = args.steps
            task["record_every"] = max(args.steps // 50, 1)
        for method in args.methods:
            r = run(task, method, codings, args.out)
            r["policy"].save(args.out / f"{r['task'].split()[0]}_{method.replace('+', '')}.json")
            print(
                f"{r['task']} {r['method']}: {r['metric']}={r['score']:.4f} "
                f"ratios={ {c: round(v, 2) for c, v in r['ratios'].items()} } "
                f"frame headers {100 * max(r['headers'].values()):.2f} % of bytes "
                f"{r['actions'] or ''} ({r['seconds']:.0f}s)",
                flush=True,
            )
            rows.append(r)
    for r in rows:
        if r["method"] != "FP32":
            print(final_bits(r))
    keep = [{k: v for k, v in r.items() if k != "policy"} for r in rows]
    (args.out / "results.json").write_text(json.dumps(keep, indent=1, default=str))
    print()
    print(table(rows, codings))


if __name__ == "__main__":
    main()
