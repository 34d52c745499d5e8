"""Plots of a policy's bitlengths over steps (needs matplotlib: ``schrodinger-fp[plot]``)."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .policy import Policy

__all__ = ["bitlength_series", "plot_bitlengths"]


def bitlength_series(
    policy: Policy, name: str, field: str, last_step: int | None = None
) -> tuple[list[int], list[int | None]]:
    """Step-wise series of one field (``"man_bits"`` or ``"exp_bits"``) of tensor ``name``.

    Raises
    ------
    ValueError
        If ``field`` is not ``"man_bits"`` or ``"exp_bits"``.
    """
    if field not in ("man_bits", "exp_bits"):
        raise ValueError(f"field={field!r} must be 'man_bits' or 'exp_bits'")
    steps: list[int] = []
    values: list[int | None] = []
    for step, fmt in policy.series(name):
        steps.append(0 if step is None else step)
        values.append(None if fmt is None else getattr(fmt, field))
    if last_step is not None and values:
        steps.append(last_step)
        values.append(values[-1])
    return steps, values


def plot_bitlengths(
    policy: Policy,
    names: Iterable[str],
    path: str | os.PathLike[str],
    *,
    title: str = "",
) -> None:
    """Save a two-panel step plot (mantissa, exponent bits) of ``names`` over steps to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(names)
    last = max((c.step for c in policy.history if c.step is not None), default=0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, field in zip(axes, ("man_bits", "exp_bits"), strict=True):
        for n in names:
            s, v = bitlength_series(policy, n, field, last)
            ax.step(s, [float("nan") if x is None else x for x in v], where="post", label=n)
        ax.set_xlabel("step")
        ax.set_ylabel(field)
    axes[1].legend(fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
