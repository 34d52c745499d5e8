"""BitWave: one network-wide mantissa/exponent bitlength, moved by the measured cost of a bit."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ...format import Format
from ..policy import Policy
from .base import FIELD_WIDTHS, GradientEvidence, StepState, TensorSpec

__all__ = ["BitWave", "Decision"]


@dataclass(frozen=True)
class Decision:
    """One BitWave decision.

    Attributes
    ----------
    step : int
        Step at which it was taken.
    action : {"remove", "add", "hold"}
        What was done.
    field : {"man", "exp"} or None
        The field that lost or regained a bit.
    ratio : float
        The error that decided, in units of the batch's gradient noise:
        the narrower format's for "remove" / "hold", the current one's for "add".
    man_bits, exp_bits : int
        Network-wide bitlengths after the decision.
    """

    step: int
    action: str
    field: str | None
    ratio: float
    man_bits: int
    exp_bits: int


class BitWave:
    """Network-wide bitlength controller that removes a bit only when it is not missed.

    The paper's BitWave watches the training loss and removes a bit while the
    loss keeps improving. A model that still learns always improves, so that
    rule walks down to whatever floor it is given and the floor becomes the
    result. This controller (ours) keeps the paper's shape (one network-wide
    format, mantissa and exponent bits removed one at a time, restored last
    removed first) but decides from evidence: every ``period`` steps the
    adapter measures, on the same batch, the gradient at full precision, at the
    current format and at one bit fewer in each field, and the gradient noise
    of the batch itself (:class:`GradientEvidence`). Then

    * a field whose narrower format's gradient error is below ``k`` times the
      noise loses a bit (the smaller error of the two fields wins; mantissa on a tie);
    * if the current format's error exceeds ``2 k`` times the noise, the last
      removed bit comes back;
    * otherwise the format holds.

    A bit whose removal the gradient cannot tell apart from batch noise costs
    nothing measurable; there are no per-task floors.

    Parameters
    ----------
    period : int, default 10
        Steps between two measurements.
    k : float, default 0.25
        Error threshold, in units of the batch's gradient noise (0.5 cost the
        char LM of ``bench/experiments`` 3.3 % loss; 0.25 holds it within 1 %).
    init_man_bits, init_exp_bits : int, optional
        Starting bitlengths (default: the source widths, lossless), e.g. 7 and
        8 to start from bfloat16's containers. Bits are never added above them.
    include : iterable of str, optional
        Names of the tensors to manage (default: every tensor given to :meth:`attach`).

    Raises
    ------
    ValueError
        If a parameter is out of range (the message names it).
    """

    def __init__(
        self,
        *,
        period: int = 10,
        k: float = 0.25,
        init_man_bits: int | None = None,
        init_exp_bits: int | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        if not isinstance(period, int) or isinstance(period, bool) or period < 1:
            raise ValueError(f"period={period!r} must be an integer >= 1")
        if not math.isfinite(k) or k <= 0:
            raise ValueError(f"k={k!r} must be a finite number > 0")
        self.period = period
        self.k = float(k)
        self.init_man_bits = init_man_bits
        self.init_exp_bits = init_exp_bits
        self.include = None if include is None else list(include)
        self.decisions: list[Decision] = []
        self.man_bits = 0
        self.exp_bits = 0
        self.names: list[str] = []
        self._top = {"man": 0, "exp": 0}
        self._policy: Policy | None = None
        self._removed: list[str] = []  # "man" / "exp", in removal order

    def attach(self, policy: Policy, tensors: Mapping[str, TensorSpec]) -> None:
        """Manage ``tensors`` (or those named in ``include``) through ``policy``.

        Raises
        ------
        ValueError
            If no tensor is given, an included name is unknown, the dtypes
            differ, or the starting bits exceed the source widths.
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
        if not (0 <= man <= src_man and 1 <= exp <= src_exp):
            raise ValueError(
                f"starting bits e{exp}m{man} must lie between e1m0 and the source widths "
                f"e{src_exp}m{src_man}"
            )
        self.exp_bits, self.man_bits = exp, man
        self._top = {"man": man, "exp": exp}
        self._policy = policy
        self.names = names
        self._write(step=None)

    def format(self, man_bits: int | None = None, exp_bits: int | None = None) -> Format:
        """The network-wide format (current bits, or the ones given), keeping other settings."""
        return Format(
            exp_bits=self.exp_bits if exp_bits is None else exp_bits,
            man_bits=self.man_bits if man_bits is None else man_bits,
        )

    def probe_due(self, step: int) -> bool:
        """Whether :meth:`step` needs :class:`GradientEvidence` at ``step``."""
        return step % self.period == self.period - 1

    def candidates(self) -> dict[str, dict[str, Format | None]]:
        """Per field that can lose a bit, the formats of every managed tensor with one bit fewer.

        Each tensor keeps its own rounding and coding settings from the policy.
        """
        out: dict[str, dict[str, Format | None]] = {}
        if self.man_bits > 0:
            out["man"] = self._formats(self.man_bits - 1, self.exp_bits)
        if self.exp_bits > 1:
            out["exp"] = self._formats(self.man_bits, self.exp_bits - 1)
        return out

    def step(self, state: StepState) -> None:
        """Decide on the steps :meth:`probe_due` names; other steps pass.

        Raises
        ------
        RuntimeError
            If called before :meth:`attach`.
        ValueError
            If evidence is missing on a due step or holds a number that is not finite.
        """
        if self._policy is None:
            raise RuntimeError("BitWave.step called before attach")
        if not self.probe_due(state.step):
            return
        ev = state.evidence
        if ev is None:
            raise ValueError(
                f"BitWave needs gradient evidence at step {state.step}: call "
                "adapter.step(step, loss, probe=...) with a probe that computes the loss of "
                "part of the batch"
            )
        self._check(ev)
        noise = max(ev.noise, 1e-30)
        current = ev.current / noise
        best = min(ev.narrower, key=lambda f: (ev.narrower[f], f != "man"), default=None)
        if current > 2 * self.k and self._removed:
            field = self._removed.pop()
            self._set(field, +1)
            action, ratio = "add", current
        elif best is not None and ev.narrower[best] / noise < self.k:
            self._removed.append(best)
            self._set(best, -1)
            action, field, ratio = "remove", best, ev.narrower[best] / noise
        else:
            action, field = "hold", None
            ratio = ev.narrower[best] / noise if best is not None else current
        self.decisions.append(
            Decision(state.step, action, field, ratio, self.man_bits, self.exp_bits)
        )
        if action != "hold":
            self._write(state.step)

    # -- internals -------------------------------------------------------
    @staticmethod
    def _check(ev: GradientEvidence) -> None:
        for what, v in (("noise", ev.noise), ("current", ev.current), *ev.narrower.items()):
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"gradient evidence {what}={v!r} must be a finite number >= 0")

    def _set(self, field: str, delta: int) -> None:
        if field == "man":
            self.man_bits = min(self.man_bits + delta, self._top["man"])
        else:
            self.exp_bits = min(self.exp_bits + delta, self._top["exp"])

    def _formats(self, man: int, exp: int) -> dict[str, Format | None]:
        assert self._policy is not None
        return {
            n: replace(self._policy.format_for(n) or Format(), man_bits=man, exp_bits=exp)
            for n in self.names
        }

    def _write(self, step: int | None) -> None:
        assert self._policy is not None
        for name, fmt in self._formats(self.man_bits, self.exp_bits).items():
            assert fmt is not None
            self._policy.set(name, fmt, step=step)
