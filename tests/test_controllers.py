"""BitWave decisions from gradient evidence, Quantum Mantissa/Exponent gradients, numpy training."""

from __future__ import annotations

import math

import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.training.controllers import (
    Controller,
    GradientEvidence,
    StepState,
    TensorSpec,
    plan,
    quantum_backward,
    quantum_forward,
)
from schrodinger_fp.training.controllers.flush import exponent_bits_needed, flush_budget
from schrodinger_fp.training.controllers.qmath import Plan, sensitivity

SPECS = {"a": TensorSpec(100), "b": TensorSpec(300)}


def bitwave(**kw: object) -> tuple[sfp.BitWave, sfp.Policy]:
    bw = sfp.BitWave(period=1, **kw)  # type: ignore[arg-type]
    p = sfp.Policy()
    bw.attach(p, SPECS)
    return bw, p


def evidence(current: float, man: float | None, exp: float | None) -> GradientEvidence:
    narrower = {f: v for f, v in (("man", man), ("exp", exp)) if v is not None}
    return GradientEvidence(noise=1.0, current=current, narrower=narrower)


def test_bitwave_removes_the_cheaper_field_while_its_error_is_under_k_noise() -> None:
    bw, p = bitwave(k=0.5, init_man_bits=3, init_exp_bits=5)
    bw.step(StepState(0, evidence=evidence(0.1, man=0.2, exp=0.4)))
    bw.step(StepState(1, evidence=evidence(0.1, man=0.6, exp=0.3)))
    bw.step(StepState(2, evidence=evidence(0.1, man=0.3, exp=0.3)))  # a tie: mantissa first
    bw.step(StepState(3, evidence=evidence(0.1, man=0.51, exp=0.9)))  # both cost too much
    assert [(d.action, d.field) for d in bw.decisions] == [
        ("remove", "man"),
        ("remove", "exp"),
        ("remove", "man"),
        ("hold", None),
    ]
    assert (bw.man_bits, bw.exp_bits) == (1, 4)
    assert p.format_for("a") == sfp.Format(exp_bits=4, man_bits=1)
    assert [c.step for c in p.history if c.tensor == "b"] == [None, 0, 1, 2]


def test_bitwave_adds_back_the_last_removed_bit_above_2k_noise() -> None:
    bw, _ = bitwave(k=0.5, init_man_bits=4, init_exp_bits=6)
    bw.step(StepState(0, evidence=evidence(0.0, man=0.1, exp=0.2)))  # m3
    bw.step(StepState(1, evidence=evidence(0.1, man=0.3, exp=0.2)))  # e5
    bw.step(StepState(2, evidence=evidence(0.99, man=2.0, exp=2.0)))  # under 2k: hold
    bw.step(StepState(3, evidence=evidence(1.2, man=2.0, exp=2.0)))  # over 2k: e5 -> e6
    bw.step(StepState(4, evidence=evidence(1.5, man=2.0, exp=2.0)))  # again: m3 -> m4
    bw.step(StepState(5, evidence=evidence(1.5, man=2.0, exp=2.0)))  # nothing left to restore
    assert [d.action for d in bw.decisions] == ["remove", "remove", "hold", "add", "add", "hold"]
    assert [d.field for d in bw.decisions[3:5]] == ["exp", "man"]
    assert (bw.man_bits, bw.exp_bits) == (4, 6)  # never above the starting bits


def test_bitwave_decides_only_every_period_and_needs_evidence_then() -> None:
    bw = sfp.BitWave(period=5)
    bw.attach(sfp.Policy(), SPECS)
    assert [s for s in range(12) if bw.probe_due(s)] == [4, 9]
    for s in range(4):
        bw.step(StepState(s))  # not due: no evidence needed
    with pytest.raises(ValueError, match="gradient evidence at step 4"):
        bw.step(StepState(4))
    with pytest.raises(ValueError, match="noise=nan"):
        bw.step(StepState(4, evidence=GradientEvidence(math.nan, 0.0)))


def test_bitwave_candidates_keep_each_tensors_own_settings() -> None:
    p = sfp.Policy(rules=[("a", sfp.Format(rounding="stochastic", seed=3))])
    bw = sfp.BitWave(init_man_bits=1, init_exp_bits=2)
    bw.attach(p, SPECS)
    assert p.format_for("a") == sfp.Format(exp_bits=2, man_bits=1, rounding="stochastic", seed=3)
    cand = bw.candidates()
    assert cand["man"]["a"] == sfp.Format(exp_bits=2, man_bits=0, rounding="stochastic", seed=3)
    assert cand["exp"]["b"] == sfp.Format(exp_bits=1, man_bits=1)
    bw.step(StepState(bw.period - 1, evidence=evidence(0.0, man=0.0, exp=0.0)))
    bw.step(StepState(2 * bw.period - 1, evidence=evidence(0.0, exp=0.0, man=None)))
    assert (bw.man_bits, bw.exp_bits) == (0, 1) and bw.candidates() == {}


def test_bitwave_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="period=0"):
        sfp.BitWave(period=0)
    with pytest.raises(ValueError, match="k=-1"):
        sfp.BitWave(k=-1)
    with pytest.raises(RuntimeError, match="before attach"):
        sfp.BitWave().step(StepState(0, 1.0))
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        sfp.BitWave(include=["zz"]).attach(sfp.Policy(), SPECS)
    with pytest.raises(ValueError, match="e9m2"):
        sfp.BitWave(init_man_bits=2, init_exp_bits=9).attach(sfp.Policy(), SPECS)


def toy_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    # magnitudes spread over 20 binades, so exponent windows of 2..6 bits cut different values
    x = (rng.choice([-1, 1], 200) * 2.0 ** rng.uniform(-20, 0, 200)).astype(np.float32)
    a = rng.standard_normal((30, 200))
    b = rng.standard_normal(30)
    return x, a, b


def toy_loss(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    r = a @ y.astype(np.float64) - b
    return 0.5 * float(r @ r), a.T @ r


def test_bitlength_gradient_is_the_cost_of_the_segment_below_the_stored_corner() -> None:
    """``g . (y - Q_{k-1}(y))`` equals the loss change of one bit fewer, to first order."""
    x, a, b = toy_problem()
    for corner in ((3, 8), (23, 5), (2, 3)):
        p = Plan(corner, man_lowest=0, exp_lowest=1)
        y, ctx = quantum_forward(x, p)
        loss, g = toy_loss(y, a, b)
        gx, bits = quantum_backward(g, ctx)
        gman, gexp = bits.man, bits.exp
        assert gx is g
        for kind, got in (("man", gman), ("exp", gexp)):
            lower = (corner[0] - 1, corner[1]) if kind == "man" else (corner[0], corner[1] - 1)
            yl = sfp.quantize(y, sfp.Format(man_bits=lower[0], exp_bits=lower[1]))
            if np.array_equal(yl, y):
                continue  # look-ahead case, tested below
            want = float(g @ (y.astype(np.float64) - yl))
            assert got == pytest.approx(want, rel=1e-9)
            # the quadratic loss changes by exactly the linear term minus 0.5 |A delta|^2
            delta = y.astype(np.float64) - yl
            change = loss - toy_loss(yl, a, b)[0]
            assert change == pytest.approx(want - 0.5 * float(np.sum((a @ delta) ** 2)), rel=1e-6)


def test_look_ahead_reports_the_first_lower_container_that_changes_a_value() -> None:
    # 3 binades: an 8-bit exponent down to a 3-bit one (7 binades) changes nothing
    x = np.array([1.0, 0.5, 0.25, -0.125, 0.0], dtype=np.float32)
    d = sensitivity(x, (23, 8), "exp", 1, sfp.Format())
    assert d is not None
    two = sfp.quantize(x, sfp.Format(exp_bits=2))  # 3 binades: the smallest value flushes
    np.testing.assert_array_equal(d, (x - two) / np.float32(8 - 2))
    assert sensitivity(x, (23, 1), "exp", 1, sfp.Format()) is None  # already at the bottom
    # a chained quantizer: x already at 2 mantissa bits, 3 give the same values
    y = sfp.quantize(np.linspace(1, 2, 50, dtype=np.float32), sfp.Format(man_bits=2))
    d = sensitivity(y, (3, 8), "man", 0, sfp.Format())
    assert d is not None
    np.testing.assert_array_equal(
        d, (y.astype(np.float64) - sfp.quantize(y, sfp.Format(man_bits=1))) / 2
    )


def test_plan_samples_the_ceiling_with_the_fraction_as_probability() -> None:
    x, _, _ = toy_problem()
    rng = np.random.default_rng(1)
    uses_ceil = 0
    for _ in range(400):
        p = plan(
            4.3, 8, man_range=(0, 23), exp_range=(1, 8), real_man=True, real_exp=False, rng=rng
        )
        assert p.corner in ((4, 8), (5, 8)) and (p.man_lowest, p.exp_lowest) == (0, None)
        uses_ceil += p.corner == (5, 8)
        y, _ctx = quantum_forward(x, p)
        np.testing.assert_array_equal(
            y, sfp.quantize(x, sfp.Format(exp_bits=8, man_bits=p.corner[0]))
        )
    assert 0.22 < uses_ceil / 400 < 0.38


def test_quantum_controller_descends_gradient_plus_penalty_with_adam() -> None:
    qm = sfp.QuantumMantissa(gamma=2.0, lr=0.5, init_bits=10.0)
    p = sfp.Policy()
    qm.attach(p, SPECS)
    assert qm.weights == {"a": 0.25, "b": 0.75}
    assert qm.ranges["a"] == (0, 10)  # init_bits is also the cap
    qm.step(StepState(1, bit_grads={"a": {"man": -0.2}, "b": {"man": 0.0}}))
    # Adam's first step moves by lr times the sign of gradient + penalty
    assert qm.bits["a"] == pytest.approx(10 - 0.5)
    assert qm.bits["b"] == pytest.approx(10 - 0.5)
    assert p.format_for("b") == sfp.Format(man_bits=10)  # ceil(9.5)
    for step in range(2, 12):
        qm.step(StepState(step, bit_grads={"a": {"man": -50.0}}))
    assert qm.bits["a"] == 10.0  # clamped at the cap
    qm.step(StepState(12, sizes={"a": 300, "b": 100}))  # shares from the training batch
    assert qm.weights == {"a": 0.75, "b": 0.25}
    assert qm.penalty() == pytest.approx(2.0 * (0.75 * qm.bits["a"] + 0.25 * qm.bits["b"]))
    assert sfp.QuantumMantissa(init_bits=7, max_bits=12).attach(sfp.Policy(), SPECS) is None
    with pytest.raises(ValueError, match="gamma=-1"):
        sfp.QuantumExponent(gamma=-1)
    with pytest.raises(ValueError, match="no tensor matches"):
        sfp.QuantumExponent(include=["zz*"]).attach(sfp.Policy(), SPECS)


class EverySecondStep:
    """A custom controller: one mantissa bit off every second step (the README example)."""

    def __init__(self) -> None:
        self.bits = 23

    def attach(self, policy: sfp.Policy, tensors: dict[str, TensorSpec]) -> None:
        self.policy, self.names = policy, list(tensors)

    def step(self, state: StepState) -> None:
        if state.step % 2 == 1 and self.bits > 0:
            self.bits -= 1
            for n in self.names:
                self.policy.set(n, sfp.Format(man_bits=self.bits), step=state.step)


def test_custom_controller_follows_the_protocol() -> None:
    c = EverySecondStep()
    assert isinstance(c, Controller)
    assert isinstance(sfp.BitWave(), Controller)
    assert isinstance(sfp.QuantumMantissa(), Controller)
    p = sfp.Policy()
    c.attach(p, SPECS)
    for i in range(6):
        c.step(StepState(i, 1.0))
    assert p.format_for("a") == sfp.Format(man_bits=20)
    assert [s for s, _ in p.series("a")] == [None, 1, 3, 5]


def test_numpy_training_bitlengths_fall_and_accuracy_holds() -> None:
    """Softmax regression on digits with Quantum Mantissa + Exponent on its weights."""
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_digits()
    xs = (d.data / 16.0).astype(np.float32)
    ys = d.target
    xtr, ytr, xte, yte = xs[:1400], ys[:1400], xs[1400:], ys[1400:]
    rng = np.random.default_rng(0)

    def train(quantum: bool) -> tuple[float, dict[str, float]]:
        w = (rng.standard_normal((64, 10)) * 0.01).astype(np.float32)
        policy = sfp.Policy()
        qm = sfp.QuantumMantissa(gamma=0.05, lr=0.3)
        qe = sfp.QuantumExponent(gamma=0.05, lr=0.1)
        for c in (qm, qe):
            c.attach(policy, {"w": TensorSpec(w.size)})
        for step in range(150):
            idx = rng.integers(0, len(xtr), 128)
            if quantum:
                p = plan(
                    qm.bits["w"],
                    qe.bits["w"],
                    man_range=(0, 23),
                    exp_range=(1, 8),
                    real_man=True,
                    real_exp=True,
                    rng=rng,
                )
                wq, ctx = quantum_forward(w, p)
            else:
                wq = w
            logits = xtr[idx] @ wq
            prob = np.exp(logits - logits.max(1, keepdims=True))
            prob /= prob.sum(1, keepdims=True)
            prob[np.arange(128), ytr[idx]] -= 1
            gw = xtr[idx].T @ prob / 128
            if quantum:
                gw, bits = quantum_backward(gw, ctx)
                assert bits.man is not None and bits.exp is not None
                lowest = {} if bits.exp_lowest is None else {"exp": bits.exp_lowest}
                state = StepState(
                    step,
                    bit_grads={"w": {"man": bits.man, "exp": bits.exp}},
                    lowest={"w": lowest},
                )
                qm.step(state)
                qe.step(state)
            w -= 0.5 * gw.astype(np.float32)
        fmt = policy.format_for("w") if quantum else None
        wf = sfp.quantize(w, fmt) if fmt is not None else w
        acc = float(((xte @ wf).argmax(1) == yte).mean())
        return acc, {"man": qm.bits["w"], "exp": qe.bits["w"]}

    base_acc, _ = train(False)
    q_acc, bits = train(True)
    assert bits["man"] < 8 and bits["exp"] < 7, bits
    assert q_acc >= base_acc - 0.03, (q_acc, base_acc)


def test_at_the_bottom_of_its_range_the_gradient_looks_up_to_the_kept_corner_above() -> None:
    x, a, b = toy_problem()
    p = Plan((0, 1), man_lowest=0, exp_lowest=1)
    y, ctx = quantum_forward(x, p)
    # kept only because both fields sit at their lowest bitlength: each the corner above
    assert set(ctx.upper) == {"man", "exp"}
    assert np.array_equal(ctx.upper["man"], sfp.quantize(x, sfp.Format(man_bits=1, exp_bits=1)))
    _, g = toy_loss(y, a, b)
    _, bits = quantum_backward(g, ctx)
    gman, gexp = bits.man, bits.exp
    up_man = sfp.quantize(x, sfp.Format(man_bits=1, exp_bits=1))
    up_exp = sfp.quantize(x, sfp.Format(man_bits=0, exp_bits=2))
    assert gman == pytest.approx(float(g @ (up_man.astype(np.float64) - y)), rel=1e-6)
    assert gexp == pytest.approx(float(g @ (up_exp.astype(np.float64) - y)), rel=1e-6)
    assert quantum_forward(x, Plan((3, 4), man_lowest=0, exp_lowest=1))[1].upper == {}


def test_the_footprint_is_priced_in_the_scale_of_the_evidence_not_the_loss() -> None:
    """Near zero training loss the evidence shrinks less than the loss: the price follows it."""

    def trained(loss: float, scale: float, loss_scales: bool = True) -> float:
        qm = sfp.QuantumMantissa(gamma=0.05, lr=0.5)
        qm.attach(sfp.Policy(), SPECS)
        for step in range(5):
            qm.step(
                StepState(
                    step,
                    loss=loss,
                    bit_grads={"b": {"man": 0.0}},
                    bit_spreads={"b": {"man": 0.01 * scale}},
                    loss_scales={"a": 0.05 * scale, "b": 0.15 * scale} if loss_scales else {},
                )
            )
        return qm.bits["b"]

    # penalty 0.05 * 0.75 * (0.05 + 0.15) = 0.0075 against 0.01 * sqrt(0.1 / 1.9) = 0.0023:
    # the bit goes; priced in the loss (0.05 * 0.75 * 0.001) it would stay at 23
    assert trained(loss=0.001, scale=1.0) == pytest.approx(23.0 - 5 * 0.5)
    # the same evidence a thousand times smaller, at another loss: the same decisions (but
    # for Adam's epsilon)
    assert trained(loss=5.0, scale=1e-3) == pytest.approx(trained(loss=0.001, scale=1.0), abs=0.01)
    # no loss scale given: the paper's absolute price, gamma * w_T
    assert trained(loss=0.001, scale=1.0, loss_scales=False) < 23.0
    qm = sfp.QuantumMantissa(gamma=0.5)
    qm.attach(sfp.Policy(), SPECS)
    assert qm.penalty_grad("b") == pytest.approx(0.5 * 0.75)
    assert qm.penalty_grad("b", 0.01) == pytest.approx(0.5 * 0.75 * 0.01)
    with pytest.raises(ValueError, match="loss scale nan is not finite"):
        qm.step(StepState(0, bit_grads={"b": {"man": 0.0}}, loss_scales={"b": math.nan}))


def gaussian(n: int = 4096) -> np.ndarray:
    return np.random.default_rng(5).standard_normal(n).astype(np.float32)


def flushed_share(x: np.ndarray, exp_bits: int) -> float:
    q = sfp.quantize(x, sfp.Format(exp_bits=exp_bits, man_bits=23)).astype(np.float64)
    x64 = x.astype(np.float64)
    return float(((x64 - q) ** 2).sum() / (x64**2).sum())


def test_exponent_bits_needed_is_the_narrowest_window_within_the_flush_budget() -> None:
    x = gaussian(100_000)
    for man in (0, 1, 3, 7):
        e = exponent_bits_needed(x, man, 1, 8)
        assert flushed_share(x, e) <= flush_budget(man) < flushed_share(x, e - 1)
    assert exponent_bits_needed(x, 3, 5, 8) == 5  # never below the lowest asked for
    assert exponent_bits_needed(np.zeros(10, np.float32), 3, 2, 8) == 2
    assert flush_budget(3) == pytest.approx(2.0**-6 / 28)


def test_the_exponent_may_not_go_where_its_window_flushes_more_than_the_mantissa_rounds() -> None:
    x = gaussian()
    g = np.random.default_rng(6).standard_normal(x.size).astype(np.float32)
    man = 2
    need = exponent_bits_needed(x, man, 1, 8)
    for e in range(need, need + 3):
        _, ctx = quantum_forward(x, Plan((man, e), man_lowest=0, exp_lowest=1))
        _, bits = quantum_backward(g, ctx)
        # one bit fewer than needed is refused; wider windows leave the gradient to decide
        assert bits.exp_lowest == (need if e == need else None), (e, need)
        assert bits.exp is not None and bits.man is not None
    qe = sfp.QuantumExponent(gamma=1.0, lr=0.5, init_bits=8)
    qe.attach(sfp.Policy(), SPECS)
    for step in range(20):  # the penalty pulls down, the limit holds
        qe.step(StepState(step, bit_grads={"a": {"exp": 0.0}}, lowest={"a": {"exp": 5}}))
    assert qe.bits["a"] == 5.0 and qe.container("a") == 5


def test_a_large_tensor_learns_its_mantissa_without_an_exponent_format() -> None:
    """The sample's window top goes on the corner formats, not on a base without exponent bits."""
    x = gaussian(3 * 65536)
    y, ctx = quantum_forward(x, Plan((5, 8), man_lowest=0), sfp.Format(man_bits=5))
    _, bits = quantum_backward(x, ctx)
    # a strided sample of every third value (offset 0), scaled by three
    ys = y[::3]
    want = 3 * float(x[::3].astype(np.float64) @ (ys - sfp.quantize(ys, sfp.Format(man_bits=4))))
    assert bits.man == pytest.approx(want, rel=1e-5) and bits.exp is None


def test_the_bit_gradient_reports_the_spread_of_its_terms() -> None:
    x = gaussian()
    g = np.random.default_rng(7).standard_normal(x.size).astype(np.float32)
    y, ctx = quantum_forward(x, Plan((3, 8), man_lowest=0))
    _, bits = quantum_backward(g, ctx)
    d = y.astype(np.float64) - sfp.quantize(y, sfp.Format(exp_bits=8, man_bits=2))
    terms = g.astype(np.float64) * d
    assert bits.man == pytest.approx(float(terms.sum()), rel=1e-5)
    assert bits.man_spread == pytest.approx(float(np.sqrt(terms @ terms)), rel=1e-5)
    # the scale of the evidence: the spread if every value were off by its own size
    gy = g.astype(np.float64) * y
    assert bits.loss_scale == pytest.approx(float(np.sqrt(gy @ gy)), rel=1e-5)
    # nothing below changes a value: no gradient and no spread
    _, ctx = quantum_forward(np.ones(64, np.float32), Plan((3, 8), man_lowest=0))
    assert quantum_backward(np.ones(64, np.float32), ctx)[1].man_spread == 0.0


def test_a_bit_is_priced_by_its_gradient_plus_confidence_times_its_spread() -> None:
    """A zero-mean gradient with a wide spread keeps the bit; the paper's price (0) drops it."""
    kept, dropped = (sfp.QuantumMantissa(gamma=1.0, lr=0.5, confidence=c) for c in (1.0, 0.0))
    for qm in (kept, dropped):
        qm.attach(sfp.Policy(), SPECS)
        for step in range(5):
            qm.step(StepState(step, bit_grads={"b": {"man": 0.0}}, bit_spreads={"b": {"man": 4.0}}))
    # penalty 0.75 per bit against the standard error of Adam's average of the gradient,
    # 4.0 * sqrt(0.1 / 1.9) = 0.92: the pessimistic price says keep the bit
    assert kept.bits["b"] == 23.0
    assert dropped.bits["b"] == pytest.approx(23.0 - 5 * 0.5)
    with pytest.raises(ValueError, match="confidence=-1"):
        sfp.QuantumMantissa(confidence=-1)
    with pytest.raises(ValueError, match="spread"):
        kept.step(StepState(9, bit_grads={"b": {"man": 0.0}}, bit_spreads={"b": {"man": math.nan}}))
