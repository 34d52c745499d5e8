"""Compressed stash: gradients bit-identical to fake quantization, bytes counted as held."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import schrodinger_fp as sfp  # noqa: E402
from schrodinger_fp.torch import CompressedStash, attach, compressed_stash, quantize  # noqa: E402

torch.set_num_threads(1)

W = sfp.Format(exp_bits=4, man_bits=2)
A = sfp.Format(exp_bits=5, man_bits=3)
S = sfp.Format(exp_bits=4, man_bits=1)


class Net(torch.nn.Module):
    """Conv, BatchNorm, functional ReLU, max-pool (integer indices), dropout (a mask), attention."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.proj = torch.nn.Linear(8, 16)
        self.attn = torch.nn.MultiheadAttention(16, 2, batch_first=True)
        self.drop = torch.nn.Dropout(0.2)
        self.head = torch.nn.Linear(16 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn(self.conv(x))))  # (B, 8, 4, 4)
        h = self.proj(h.flatten(2).transpose(1, 2))  # (B, 16 tokens, 16)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(self.drop(h).flatten(1))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)


def gradients(model: torch.nn.Module, run: object) -> list[torch.Tensor]:
    model.zero_grad()
    x, y = batch()
    torch.manual_seed(5)  # the same dropout mask in every run
    loss = run(lambda: torch.nn.functional.cross_entropy(model(x), y))  # type: ignore[operator]
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def attached(policy: sfp.Policy) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    model = Net()
    return model, attach(model, policy, batch()[0][:4])


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for u, v in zip(a, b, strict=True):
        assert torch.equal(u, v)


def test_gradients_are_bit_identical_to_the_fake_quant_adapter() -> None:
    model, adapter = attached(sfp.Policy(rules=[("*.weight", W), ("*.act", A)]))
    fake = gradients(model, lambda f: f())
    held: list[object] = []

    def stashed(f: object) -> torch.Tensor:
        with compressed_stash(adapter, min_bytes=0) as stash:  # type: ignore[arg-type]
            loss = f()  # type: ignore[operator]
        held.append(stash)
        return loss  # type: ignore[no-any-return]

    assert_same(gradients(model, stashed), fake)
    stats = held[0].stats  # type: ignore[attr-defined]
    assert stats.encoded > 5 and stats.held_bytes < stats.fp32_bytes
    for name, (fp32, held_bytes) in stats.by_name.items():  # what the adapter quantized shrinks
        if name.endswith(".act") or (name.endswith(".weight") and fp32 > 512):
            assert held_bytes < fp32 / 3, name
        elif name.endswith(".saved"):  # no format for the other saved tensors: lossless
            assert held_bytes == fp32, name


def test_saved_tensors_at_their_own_formats_equal_fake_quantization_of_them() -> None:
    """With formats for "<module>.saved" too, the frames hold exactly quantize(x, fmt)."""
    model, adapter = attached(sfp.Policy(rules=[("*.weight", W), ("*.act", A), ("*.saved", S)]))

    def fake(f: object) -> torch.Tensor:
        with CompressedStash(adapter.saved_format, min_bytes=0, quantizer=quantize):  # type: ignore[attr-defined]
            return f()  # type: ignore[operator,no-any-return]

    def stashed(f: object) -> torch.Tensor:
        with compressed_stash(adapter, min_bytes=0, exponent_coding="gecko"):  # type: ignore[arg-type]
            return f()  # type: ignore[operator,no-any-return]

    want = gradients(model, fake)
    assert_same(gradients(model, stashed), want)
    plain = gradients(model, lambda f: f())
    assert any(not torch.equal(u, v) for u, v in zip(want, plain, strict=True))


def test_bytes_held_are_the_frames_and_each_tensor_counts_once() -> None:
    x = torch.randn(64, 256, requires_grad=True)
    fmt = sfp.Format(exp_bits=3, man_bits=2)
    with compressed_stash(fmt) as stash:
        y = x * 2
        z = torch.sin(y) + torch.cos(y.t().t())  # sin and cos save y, by two tensor objects
    z.sum().backward()
    frame = sfp.encode(y.detach().numpy(), replace(fmt, exponent_coding="raw"), threads=1)
    s = stash.stats
    assert s.tensors == 1 and s.encoded == 1  # x * 2 saves nothing; y once
    assert s.fp32_bytes == 4 * y.numel() and s.held_bytes == len(frame)
    q = torch.from_numpy(sfp.quantize(y.detach().numpy(), fmt))
    want = 2 * (torch.cos(q) - torch.sin(q))
    torch.testing.assert_close(x.grad, want, rtol=0, atol=0)


def test_a_frame_saved_by_several_operations_is_decoded_once_per_backward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import schrodinger_fp.torch.stash as stash_module

    decoded: list[int] = []
    real = stash_module.decode
    monkeypatch.setattr(stash_module, "decode", lambda f: decoded.append(len(f)) or real(f))
    x = torch.randn(64, 256, requires_grad=True)
    fmt = sfp.Format(exp_bits=3, man_bits=2)
    with compressed_stash(fmt) as stash:
        y = x * 2
        # sin, cos (by another tensor object) and mul (twice) save y; mm a transposed view of it
        z = (torch.sin(y) + torch.cos(y.t().t()) + y * y).sum() + (y.t() @ y).sum()
    assert stash.stats.encoded == 1
    z.backward(retain_graph=True)
    assert len(decoded) == 1
    q = torch.from_numpy(sfp.quantize(y.detach().numpy(), fmt))
    want = 2 * (torch.cos(q) - torch.sin(q) + 2 * q + 2 * q.sum(1, keepdim=True))
    torch.testing.assert_close(x.grad, want, rtol=1e-5, atol=1e-3)
    first = x.grad.clone()
    x.grad = None
    z.backward()  # a graph kept for a second backward restores every save again
    assert len(decoded) > 1 and torch.equal(x.grad, first)


def test_small_integer_and_boolean_tensors_are_held_losslessly() -> None:
    x = torch.randn(16, 4, 32, 32, requires_grad=True)

    def step(stash: CompressedStash | None) -> torch.Tensor:
        x.grad = None
        torch.manual_seed(0)
        if stash is None:
            y = torch.nn.functional.max_pool2d(x, 2)
            z = torch.nn.functional.dropout(y, 0.5, training=True)
        else:
            with stash:
                y = torch.nn.functional.max_pool2d(x, 2)  # int64 indices < 1024
                z = torch.nn.functional.dropout(y, 0.5, training=True)
        (z * z).sum().backward()
        return x.grad.clone()

    stash = compressed_stash(None)  # floats lossless: only integers and masks shrink
    assert torch.equal(step(stash), step(None))
    by = stash.stats.by_name
    assert by["<int64>"][1] * 4 <= by["<int64>"][0]  # int16 instead of int64


def test_views_of_one_frame_and_kept_tensors_round_trip() -> None:
    w = torch.randn(48, 32, requires_grad=True)
    x = torch.randn(64, 32)
    fmt = sfp.Format(exp_bits=5, man_bits=4)
    with compressed_stash(fmt, min_bytes=0) as stash:
        v = w * 1.0
        out = (x @ v.t()).sum() + (v * v).sum()  # mm saves a transposed view of v
    out.backward()
    q = torch.from_numpy(sfp.quantize(v.detach().numpy(), fmt))
    qx = torch.from_numpy(sfp.quantize(x.numpy(), fmt))
    want = qx.sum(0).expand(48, 32) + 2 * q
    torch.testing.assert_close(w.grad, want, rtol=1e-6, atol=1e-6)
    assert stash.stats.encoded == 2  # v once (its transpose is a view of the same frame), x once


def test_other_devices_are_rejected_with_a_clear_error() -> None:
    x = torch.randn(64, 64, device="meta", requires_grad=True)
    with (
        pytest.raises(ValueError, match=r"CPU and CUDA.*meta"),
        compressed_stash(sfp.Format(man_bits=2)),
    ):
        torch.sin(x)


def test_bad_arguments_are_errors() -> None:
    with pytest.raises(TypeError, match="Adapter from attach"):
        compressed_stash(sfp.Policy())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_bytes=-1"):
        compressed_stash(None, min_bytes=-1)
    with pytest.raises(ValueError, match="exponent_coding"):
        compressed_stash(None, exponent_coding="zip")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_are_held_on_the_host_and_come_back_exact() -> None:
    x = torch.randn(256, 256, device="cuda", requires_grad=True)
    fmt = sfp.Format(exp_bits=4, man_bits=3)
    with compressed_stash(fmt) as stash:
        y = torch.sin(x)
    y.sum().backward()
    q = torch.from_numpy(sfp.quantize(x.detach().cpu().numpy(), fmt)).cuda()
    assert torch.equal(x.grad, torch.cos(q)) and stash.stats.encoded == 1


def test_a_whole_training_step_runs_in_the_stash_with_learned_bitlengths() -> None:
    torch.manual_seed(0)
    model = Net()
    qm, qe = sfp.QuantumMantissa(init_bits=7), sfp.QuantumExponent()
    adapter = attach(model, sfp.Policy(), batch()[0][:4], controllers=[qm, qe])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = batch()
    for step in range(3):
        with compressed_stash(adapter) as stash:
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        adapter.step(step, loss)
    assert stash.stats.encoded > 5 and stash.stats.ratio > 1.5
    assert max(qm.bits.values()) <= 7 and np.mean(list(qm.bits.values())) < 6.9  # capped at init
    assert np.isfinite(float(loss.detach()))


@pytest.mark.parametrize("rounding", ["nearest", "stochastic"])
def test_a_permuted_tensor_is_held_where_it_lies_and_comes_back_exact(rounding: str) -> None:
    w = torch.randn(3, 40, 24, requires_grad=True)
    fmt = sfp.Format(exp_bits=4, man_bits=2, rounding=rounding, seed=3)
    with compressed_stash(fmt, min_bytes=0) as stash:
        u = w * 1.0  # contiguous; a product by a number saves nothing
        v = u.permute(2, 0, 1)  # dense, not contiguous
        a = torch.sin(v)  # saves v first
        b = torch.cos(u)  # then u, another view of the same memory
    restored = a.grad_fn._saved_self  # type: ignore[union-attr]
    (a.sum() + b.sum()).backward()
    qv = torch.from_numpy(sfp.quantize(v.detach().contiguous().numpy(), fmt))
    qu = torch.from_numpy(sfp.quantize(u.detach().numpy(), fmt))
    assert torch.equal(restored, qv)
    assert torch.equal(w.grad, torch.cos(qv).permute(1, 2, 0) - torch.sin(qu))
    if rounding == "nearest":  # held once, in memory order, and restored with v's strides
        assert restored.stride() == v.stride() and stash.stats.encoded == 1
    else:  # random bits follow the element index: C order, each view its own frame
        assert restored.is_contiguous() and stash.stats.encoded == 2


def test_the_corner_above_is_held_in_its_format_and_counts_no_fp32_bytes() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.Linear(256, 10))
    x, y = torch.randn(128, 64), torch.randint(0, 10, (128,))
    qm = sfp.QuantumMantissa(init_bits=0.0, max_bits=3)  # every mantissa at its lowest, 0 bits
    adapter = attach(model, sfp.Policy(), x[:4], controllers=[qm])
    with compressed_stash(adapter) as stash:
        loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    upper = stash.stats.by_name["0.act.upper"]  # 128 x 256 values at the corner above, m1
    assert upper[0] == 0 and 0 < upper[1] < 128 * 256 * 4 / 2
    assert not any(n.endswith(".input") for n in stash.stats.by_name)


def test_fake_quantization_holds_each_tensor_in_the_layout_a_frame_restores() -> None:
    w = torch.randn(16, 8, requires_grad=True)
    x = torch.randn(4, 8, requires_grad=True)
    nearest = sfp.Format(exp_bits=4, man_bits=2)
    stochastic = replace(nearest, rounding="stochastic", seed=1)
    for fmt, strides in [(nearest, w.t().stride()), (stochastic, (16, 1))]:
        for run in (
            lambda f=fmt: CompressedStash(lambda t: ("w", f), min_bytes=0, quantizer=quantize),
            lambda f=fmt: compressed_stash(f, min_bytes=0),
        ):
            with run():
                y = torch.mm(x, w.t())  # saves the transpose of w
            held = y.grad_fn._saved_mat2  # type: ignore[union-attr]
            assert held.stride() == strides, fmt
            assert torch.equal(held, quantize(w.t().detach(), fmt)), fmt
