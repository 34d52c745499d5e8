"""GPU check of the PyTorch side: bit-identical to sfp.quantize, the stash, one short training.

    python bench/gpu_check.py            # needs a CUDA device; exits 1 on any mismatch

1. For every dtype, rounding mode (stochastic included: keyed by element
   index) and a set of formats, ``quantize_tensor`` on the GPU must equal the
   CPU core's ``sfp.quantize`` bit for bit.
2. The compressed stash on CUDA tensors (encoded on the host, copied back)
   gives gradients bit-identical to fake quantization on the GPU.
3. A short QM+QE training of a small MLP on scikit-learn's digits on the GPU,
   inside the stash; prints accuracy, learned bitlengths and the wall time.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

import schrodinger_fp as sfp
from schrodinger_fp.torch import (
    CompressedStash,
    attach,
    compressed_stash,
    quantize,
    quantize_tensor,
)

WIDTHS = {"float32": (8, 23), "float64": (11, 52), "float16": (5, 10), "bfloat16": (8, 7)}
TORCH = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def sample(dtype: str, n: int, rng: np.random.Generator) -> np.ndarray:
    import ml_dtypes

    e, m = WIDTHS[dtype]
    total = 1 + e + m
    raw = rng.integers(0, 2**63, n, dtype=np.uint64) >> np.uint64(64 - total)
    udt = {16: np.uint16, 32: np.uint32, 64: np.uint64}[total]
    fdt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = raw.astype(udt).view(fdt).copy()
    x[: n // 2] = (rng.standard_normal(n // 2) * 2.0 ** rng.integers(-12, 4, n // 2)).astype(fdt)
    return x


def bits(t: torch.Tensor) -> np.ndarray:
    t = t.cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy().view({2: np.uint16, 4: np.uint32, 8: np.uint64}[t.element_size()])


def parity(dev: torch.device) -> int:
    rng = np.random.default_rng(0)
    bad = 0
    checked = 0
    for dtype, (e, m) in WIDTHS.items():
        x = sample(dtype, 1_000_003, rng)
        xt = (
            torch.from_numpy(x.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
            if dtype == "bfloat16"
            else torch.from_numpy(x)
        ).to(dev)
        for rounding in ("truncate", "nearest", "stochastic"):
            for kw in (
                {"man_bits": 0},
                {"man_bits": min(3, m)},
                {"exp_bits": 1, "man_bits": 2},
                {"exp_bits": 4, "man_bits": 1},
                {"exp_bits": e - 1},
                {"exp_bits": 3, "man_bits": 2, "window_top": 0},
                {"exp_bits": 2, "man_bits": 4, "underflow": "stochastic"},
            ):
                fmt = sfp.Format(rounding=rounding, seed=12345, **kw)
                want = sfp.quantize(x, fmt)
                got = bits(quantize_tensor(xt, fmt))
                checked += 1
                if not np.array_equal(got, want.view(got.dtype)):
                    bad += 1
                    print(f"MISMATCH {dtype} {fmt}: {(got != want.view(got.dtype)).sum()} values")
    print(f"parity: {checked - bad}/{checked} (dtype, format) cases bit-identical on {dev}")
    return bad


def stash_parity(dev: torch.device) -> int:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
    ).to(dev)
    x, y = torch.randn(512, 64, device=dev), torch.randint(0, 10, (512,), device=dev)
    policy = sfp.Policy(rules=[("*", sfp.Format(exp_bits=4, man_bits=2))])
    adapter = attach(model, policy, x[:8])
    grads = []
    for ctx in (
        CompressedStash(adapter.saved_format, min_bytes=0, quantizer=quantize),
        compressed_stash(adapter, min_bytes=0),
    ):
        model.zero_grad()
        with ctx:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    same = all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
    print(f"stash on {dev}: gradients bit-identical to fake quantization: {same}")
    return 0 if same else 1


def training(dev: torch.device) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    xs = torch.tensor(d.data / 16.0, dtype=torch.float32, device=dev)
    ys = torch.tensor(d.target, device=dev)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    ).to(dev)
    policy = sfp.Policy()
    qm, qe = sfp.QuantumMantissa(init_bits=7, gamma=0.003), sfp.QuantumExponent(gamma=0.003)
    adapter = attach(model, policy, xs[:8], controllers=[qm, qe])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    t0 = time.perf_counter()
    for step in range(200):
        idx = torch.randint(0, 1400, (64,), device=dev)
        with compressed_stash(adapter) as stash:
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        adapter.step(step, loss)
    adapter.freeze()
    model.eval()
    with torch.no_grad():
        acc = float((model(xs[1400:]).argmax(1) == ys[1400:]).float().mean())
    print(
        f"training on {dev}: 200 steps in {time.perf_counter() - t0:.1f}s, accuracy {acc:.3f}, "
        f"stash {stash.stats.ratio:.2f}x smaller than FP32"
    )
    print("bitlengths (man, exp):", {n: (qm.container(n), qe.container(n)) for n in qm.bits})


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device")
        return 2
    dev = torch.device("cuda")
    print(torch.__version__, torch.cuda.get_device_name(0))
    bad = parity(dev)
    bad += stash_parity(dev)
    training(dev)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
