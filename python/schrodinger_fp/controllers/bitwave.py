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
    action : {"remove", "add", "hold", "cooldown", "floor"}
        What was done ("floor": wanted to remove, but every field is at its minimum).
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
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValueError(f"{name}={value!r} must be an integer >= {lo}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta={beta!r} must be in [0, 1)")
        for name, threshold in (("improve", improve), ("worsen", worsen)):
            if not math.isfinite(threshold) or threshold < 0:
                raise ValueError(f"{name}={threshold!r} must be a finite number >= 0")
        self.period = period
        self.beta = beta
        self.improve = improve
        self.worsen = worsen
        self.cooldown = cooldown
        self.step_bits = step_bits
        self.add_bits = add_bits
        self.min_man_bits = min_man_bits
        self.min_exp_bits = min_exp_bits
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

    def attach(self, policy: Policy, tensors: Mapping[str, TensorSpec]) -> None:
        """Manage ``tensors`` (or those named in ``include``) through ``policy``.

        Bitlengths start at the source widths of the first tensor's dtype
        (lossless) and are written to the policy at once.

        Raises
        ------
        ValueError
            If no tensor is given, an included name is unknown, or the dtypes differ.
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
        self.exp_bits, self.man_bits = FIELD_WIDTHS[dtypes.pop()]
        if self.min_man_bits > self.man_bits or self.min_exp_bits > self.exp_bits:
            raise ValueError(
                f"min_man_bits={self.min_man_bits}/min_exp_bits={self.min_exp_bits} exceed "
                f"the source widths {self.man_bits}/{self.exp_bits}"
            )
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
        self._window.clear()
        if self._average is None:
            self._average = recent
            return
        improvement = (self._average - recent) / max(abs(self._average), 1e-12)
        action = self._decide(improvement)
        self.decisions.append(
            Decision(state.step, action, improvement, self.man_bits, self.exp_bits)
        )
        if action in ("remove", "add"):
            self._cooling = self.cooldown
            self._write(step=state.step)
        self._average = self.beta * self._average + (1.0 - self.beta) * recent

    def _decide(self, improvement: float) -> str:
        if self._cooling > 0:
            self._cooling -= 1
            return "cooldown"
        if improvement > self.improve:
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
            return "remove" if removed else "floor"
        if improvement < -self.worsen and self._removed:
            for _ in range(min(self.add_bits, len(self._removed))):
                if self._removed.pop() == "man":
                    self.man_bits += 1
                else:
                    self.exp_bits += 1
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
