"""Speed of the core's flat encode, decode and quantize at the compressed stash's sizes and formats.

    python bench/stash_codec_speed.py [--threads 1] [--repeat 7]

The stash (``schrodinger_fp.torch.compressed_stash``) encodes every saved tensor
with ``exponent_coding="raw"`` on one thread and decodes it for backward; the
adapter quantizes weights and outputs the same way. On the digits CNN and the
char LM those tensors hold 2,048 to 524,288 float32 values, mostly 131,072, at
formats from e4m3 to e8m7. Each operation is timed against ``np.copyto`` of the
same array into a reused one, in the same run, and reported as a share of that
memcpy's speed (memcpy time / operation time): the issue's targets are flat
encode >= 40 %, decode >= 50 %, quantize >= 60 %. A 64-value array shows the
fixed cost of a call. Times are the best of ``--repeat`` rounds (wall clock,
one thread: the least disturbed measurement on a shared machine).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import schrodinger_fp as sfp

SIZES = (64, 2048, 16384, 131072, 524288, 1 << 22)
FORMATS = ((4, 3), (5, 7), (4, 7), (7, 6), (8, 7))
TARGETS = {"encode": 0.40, "decode": 0.50, "quantize": 0.60}


def best_seconds(fn: Callable[[], object], values: int, repeat: int) -> float:
    """Best time of one call over ``repeat`` rounds of enough calls to take a few milliseconds."""
    calls = max(3, min(2000, 2_000_000 // max(values, 1)))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def activations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Values like a stash's: normal, a quarter of them zero (after a ReLU), a few large."""
    x = rng.standard_normal(n).astype(np.float32)
    x[rng.random(n) < 0.25] = 0.0
    x[rng.integers(0, n, max(n // 1000, 1))] *= 64.0
    return x


def shares(x: np.ndarray, fmt: sfp.Format, threads: int, repeat: int) -> tuple[float, list[float]]:
    """memcpy time of ``x`` in seconds, and each operation's share of memcpy's speed."""
    copy = np.empty_like(x)
    frame = sfp.encode(x, fmt, threads=threads)
    assert np.array_equal(sfp.decode(frame), sfp.quantize(x, fmt))
    memcpy = best_seconds(lambda: np.copyto(copy, x), x.size, repeat)
    ops = [
        lambda: sfp.encode(x, fmt, threads=threads),
        lambda: sfp.decode(frame, threads=threads),
        lambda: sfp.quantize(x, fmt, threads=threads, out=copy),
    ]
    return memcpy, [memcpy / best_seconds(op, x.size, repeat) for op in ops]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"threads={args.threads}; share of np.copyto's speed (memcpy time / operation time)")
    print("| values | format | memcpy us | encode | decode | quantize |")
    print("|---|---|---|---|---|---|")
    for n in SIZES:
        x = activations(n, rng)
        for e, m in FORMATS[:1] if n == 64 else FORMATS:  # 64 values: the fixed cost of a call
            fmt = sfp.Format(exp_bits=e, man_bits=m, exponent_coding="raw")
            memcpy, got = shares(x, fmt, args.threads, args.repeat)
            cells = " | ".join(
                f"{s:.0%}{'' if s >= target else ' (below)'}"
                for s, target in zip(got, TARGETS.values(), strict=True)
            )
            print(f"| {n:,} | e{e}m{m} | {memcpy * 1e6:.1f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
