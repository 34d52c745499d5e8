"""PyTorch adapter: bit-identical quantization, gradients, hooks, a short training."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

import schrodinger_fp as sfp  # noqa: E402
from schrodinger_fp.controllers import StepState, plan, quantum_backward, quantum_forward  # noqa: E402
from schrodinger_fp.torch import QuantumFunction, attach, quantize_tensor  # noqa: E402

# small models: one intra-op thread is fastest, and keeps CI's 2 shared cores from oversubscribing
torch.set_num_threads(1)

TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
WIDTHS = {"float32": (8, 23), "float64": (11, 52), "float16": (5, 10), "bfloat16": (8, 7)}


def nasty(dtype: str, n: int = 3000, seed: int = 0) -> np.ndarray:
    """Values over the whole range: normals of every binade, subnormals, zeros, inf, NaN."""
    rng = np.random.default_rng(seed)
    e_bits, m_bits = WIDTHS[dtype]
    total = 1 + e_bits + m_bits
    udt = {16: np.uint16, 32: np.uint32, 64: np.uint64}[total]
    raw = rng.integers(0, 2**63, n, dtype=np.uint64)
    if total < 64:
        raw = raw >> np.uint64(64 - total)
    bits = raw.astype(udt)
    # a narrower dynamic range for part of the array, so that windows keep something
    fdt = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    x = bits.view(fdt).copy()
    x[: n // 2] = (rng.standard_normal(n // 2) * 2.0 ** rng.integers(-12, 4, n // 2)).astype(fdt)
    x[:8] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 3.0]).astype(fdt)
    return x


def to_torch(x: np.ndarray, dtype: str) -> torch.Tensor:
    if dtype == "bfloat16":
        return torch.from_numpy(x.view(np.uint16).astype(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(x.copy())


def bits_of(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy().view({2: np.uint16, 4: np.uint32, 8: np.uint64}[t.element_size()])


FORMATS = [
    dict(man_bits=0),
    dict(man_bits=3),
    dict(exp_bits=1, man_bits=2),
    dict(exp_bits=3, man_bits=1),
    dict(exp_bits=4),
    dict(exp_bits=5, man_bits=5, window_top=0),
    dict(exp_bits=2, man_bits=4, underflow="stochastic", seed=11),
]


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
@pytest.mark.parametrize("rounding", ["truncate", "nearest", "stochastic"])
@pytest.mark.parametrize("kw", FORMATS)
def test_quantize_tensor_is_bit_identical_to_core(dtype: str, rounding: str, kw: dict) -> None:
    e_bits, _m_bits = WIDTHS[dtype]
    kw = {k: min(v, e_bits - 1) if k == "exp_bits" else v for k, v in kw.items()}
    fmt = sfp.Format(rounding=rounding, **{"seed": 5, **kw})
    x = nasty(dtype)
    want = sfp.quantize(x, fmt)
    got = quantize_tensor(to_torch(x, dtype).reshape(30, 100), fmt).reshape(-1)
    assert got.dtype == TORCH_DTYPES[dtype]
    np.testing.assert_array_equal(bits_of(got), want.view(bits_of(got).dtype))


def test_quantize_tensor_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="man_bits=30"):
        quantize_tensor(torch.zeros(3), sfp.Format(man_bits=30))
    with pytest.raises(TypeError, match="int32"):
        quantize_tensor(torch.zeros(3, dtype=torch.int32), sfp.Format(man_bits=3))
    with pytest.raises(TypeError, match="'m3'"):
        quantize_tensor(torch.zeros(3), "m3")  # type: ignore[arg-type]


def test_quantum_function_matches_numpy_math() -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(500) * 2.0 ** rng.uniform(-12, 2, 500)).astype(np.float32)
    g = rng.standard_normal(500).astype(np.float32)
    p = plan(2.3, 3.6, man_range=(0, 23), exp_range=(1, 8), real_man=True, real_exp=True)
    y_np, ctx = quantum_forward(x, p)
    _, gman, gexp = quantum_backward(g, ctx)
    xt = torch.tensor(x, requires_grad=True)
    nm = torch.tensor(2.3, requires_grad=True)
    ne = torch.tensor(3.6, requires_grad=True)
    y, _, _ = QuantumFunction.apply(xt, nm, ne, p, sfp.Format())
    np.testing.assert_array_equal(y.detach().numpy(), y_np)
    (y * torch.tensor(g)).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), g)  # straight-through
    assert float(nm.grad) == pytest.approx(gman, rel=1e-6)
    assert float(ne.grad) == pytest.approx(gexp, rel=1e-6)


def small_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_adapter_applies_policy_formats_and_detaches() -> None:
    model = small_mlp()
    x = torch.randn(4, 64)
    ref = model(x).detach()
    w0 = model[0].weight.detach().clone()
    policy = sfp.Policy(
        rules=[("*.weight", sfp.Format(exp_bits=4, man_bits=2)), ("1.act", sfp.Format(man_bits=1))]
    )
    adapter = attach(model, policy, x)
    assert set(adapter.specs) == {
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
        "0.act",
        "1.act",
        "2.act",
    }
    np.testing.assert_array_equal(
        model[0].weight.detach().numpy(),
        sfp.quantize(w0.numpy(), sfp.Format(exp_bits=4, man_bits=2)),
    )
    adapter.capture = True
    out = model(x)
    relu_out = adapter.captured["1.act"]
    hidden = torch.relu(x @ model[0].weight.T + model[0].bias).detach()
    np.testing.assert_array_equal(relu_out.numpy(), hidden.numpy())  # captured before quantizing
    out.sum().backward()
    assert model[0].parametrizations.weight.original.grad is not None
    adapter.detach()
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), w0.numpy())
    np.testing.assert_allclose(model(x).detach().numpy(), ref.numpy(), rtol=0, atol=0)


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    xs = torch.tensor(d.data / 16.0, dtype=torch.float32)
    ys = torch.tensor(d.target)
    return xs[:1400], ys[:1400], xs[1400:], ys[1400:]


def train_digits(controllers: list, steps: int = 150) -> tuple[float, object, sfp.Policy]:
    xtr, ytr, xte, yte = digits()
    model = small_mlp()
    policy = sfp.Policy()
    adapter = attach(model, policy, xtr[:8], controllers=controllers)
    opt = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    bit_opt = torch.optim.Adam(adapter.bit_parameters(), lr=0.2) if adapter.bits else None
    gen = torch.Generator().manual_seed(0)
    for step in range(steps):
        idx = torch.randint(0, len(xtr), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx])
        total = loss + adapter.penalty()
        opt.zero_grad()
        if bit_opt:
            bit_opt.zero_grad()
        total.backward()
        opt.step()
        if bit_opt:
            bit_opt.step()
        adapter.step(step, loss)
    adapter.freeze()  # evaluate at the stored integer containers
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean())
    return acc, adapter, policy


def test_training_smoke_bitlengths_fall_and_accuracy_holds() -> None:
    base_acc, _, _ = train_digits([])
    qm = sfp.QuantumMantissa(gamma=0.01)
    qe = sfp.QuantumExponent(gamma=0.01)
    acc, _adapter, policy = train_digits([qm, qe])
    assert base_acc > 0.85
    assert acc >= base_acc - 0.03, (acc, base_acc)
    fmt = policy.format_for("0.weight")
    assert fmt.man_bits <= 8 and fmt.exp_bits <= 6, fmt
    assert all(qm.container(n) < 23 for n in qm.bits)
    assert sfp.Policy.from_json(policy.to_json()) == policy
    assert any(c.tensor == "0.weight" and c.step is not None for c in policy.history)


def test_bitwave_and_custom_controllers_drive_the_adapter() -> None:
    bw = sfp.BitWave(period=5, cooldown=0)
    acc, _, policy = train_digits([bw], steps=100)
    assert bw.man_bits < 23
    assert policy.format_for("2.weight").man_bits == bw.man_bits
    assert acc > 0.8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_quantize_equals_cpu() -> None:
    x = nasty("float32")
    fmt = sfp.Format(exp_bits=3, man_bits=2, rounding="stochastic", seed=9)
    got = quantize_tensor(torch.from_numpy(x).cuda(), fmt).cpu()
    np.testing.assert_array_equal(bits_of(got), sfp.quantize(x, fmt).view(np.uint32))


def test_step_state_reaches_every_controller() -> None:
    seen: list[StepState] = []

    class Spy:
        def attach(self, policy, tensors):
            self.names = list(tensors)

        def step(self, state):
            seen.append(state)

    model = small_mlp()
    adapter = attach(model, sfp.Policy(), torch.randn(2, 64), controllers=[Spy()])
    adapter.step(3, torch.tensor(0.5))
    assert seen[0].step == 3 and seen[0].loss == 0.5


@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_adapter_quantize_dispatch_is_bit_identical_to_core(dtype: str) -> None:
    """CPU tensors go through the core, bfloat16 through the tensor kernel: same bits."""
    from schrodinger_fp.torch import quantize

    x = nasty(dtype)
    for fmt in (sfp.Format(exp_bits=3, man_bits=1), sfp.Format(man_bits=2, rounding="stochastic")):
        got = quantize(to_torch(x, dtype).reshape(30, 100), fmt).reshape(-1)
        assert got.dtype == TORCH_DTYPES[dtype]
        np.testing.assert_array_equal(
            bits_of(got), bits_of(quantize_tensor(to_torch(x, dtype), fmt))
        )
        np.testing.assert_array_equal(bits_of(got), sfp.quantize(x, fmt).view(bits_of(got).dtype))
    t = to_torch(x, dtype)
    assert quantize(t, sfp.Format()) is t
