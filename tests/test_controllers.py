"""BitWave decisions, Quantum Mantissa/Exponent gradients, and a short numpy training."""

from __future__ import annotations

import math

import numpy as np
import pytest

import schrodinger_fp as sfp
from schrodinger_fp.controllers import (
    Controller,
    StepState,
    TensorSpec,
    plan,
    quantum_backward,
    quantum_forward,
)

SPECS = {"a": TensorSpec(100), "b": TensorSpec(300)}


def run_bitwave(bw: sfp.BitWave, losses: list[float]) -> sfp.Policy:
    p = sfp.Policy()
    bw.attach(p, SPECS)
    for i, loss in enumerate(losses):
        bw.step(StepState(step=i, loss=loss))
    return p


def per_period(values: list[float], period: int) -> list[float]:
    return [v for v in values for _ in range(period)]


def test_bitwave_removes_mantissa_bits_while_loss_improves_with_cooldown() -> None:
    bw = sfp.BitWave(period=4, cooldown=1, improve=0.01)
    p = run_bitwave(bw, per_period([1.0 * 0.9**k for k in range(7)], 4))
    assert [d.action for d in bw.decisions] == ["remove", "cooldown"] * 3
    assert (bw.man_bits, bw.exp_bits) == (20, 8)
    assert p.format_for("a") == sfp.Format(exp_bits=8, man_bits=20)
    assert p.format_for("b") == sfp.Format(exp_bits=8, man_bits=20)
    assert [c.step for c in p.history if c.tensor == "a"][1:] == [7, 15, 23]


def test_bitwave_goes_to_exponent_after_mantissa_floor_and_restores_lifo() -> None:
    bw = sfp.BitWave(period=2, cooldown=0, improve=0.0, worsen=0.05, min_man_bits=21, add_bits=2)
    losses = per_period([10, 9, 8, 7, 6, 5], 2)  # 5 improvements
    run_bitwave(bw, losses)
    assert (bw.man_bits, bw.exp_bits) == (21, 5)
    run_more = [7.0, 7.0]  # mean 7 vs average well below: worse by > 5%
    for i, loss in enumerate(run_more):
        bw.step(StepState(step=100 + i, loss=loss))
    assert bw.decisions[-1].action == "add"
    assert (bw.man_bits, bw.exp_bits) == (21, 7)  # the last two removed were exponent bits


def test_bitwave_holds_inside_the_thresholds_and_at_the_floor() -> None:
    bw = sfp.BitWave(period=3, improve=0.05, worsen=0.05)
    run_bitwave(bw, per_period([1.0, 0.99, 1.01, 1.0, 0.98], 3))
    assert {d.action for d in bw.decisions} == {"hold"}
    assert (bw.man_bits, bw.exp_bits) == (23, 8)
    floor = sfp.BitWave(period=1, cooldown=0, min_man_bits=23, min_exp_bits=8)
    run_bitwave(floor, [5.0, 4.0, 3.0])
    assert [d.action for d in floor.decisions] == ["floor", "floor"]


def test_bitwave_rejects_bad_parameters_and_losses() -> None:
    with pytest.raises(ValueError, match="period=0"):
        sfp.BitWave(period=0)
    with pytest.raises(ValueError, match=r"beta=1\.5"):
        sfp.BitWave(beta=1.5)
    with pytest.raises(ValueError, match="improve=-1"):
        sfp.BitWave(improve=-1)
    bw = sfp.BitWave()
    with pytest.raises(RuntimeError, match="before attach"):
        bw.step(StepState(0, 1.0))
    bw.attach(sfp.Policy(), SPECS)
    with pytest.raises(ValueError, match="nan"):
        bw.step(StepState(0, math.nan))
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        sfp.BitWave(include=["zz"]).attach(sfp.Policy(), SPECS)


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


@pytest.mark.parametrize(
    ("man", "exp", "real_man", "real_exp"),
    [
        (3.3, 8, True, False),
        (23, 4.6, False, True),
        (2.7, 3.4, True, True),
        (0.25, 2.5, True, True),
    ],
)
def test_bitlength_gradient_matches_finite_differences(
    man: float, exp: float, real_man: bool, real_exp: bool
) -> None:
    x, a, b = toy_problem()
    kw = dict(man_range=(0, 23), exp_range=(1, 8), real_man=real_man, real_exp=real_exp)

    def loss_at(m: float, e: float) -> float:
        y, _ = quantum_forward(x, plan(m, e, **kw))
        return toy_loss(y, a, b)[0]

    y, ctx = quantum_forward(x, plan(man, exp, **kw))
    _, g = toy_loss(y, a, b)
    gx, gman, gexp = quantum_backward(g, ctx)
    assert gx is g
    h = 0.05  # the loss is quadratic in n inside [floor, ceil]: central differences are exact
    for real, analytic, fd in (
        (real_man, gman, lambda: (loss_at(man + h, exp) - loss_at(man - h, exp)) / (2 * h)),
        (real_exp, gexp, lambda: (loss_at(man, exp + h) - loss_at(man, exp - h)) / (2 * h)),
    ):
        if not real:
            assert analytic is None
            continue
        numeric = fd()
        assert abs(numeric) > 1e-9, "the toy problem must make the bitlength matter"
        assert analytic == pytest.approx(numeric, rel=2e-3)


def test_sample_mode_uses_an_integer_corner_with_expected_fraction() -> None:
    x, _, _ = toy_problem()
    rng = np.random.default_rng(1)
    uses_ceil = 0
    for _ in range(400):
        p = plan(
            4.3,
            8,
            man_range=(0, 23),
            exp_range=(1, 8),
            real_man=True,
            real_exp=False,
            mode="sample",
            rng=rng,
        )
        ((w, corner),) = p.value
        assert w == 1.0 and corner in ((4, 8), (5, 8))
        uses_ceil += corner == (5, 8)
        y, _ctx = quantum_forward(x, p)
        np.testing.assert_array_equal(
            y, sfp.quantize(x, sfp.Format(exp_bits=8, man_bits=corner[0]))
        )
    assert 0.22 < uses_ceil / 400 < 0.38


def test_quantum_controller_descends_gradient_plus_penalty() -> None:
    qm = sfp.QuantumMantissa(gamma=2.0, lr=0.5, optimizer="sgd", init_bits=10.0)
    p = sfp.Policy()
    qm.attach(p, SPECS)
    assert qm.weights == {"a": 0.25, "b": 0.75}
    qm.step(StepState(1, bit_grads={"a": {"man": -0.2}, "b": {"man": 0.0}}))
    assert qm.bits["a"] == pytest.approx(10 - 0.5 * (-0.2 + 0.5))
    assert qm.bits["b"] == pytest.approx(10 - 0.5 * 1.5)
    assert p.format_for("b") == sfp.Format(man_bits=10)  # ceil(9.25)
    qm.step(StepState(2, bit_values={"b": {"man": 40.0}}))
    assert qm.bits["b"] == 23.0
    assert qm.penalty() == pytest.approx(2.0 * (0.25 * qm.bits["a"] + 0.75 * 23))
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
                gw, gman, gexp = quantum_backward(gw, ctx)
                state = StepState(step, bit_grads={"w": {"man": gman, "exp": gexp}})
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


def test_bitwave_trial_keeps_removing_while_the_trend_holds() -> None:
    bw = sfp.BitWave(period=1, cooldown=0, regret=0.01)
    run_bitwave(bw, [0.9**k for k in range(8)])  # the loss falls 10 % a period throughout
    assert [d.action for d in bw.decisions] == ["remove"] * 7
    assert (bw.man_bits, bw.exp_bits) == (16, 8)


def test_bitwave_trial_undoes_a_removal_that_slows_learning_and_backs_off() -> None:
    bw = sfp.BitWave(period=1, cooldown=0, regret=0.01, backoff=2)
    # falls 10 % a period, then nearly stalls after the second removal: still "improving"
    # against the moving average, but 10 % short of the trend -> the removal is undone
    losses = [1.0, 0.9, 0.81, 0.80, 0.79, 0.78, 0.77, 0.77] + [0.76 - 0.001 * k for k in range(4)]
    run_bitwave(bw, losses)
    actions = [d.action for d in bw.decisions]
    assert actions[:7] == ["remove", "remove", "undo", "backoff", "backoff", "remove", "undo"]
    assert actions[7:11] == ["backoff"] * 4  # the second consecutive undo doubles the back-off
    assert all(d.improvement > 0 for d in bw.decisions)  # the old test alone would remove
    assert bw.decisions[2].man_bits == 22  # the second bit came back
    assert (bw.man_bits, bw.exp_bits) == (22, 8)
    assert bw.shortfall() is None


def test_bitwave_without_regret_removes_through_the_stall() -> None:
    bw = sfp.BitWave(period=1, cooldown=0)
    run_bitwave(bw, [1.0, 0.9, 0.81, 0.80, 0.79, 0.78, 0.77, 0.77])
    assert [d.action for d in bw.decisions][:6] == ["remove"] * 6


def test_bitwave_rejects_bad_trial_parameters() -> None:
    with pytest.raises(ValueError, match=r"regret=-0\.1"):
        sfp.BitWave(regret=-0.1)
    with pytest.raises(ValueError, match="trend_periods=0"):
        sfp.BitWave(trend_periods=0)


def test_bitwave_starts_at_init_bits_and_never_adds_above_them() -> None:
    bw = sfp.BitWave(period=1, cooldown=0, init_man_bits=7, min_man_bits=3, worsen=0.01)
    p = run_bitwave(bw, [1.0, 0.9, 0.8, 0.7, 0.6, 0.6])
    assert p.history[0].new == sfp.Format(exp_bits=8, man_bits=7)
    assert (bw.man_bits, bw.exp_bits) == (3, 7)  # mantissa down to its floor, then exponent
    for loss in (0.9, 1.5, 3.0, 6.0):  # worse and worse: everything removed comes back
        bw.step(StepState(step=10, loss=loss))
    assert (bw.man_bits, bw.exp_bits) == (7, 8)
    with pytest.raises(ValueError, match="e8m2"):
        sfp.BitWave(init_man_bits=2, min_man_bits=3).attach(sfp.Policy(), SPECS)


def test_bitwave_backs_off_after_an_add_when_trials_are_on() -> None:
    bw = sfp.BitWave(period=1, cooldown=0, regret=1.0, worsen=0.05, backoff=2)
    run_bitwave(bw, [1.0, 0.9, 0.81, 1.2, 0.7, 0.6, 0.5])
    actions = [d.action for d in bw.decisions]
    assert actions == ["remove", "remove", "add", "backoff", "backoff", "remove"]
