"""BitWave: a network-wide bitlength driven by the training loss alone (no gradients)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ..format import Format
from ..policy import Policy
from .base import FIELD_WIDTHS, StepState, TensorSpec

__all__ = ["BitWave", "Decision"]


@dataclass(frozen=True)
class Decision:
    """One BitWave decision, taken at the end of a period.

    Attributes
    ----------
    step : int
        Step at which it was taken.
    action : {"remove", "add", "undo", "backoff", "hold", "cooldown", "floor"}
        What was done ("floor": wanted to remove, but every field is at its
        minimum; "undo": the last removal failed its trial and was reverted;
        "backoff": wanted to remove, but a recent undo blocks removals).
    improvement : float
        ``(average - recent) / |average|``: positive when the loss improved.
    man_bits, exp_bits : int
        Network-wide bitlengths after the decision.
    """

    step: int
    action: str
    improvement: float
    man_bits: int
    exp_bits: int


class BitWave:
    """Loss-driven, network-wide mantissa/exponent bitlength controller.

    Every ``period`` steps the mean loss of the period ("recent") is compared
    with a moving average of earlier period means ("average")::

        improvement = (average - recent) / |average|

    * ``improvement > improve``: remove ``step_bits`` bits (mantissa first,
      down to ``min_man_bits``, then exponent, down to ``min_exp_bits``);
    * ``improvement < -worsen``: add back the last ``add_bits`` removed bits
      (last removed, first restored);
    * otherwise hold.

    With a falling loss (a model still learning) the first test fires even
    when fewer bits slow the learning down, and the second never fires. The
    optional *trial* test (``regret``) compares against the loss the run
    would have had: at a removal, the relative improvement per period over
    the last ``trend_periods`` period means, ``r``, is taken as the trend;
    at the next decision outside the cool-down, ``k`` periods later, the
    period mean is compared with the projection ``m_0 (1 - r)^k`` from the
    mean ``m_0`` of the period before the removal::

        shortfall = (recent - projection) / projection

    ``shortfall > regret + noise * se``: the removal is undone (its bits restored) and
    removals are blocked for ``backoff`` decisions, doubling after each
    consecutive undo or add (reset when a trial passes); with ``regret`` set,
    an "add" backs off the same way. The projection assumes the
    trend continues, so natural slowing of the learning also counts against
    a removal: ``regret`` is the slack for it; ``se`` is the relative standard
    error of the two period means compared (from the spread of the losses
    within each period), so batch noise alone rarely undoes a removal.

    After any change the next ``cooldown`` decisions are skipped (the loss
    needs time to show the effect), and the average is then updated:
    ``average = beta * average + (1 - beta) * recent``. The first period only
    sets the average.

    Parameters
    ----------
    period : int, default 20
        Steps per decision.
    beta : float, default 0.5
        Weight of the old average when a period mean is folded in (0 <= beta < 1).
    improve : float, default 0.0
        Relative improvement beyond which a bit is removed. The default 0
        means "remove while the loss is not getting worse".
    worsen : float, default 0.02
        Relative worsening beyond which bits are added back.
    cooldown : int, default 1
        Decisions skipped after a change.
    step_bits : int, default 1
        Bits removed per "remove" decision.
    add_bits : int, default 2
        Bits restored per "add" decision.
    min_man_bits : int, default 1
        Floor of the mantissa bitlength.
    min_exp_bits : int, default 4
        Floor of the exponent bitlength.
    init_man_bits, init_exp_bits : int, optional
        Starting bitlengths (default: the source widths, lossless), e.g. 7 and
        8 to start from bfloat16's containers. Bits are never added above them.
    regret : float, optional
        Shortfall against the trend beyond which a removal is undone
        (default ``None``: no trial test, the moving-average tests alone).
    trend_periods : int, default 3
        Period means before a removal that set its trend.
    backoff : int, default 2
        Decisions during which removals are blocked after the first undo.
    noise : float, default 2.0
        Standard errors of slack added to ``regret``.
    rounding : str, default "nearest"
        Rounding of the formats written.
    include : iterable of str, optional
        Names of the tensors to manage (default: every tensor given to
        :meth:`attach`).

    Raises
    ------
    ValueError
        If a parameter is out of range (the message names it).
    """

    def __init__(
        self,
        *,
        period: int = 20,
        beta: float = 0.5,
        improve: float = 0.0,
        worsen: float = 0.02,
        cooldown: int = 1,
        step_bits: int = 1,
        add_bits: int = 2,
        min_man_bits: int = 1,
        min_exp_bits: int = 4,
        init_man_bits: int | None = None,
        init_exp_bits: int | None = None,
        regret: float | None = None,
        trend_periods: int = 3,
        backoff: int = 2,
        noise: float = 2.0,
        rounding: str = "nearest",
        include: Iterable[str] | None = None,
    ) -> None:
        for name, value, lo in (
            ("period", period, 1),
            ("cooldown", cooldown, 0),
            ("step_bits", step_bits, 1),
            ("add_bits", add_bits, 1),
            ("min_man_bits", min_man_bits, 0),
            ("min_exp_bits", min_exp_bits, 1),
            ("trend_periods", trend_periods, 1),
            ("backoff", backoff, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValueError(f"{name}={value!r} must be an integer >= {lo}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta={beta!r} must be in [0, 1)")
        for name, threshold in (("improve", improve), ("worsen", worsen), ("noise", noise)):
            if not math.isfinite(threshold) or threshold < 0:
                raise ValueError(f"{name}={threshold!r} must be a finite number >= 0")
        if regret is not None and (not math.isfinite(regret) or regret < 0):
            raise ValueError(f"regret={regret!r} must be a finite number >= 0 or None")
        self.period = period
        self.beta = beta
        self.improve = improve
        self.worsen = worsen
        self.cooldown = cooldown
        self.step_bits = step_bits
        self.add_bits = add_bits
        self.min_man_bits = min_man_bits
        self.min_exp_bits = min_exp_bits
        self.init_man_bits = init_man_bits
        self.init_exp_bits = init_exp_bits
        self.regret = regret
        self.trend_periods = trend_periods
        self.backoff = backoff
        self.noise = noise
        self.rounding = rounding
        self.include = None if include is None else list(include)
        self.decisions: list[Decision] = []
        self.man_bits = 0
        self.exp_bits = 0
        self._policy: Policy | None = None
        self._names: list[str] = []
        self._window: list[float] = []
        self._average: float | None = None
        self._cooling = 0
        self._removed: list[str] = []  # "man" / "exp", in removal order
        self._means: list[float] = []  # every period mean
        self._errors: list[float] = []  # relative standard error of each period mean
        self._trial: tuple[int, float, int] | None = None  # (period index, rate, bits removed)
        self._blocked = 0  # decisions left during which removals are blocked
        self._undos = 0  # consecutive undos (the back-off doubles with each)

    def attach(self, policy: Policy, tensors: Mapping[str, TensorSpec]) -> None:
        """Manage ``tensors`` (or those named in ``include``) through ``policy``.

        Bitlengths start at ``init_man_bits`` / ``init_exp_bits`` (default: the
        source widths of the tensors' dtype, lossless) and are written to the
        policy at once.

        Raises
        ------
        ValueError
            If no tensor is given, an included name is unknown, the dtypes
            differ, or the starting bits lie outside [floor, source width].
        """
        names = list(tensors) if self.include is None else self.include
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"BitWave include names {missing} are not among the tensors")
        if not names:
            raise ValueError("BitWave needs at least one tensor to manage")
        dtypes = {tensors[n].dtype for n in names}
        if len(dtypes) != 1:
            raise ValueError(f"BitWave's tensors must share one dtype, got {sorted(dtypes)}")
        src_exp, src_man = FIELD_WIDTHS[dtypes.pop()]
        man = src_man if self.init_man_bits is None else self.init_man_bits
        exp = src_exp if self.init_exp_bits is None else self.init_exp_bits
        if not (self.min_man_bits <= man <= src_man and self.min_exp_bits <= exp <= src_exp):
            raise ValueError(
                f"starting bits e{exp}m{man} must lie between the floors "
                f"e{self.min_exp_bits}m{self.min_man_bits} and the source widths "
                f"e{src_exp}m{src_man}"
            )
        self.exp_bits, self.man_bits = exp, man
        self._policy = policy
        self._names = names
        self._write(step=None)

    def format(self) -> Format:
        """The network-wide format BitWave currently asks for."""
        return Format(exp_bits=self.exp_bits, man_bits=self.man_bits, rounding=self.rounding)

    def step(self, state: StepState) -> None:
        """Take in one step's loss; decide at the end of each period.

        Raises
        ------
        RuntimeError
            If called before :meth:`attach`.
        ValueError
            If ``state.loss`` is missing or not finite.
        """
        if self._policy is None:
            raise RuntimeError("BitWave.step called before attach")
        loss = state.loss
        if loss is None or not math.isfinite(loss):
            raise ValueError(f"BitWave needs a finite loss each step, got loss={loss!r}")
        self._window.append(float(loss))
        if len(self._window) < self.period:
            return
        recent = sum(self._window) / len(self._window)
        self._means.append(recent)
        var = sum((v - recent) ** 2 for v in self._window) / max(len(self._window) - 1, 1)
        self._errors.append(math.sqrt(var / len(self._window)) / max(abs(recent), 1e-12))
        self._window.clear()
        if self._average is None:
            self._average = recent
            return
        improvement = (self._average - recent) / max(abs(self._average), 1e-12)
        action = self._decide(improvement)
        self.decisions.append(
            Decision(state.step, action, improvement, self.man_bits, self.exp_bits)
        )
        if action in ("remove", "add", "undo"):
            self._cooling = self.cooldown
            self._write(step=state.step)
        self._average = self.beta * self._average + (1.0 - self.beta) * recent

    def shortfall(self) -> float | None:
        """Shortfall of the last period mean against the open trial's projection.

        ``None`` when no removal is on trial (or ``regret`` is ``None``).
        """
        if self._trial is None:
            return None
        start, rate, _ = self._trial
        k = len(self._means) - 1 - start
        projection = self._means[start] * (1.0 - rate) ** k
        return (self._means[-1] - projection) / max(abs(projection), 1e-12)

    def _trend(self) -> float:
        """Relative improvement per period over the last ``trend_periods`` means."""
        h = min(self.trend_periods, len(self._means) - 1)
        first, last = self._means[-1 - h], self._means[-1]
        if h == 0 or first <= 0 or last <= 0:
            return 0.0
        return 1.0 - (last / first) ** (1.0 / h)

    def _decide(self, improvement: float) -> str:
        if self._cooling > 0:
            self._cooling -= 1
            return "cooldown"
        shortfall = self.shortfall()
        if shortfall is not None and self._trial is not None and self.regret is not None:
            start, _, removed = self._trial
            self._trial = None
            se = math.hypot(self._errors[-1], self._errors[start])
            if shortfall > self.regret + self.noise * se:
                for _ in range(removed):
                    if self._removed.pop() == "man":
                        self.man_bits += 1
                    else:
                        self.exp_bits += 1
                self._undos += 1
                self._blocked = self.backoff * 2 ** (self._undos - 1)
                return "undo"
            self._undos = 0
        blocked = self._blocked > 0
        self._blocked = max(self._blocked - 1, 0)
        if improvement > self.improve:
            if blocked:
                return "backoff"
            removed = 0
            for _ in range(self.step_bits):
                if self.man_bits > self.min_man_bits:
                    self.man_bits -= 1
                    self._removed.append("man")
                elif self.exp_bits > self.min_exp_bits:
                    self.exp_bits -= 1
                    self._removed.append("exp")
                else:
                    break
                removed += 1
            if removed and self.regret is not None:
                self._trial = (len(self._means) - 1, self._trend(), removed)
            return "remove" if removed else "floor"
        if improvement < -self.worsen and self._removed:
            for _ in range(min(self.add_bits, len(self._removed))):
                if self._removed.pop() == "man":
                    self.man_bits += 1
                else:
                    self.exp_bits += 1
            if self.regret is not None:  # bits had to come back: back off as after an undo
                self._undos += 1
                self._blocked = self.backoff * 2 ** (self._undos - 1)
            return "add"
        return "hold"

    def _write(self, step: int | None) -> None:
        assert self._policy is not None
        for name in self._names:
            old = self._policy.format_for(name) or Format()
            new = replace(
                old, exp_bits=self.exp_bits, man_bits=self.man_bits, rounding=self.rounding
            )
            self._policy.set(name, new, step=step)
