"""Peak memory and step time of a training step with the compressed stash, measured from outside.

    python bench/experiments/stash_memory.py [--width 512] [--batch 8192] [--layers 8]

An MLP whose forward pass saves a few hundred MB of activations. Each variant
runs in a fresh process; memory is the process's resident set (``VmRSS`` in
``/proc/self/status``) right after the forward pass minus right before it,
the largest of 3 steps (what the step holds for backward), independent of the stash's own byte
counts, which are printed next to it. Variants:

* ``plain``: the model alone;
* ``fake-quant``: the adapter quantizes weights and activations, autograd
  saves them as FP32 tensors;
* ``stash eXmY``: ``compressed_stash(adapter)`` with every tensor at eXmY.

Step time is the median of 3 steps (forward and backward), as a ratio to
``plain`` in the same run. The gradients of each stash variant are compared
bit for bit with fake quantization of every saved tensor at the same formats.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
from torch import nn

import schrodinger_fp as sfp
from schrodinger_fp.torch import CompressedStash, attach, compressed_stash, quantize

FORMATS = {"e4m3": sfp.Format(exp_bits=4, man_bits=3), "e4m1": sfp.Format(exp_bits=4, man_bits=1)}


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def model_and_batch(width: int, batch: int, layers: int) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(width, width), nn.GELU()]
    return nn.Sequential(*mods, nn.Linear(width, 10)), torch.randn(batch, width)


def measure(variant: str, width: int, batch: int, layers: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    model, x = model_and_batch(width, batch, layers)
    target = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(1))
    fmt = FORMATS.get(variant.split()[-1])
    adapter = None
    if variant != "plain":
        assert fmt is not None or variant == "fake-quant"
        policy = sfp.Policy(rules=[("*", fmt or FORMATS["e4m3"])])
        adapter = attach(model, policy, x[:4])

    def context() -> Any:
        if adapter is None or variant == "fake-quant":
            return contextlib.nullcontext()
        return compressed_stash(adapter)

    times, grads, held = [], None, None
    growth: list[int] = []
    for _ in range(3):
        model.zero_grad()
        t0 = time.perf_counter()
        before = rss()
        with context() as stash:
            loss = nn.functional.cross_entropy(model(x), target)
        growth.append(rss() - before)
        loss.backward()
        times.append(time.perf_counter() - t0)
        if isinstance(stash, CompressedStash):
            held = (stash.stats.fp32_bytes, stash.stats.held_bytes)
        grads = [p.grad.clone() for p in model.parameters()]
        del loss
    same = None
    if variant.startswith("stash") and adapter is not None and grads is not None:
        model.zero_grad()
        with CompressedStash(adapter.saved_format, quantizer=quantize):
            loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        same = all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters(), strict=True))
    return dict(
        variant=variant,
        rss_growth=max(growth),
        step_seconds=statistics.median(times),
        stash_fp32=held[0] if held else None,
        stash_held=held[1] if held else None,
        bit_identical=same,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.width, args.batch, args.layers)))
        return
    rows = []
    for variant in ["plain", "fake-quant", *(f"stash {k}" for k in FORMATS)]:
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--width",
            str(args.width),
            "--batch",
            str(args.batch),
            "--layers",
            str(args.layers),
        ]
        # a fixed mmap threshold: large blocks go back to the system when freed, so the
        # resident set follows what the step holds (glibc otherwise raises the threshold and
        # keeps freed blocks in its heap)
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    plain = rows[0]
    print(f"MLP {args.layers} x {args.width}, batch {args.batch}, one thread")
    print(
        "| variant | RSS growth in forward (MB) | vs plain | stash FP32 / held (MB) | stash ratio "
        "| step time vs plain | gradients = fake-quant |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        held = (
            f"{r['stash_fp32'] / 2**20:.0f} / {r['stash_held'] / 2**20:.0f}"
            if r["stash_held"]
            else "-"
        )
        ratio = f"{r['stash_fp32'] / r['stash_held']:.2f}x" if r["stash_held"] else "-"
        same = "-" if r["bit_identical"] is None else ("yes" if r["bit_identical"] else "NO")
        print(
            f"| {r['variant']} | {r['rss_growth'] / 2**20:.0f} "
            f"| {plain['rss_growth'] / max(r['rss_growth'], 1):.2f}x smaller | {held} | {ratio} "
            f"| {r['step_seconds'] / plain['step_seconds']:.2f}x | {same} |"
        )


if __name__ == "__main__":
    main()
