"""PyTorch tensor port and adapter: bit-identical quantization, bitlength gradients, hooks."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ml_dtypes = pytest.importorskip("ml_dtypes")

import schrodinger_fp as sfp  # noqa: E402
from schrodinger_fp.torch import (  # noqa: E402
    QuantumFunction,
    attach,
    compressed_stash,
    quantize_tensor,
)
from schrodinger_fp.torch.probe import gradient_evidence  # noqa: E402
from schrodinger_fp.training.controllers import (  # noqa: E402
    BitGradients,
    quantum_backward,
    quantum_forward,
)
from schrodinger_fp.training.controllers.flush import exponent_bits_needed  # noqa: E402
from schrodinger_fp.training.controllers.qmath import Plan  # noqa: E402

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


@pytest.mark.parametrize(("n", "corner"), [(500, (2, 4)), (500, (0, 3)), (70_000, (0, 1))])
def test_quantum_function_matches_numpy_math(n: int, corner: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(n) * 2.0 ** rng.uniform(-12, 2, n)).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    p = Plan(corner, man_lowest=0, exp_lowest=1, offset=7)
    y_np, ctx = quantum_forward(x, p)
    _, bits = quantum_backward(g, ctx)
    xt = torch.tensor(x, requires_grad=True)
    got: list[BitGradients] = []
    uppers: list[tuple[torch.Tensor, sfp.Format]] = []
    y = QuantumFunction.apply(xt, p, sfp.Format(), got.append, uppers)
    np.testing.assert_array_equal(y.detach().numpy(), y_np)
    (y * torch.tensor(g)).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), g)  # straight-through
    assert got == [bits] and bits.man != 0 and bits.exp != 0
    # at the lowest mantissa (and exponent) the input is kept only as the corner above, in it
    assert [u.numpy().tobytes() for u, _ in uppers] == [v.tobytes() for v in ctx.upper.values()]
    for u, fmt in uppers:
        assert np.array_equal(sfp.quantize(u.numpy(), fmt), u.numpy())
        assert (fmt.man_bits, fmt.exp_bits) in ((corner[0] + 1, corner[1]), (0, corner[1] + 1))
    assert len(uppers) == (corner[0] == 0) + (corner[1] == 1)


def small_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def test_adapter_keeps_the_users_names_and_applies_policy_formats() -> None:
    model = small_mlp()
    x = torch.randn(4, 64)
    ref = model(x).detach()
    names = [n for n, _ in model.named_parameters()]
    keys = list(model.state_dict())
    w0 = model[0].weight.detach().clone()
    fmt_w = sfp.Format(exp_bits=4, man_bits=2)
    policy = sfp.Policy(rules=[("*.weight", fmt_w), ("1.act", sfp.Format(man_bits=1))])
    adapter = attach(model, policy, x)
    assert set(adapter.specs) >= {"0.weight", "0.bias", "2.weight", "0.act", "1.act", "2.act"}
    assert [n for n, _ in model.named_parameters()] == names  # no parametrization names
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(model.state_dict()["0.weight"], w0, rtol=0, atol=0)
    seen: dict[str, torch.Tensor] = {}
    model[2].register_forward_pre_hook(lambda m, inp: seen.update(w=m.weight, h=inp[0]))
    out = model(x)
    np.testing.assert_array_equal(
        seen["w"].detach().numpy(), sfp.quantize(model[2].weight.detach().numpy(), fmt_w)
    )
    hidden = torch.relu(x @ adapter.model[0].weight.T)  # master weights outside a forward pass
    assert not torch.equal(hidden, seen["h"])
    out.sum().backward()
    assert model[0].weight.grad is not None  # the optimizer's parameter gets the gradient
    adapter.detach()
    torch.testing.assert_close(model(x).detach(), ref, rtol=0, atol=0)


def test_attach_leaves_batchnorm_statistics_and_random_state_unchanged() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.BatchNorm1d(16),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(16, 2),
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    example = torch.randn(32, 8) * 5 + 3
    rng = torch.get_rng_state()
    attach(model, sfp.Policy(), example)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_policy_rule_that_matches_no_tensor_warns() -> None:
    policy = sfp.Policy(rules=[("0.parametrizations.weight.original", sfp.Format(man_bits=2))])
    with pytest.warns(UserWarning, match="matches no tensor.*named_parameters"):
        attach(small_mlp(), policy, torch.randn(2, 64))


def test_bitlengths_need_no_optimizer_and_a_missing_backward_warns() -> None:
    model = small_mlp()
    qm = sfp.QuantumMantissa(init_bits=7, lr=0.5, gamma=1.0)
    adapter = attach(model, sfp.Policy(), torch.randn(2, 64), controllers=[qm])
    start = dict(qm.bits)
    loss = model(torch.randn(16, 64)).square().mean()
    loss.backward()
    adapter.step(0, loss)
    assert all(qm.bits[n] != start[n] for n in start)  # moved with no user optimizer
    with pytest.warns(RuntimeWarning, match="no bitlength gradient"):
        adapter.step(1, loss)


def test_bitwave_without_a_probe_is_an_error_on_its_due_step() -> None:
    model = small_mlp()
    adapter = attach(model, sfp.Policy(), torch.randn(2, 64), controllers=[sfp.BitWave(period=2)])
    adapter.step(0)
    with pytest.raises(ValueError, match="probe"):
        adapter.step(1)


def test_footprint_shares_come_from_the_training_batch() -> None:
    model = small_mlp()
    qm = sfp.QuantumMantissa()
    adapter = attach(model, sfp.Policy(), torch.randn(1, 64), controllers=[qm])
    small = qm.weights["1.act"]
    model(torch.randn(64, 64)).sum().backward()
    adapter.step(0)
    assert qm.weights["1.act"] > 10 * small  # 64 rows, not the example's one


def test_stochastic_formats_get_a_fresh_seed_each_step_and_bitwave_keeps_them() -> None:
    model = small_mlp()
    policy = sfp.Policy(rules=[("*", sfp.Format(man_bits=3, rounding="stochastic", seed=1))])
    adapter = attach(
        model, policy, torch.randn(2, 64), controllers=[sfp.BitWave(period=50, init_man_bits=3)]
    )
    assert (
        policy.format_for("0.weight").rounding == "stochastic"
    )  # BitWave kept the user's rounding
    seen: list[torch.Tensor] = []
    model[2].register_forward_pre_hook(lambda m, inp: seen.append(m.weight.detach().clone()))
    model(torch.randn(2, 64))
    model(torch.randn(2, 64))
    assert torch.equal(seen[0], seen[1])  # within a step: one seed
    adapter.step(0)
    model(torch.randn(2, 64))
    assert not torch.equal(seen[1], seen[2])  # a new step: new random bits


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_quantize_equals_cpu() -> None:
    x = nasty("float32")
    fmt = sfp.Format(exp_bits=3, man_bits=2, rounding="stochastic", seed=9)
    got = quantize_tensor(torch.from_numpy(x).cuda(), fmt).cpu()
    np.testing.assert_array_equal(bits_of(got), sfp.quantize(x, fmt).view(np.uint32))


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


def test_saved_tensors_follow_the_learned_format_of_their_module_output() -> None:
    model = small_mlp()
    qm = sfp.QuantumMantissa(init_bits=5)
    policy = sfp.Policy()
    adapter = attach(model, policy, torch.randn(4, 64), controllers=[qm])
    assert adapter.follows["1.saved"] == "1.act"  # what ReLU saves belongs to its output
    assert "1.saved" not in qm.bits  # nothing to learn it from: it follows
    model(torch.randn(8, 64)).sum().backward()
    adapter.step(0)
    assert policy.format_for("1.saved") == policy.format_for("1.act")


def test_what_the_loss_saves_follows_the_learned_format_of_the_model_output() -> None:
    model = small_mlp()
    qm = sfp.QuantumMantissa(init_bits=5)
    policy = sfp.Policy()
    adapter = attach(model, policy, torch.randn(4, 64), controllers=[qm])
    last = f"{len(model) - 1}.act"
    assert adapter.follows["<outside>.saved"] == last
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    with compressed_stash(adapter, capture=True) as stash:
        loss = torch.nn.functional.cross_entropy(model(x), y)  # log_softmax saves its output
    loss.backward()
    fp32, held = stash.stats.by_name["<outside>.saved"]
    assert fp32 >= 4 * 256 * 10 and held < fp32 / 2  # no longer held in FP32
    (fmt,) = [f for k, f in stash.formats.items() if k.startswith("<outside>.saved")]
    assert fmt is not None and fmt.man_bits == policy.format_for(last).man_bits == 5
    # without learned formats nothing outside the model gets one
    plain = attach(small_mlp(), sfp.Policy(), torch.randn(4, 64))
    with compressed_stash(plain) as stash:
        torch.nn.functional.cross_entropy(plain.model(x), y)
    assert stash.stats.by_name["<outside>.saved"][0] == stash.stats.by_name["<outside>.saved"][1]


class Sharpen(torch.nn.Module):
    """Softmax saves its output: probabilities spanning more binades than the module's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(8 * x, dim=-1) @ x.transpose(0, 1)


def test_a_followed_saved_tensor_keeps_the_exponent_bits_its_own_values_need() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), Sharpen())
    qm, qe = sfp.QuantumMantissa(init_bits=7), sfp.QuantumExponent(init_bits=3)
    policy = sfp.Policy()
    adapter = attach(model, policy, torch.randn(64, 64), controllers=[qm, qe])
    assert adapter.follows["1.saved"] == "1.act"
    assert policy.format_for("1.saved") == sfp.Format(exp_bits=3, man_bits=7)
    with compressed_stash(adapter, capture=True) as stash:
        model(torch.randn(64, 64)).sum().backward()
    probs = [k for k in stash.formats if k.startswith("1.saved")]
    assert probs
    for k in probs:
        fmt = stash.formats[k]
        assert fmt is not None and fmt.man_bits == 7
        need = exponent_bits_needed(stash.captured[k], 7, 3, 8)
        assert fmt.exp_bits == need > 3


def test_the_adapter_knows_what_it_quantized_so_bitwave_passes_skip_it() -> None:
    model = small_mlp()
    fmt = sfp.Format(exp_bits=4, man_bits=1)
    policy = sfp.Policy()
    policy.set_default(fmt)
    adapter = attach(model, policy, torch.randn(4, 64))
    outputs: list[torch.Tensor] = []
    model[0].register_forward_hook(lambda m, i, o: outputs.append(o))
    model(torch.randn(8, 64))
    (act,) = outputs  # the hook the adapter registered first already quantized it
    assert adapter.produced_at(act, fmt)
    assert not adapter.produced_at(act, sfp.Format(exp_bits=4, man_bits=2))
    assert not adapter.produced_at(act.clone(), fmt)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))

    def probe(part: slice) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x[part]), y[part])

    # the current formats, and a candidate that names the same formats: the same passes
    same = {"man": dict.fromkeys(adapter.specs, fmt)}
    ev = gradient_evidence(adapter, same, probe)
    assert ev.current > 0 and ev.current == ev.narrower["man"]


def test_every_probe_pass_draws_what_torch_manual_seed_of_the_step_draws() -> None:
    model = small_mlp()
    policy = sfp.Policy()
    policy.set_default(sfp.Format(exp_bits=4, man_bits=2))
    adapter = attach(model, policy, torch.randn(4, 64))
    adapter.step(6)
    x, y = torch.randn(16, 64), torch.randint(0, 10, (16,))
    draws: list[torch.Tensor] = []

    def probe(part: slice) -> torch.Tensor:
        draws.append(torch.rand(5))
        noise = torch.nn.functional.dropout(x[part], 0.5, training=True)
        return torch.nn.functional.cross_entropy(model(noise), y[part])

    torch.manual_seed(123)
    before = torch.get_rng_state()
    gradient_evidence(adapter, {"man": dict.fromkeys(adapter.specs, policy.default)}, probe)
    assert torch.equal(torch.get_rng_state(), before)  # the training's random state is left
    torch.manual_seed(7)
    expected = torch.rand(5)
    assert len(draws) == 4 and all(torch.equal(d, expected) for d in draws)
