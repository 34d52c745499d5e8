"""Footprint measured, not estimated: encode real tensors at the policy's formats.

A :class:`FootprintRecorder` takes the tensors of a training step (weights
and stashed activations, as float arrays), encodes each with
:func:`schrodinger_fp.encode` at ``policy.format_for(name)`` once per exponent
coding, and compares the bytes with FP32 containers (4 bytes a value). With
``exponent_coding="raw"`` the exponents are bit-packed flat (the containers
alone); with ``"gecko"`` (or another coder) they are entropy/delta coded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..codec import encode, inspect
from ..format import Format
from .policy import Policy

__all__ = ["FootprintRecorder", "Sample", "available_codings"]


def available_codings(candidates: Iterable[str] = ("raw", "gecko", "entropy", "auto")) -> list[str]:
    """The exponent codings this build of the codec accepts, in the given order.

    Probes :func:`schrodinger_fp.encode` on a tiny reduced array; a coding the
    core rejects with ``ValueError`` is left out.
    """
    probe = np.linspace(-3, 3, 64, dtype=np.float32)
    out = []
    for c in candidates:
        try:
            encode(probe, Format(exp_bits=4, man_bits=2, exponent_coding=c))
        except ValueError:
            continue
        out.append(c)
    return out


@dataclass(frozen=True)
class Sample:
    """The footprint of one recorded step.

    Attributes
    ----------
    step : int
        Training step.
    values : int
        Number of values encoded.
    fp32_bytes : int
        ``4 * values``: the same tensors in FP32 containers.
    encoded : dict coding -> int
        Encoded bytes (frames included) per exponent coding.
    container_bits : float
        Mean container bitlength ``1 + e + m`` over the values.
    headers : dict coding -> int
        Of ``encoded``, the bytes of frame headers (one frame per tensor): the
        overhead of self-describing frames, apart from the values themselves.
    """

    step: int
    values: int
    fp32_bytes: int
    encoded: dict[str, int]
    container_bits: float
    headers: dict[str, int] = field(default_factory=dict)

    def ratio(self, coding: str) -> float:
        """FP32 bytes / encoded bytes for ``coding``."""
        return self.fp32_bytes / self.encoded[coding]


@dataclass
class FootprintRecorder:
    """Encodes tensors at the policy's formats and accumulates the footprint.

    Parameters
    ----------
    policy : Policy
        Where formats come from (``None`` -> stored losslessly).
    codings : sequence of str
        Exponent codings to measure, e.g. ``("raw", "gecko")``.
    every : int
        Record only steps that are multiples of ``every`` (sampling).
    """

    policy: Policy
    codings: tuple[str, ...] = ("raw", "gecko")
    every: int = 1
    samples: list[Sample] = field(default_factory=list)
    last_bytes: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every={self.every!r} must be an integer >= 1")
        if not self.codings:
            raise ValueError("codings must name at least one exponent coding")

    def due(self, step: int) -> bool:
        """Whether :meth:`record` would record ``step``."""
        return step % self.every == 0

    def record(
        self,
        step: int,
        tensors: Mapping[str, np.ndarray],
        formats: Mapping[str, Format | None] | None = None,
    ) -> Sample | None:
        """Encode ``tensors`` at their formats (if ``step`` is due).

        Parameters
        ----------
        step : int
            Training step.
        tensors : mapping name -> numpy.ndarray
            Float arrays, e.g. ``stash.captured`` of a
            :class:`~schrodinger_fp.torch.CompressedStash` (what autograd saved).
        formats : mapping name -> Format, optional
            The format of each tensor (``stash.formats``); default: the policy's.

        Raises
        ------
        TypeError
            If a tensor is not a float array of a supported dtype.
        """
        if not self.due(step):
            return None
        values = 0
        bits = 0.0
        encoded = dict.fromkeys(self.codings, 0)
        headers = dict.fromkeys(self.codings, 0)
        per_tensor: dict[str, dict[str, int]] = {}
        for name, x in tensors.items():
            x = np.ascontiguousarray(x)
            if x.dtype.kind != "f" and x.dtype.name != "bfloat16":
                raise TypeError(f"tensor {name!r} has dtype {x.dtype}, not a float dtype")
            fmt = (
                formats[name] if formats is not None else self.policy.format_for(name)
            ) or Format()
            values += x.size
            bits += x.size * fmt.bits_per_value(x.dtype.name)
            per_tensor[name] = {}
            for c in self.codings:
                buf = encode(x, replace(fmt, exponent_coding=c))
                n = len(buf)
                encoded[c] += n
                headers[c] += int(inspect(buf).streams.get("header", 0))
                per_tensor[name][c] = n
        sample = Sample(step, values, 4 * values, encoded, bits / max(values, 1), headers)
        self.samples.append(sample)
        self.last_bytes = per_tensor
        return sample

    def _samples_of(self, coding: str, last: int | None) -> list[Sample]:
        """The recorded samples (or the last ``last``) of a measured ``coding``."""
        if coding not in self.codings:
            raise ValueError(f"coding={coding!r} was not measured (codings={self.codings})")
        chosen = self.samples if last is None else self.samples[-last:]
        if not chosen:
            raise ValueError("no footprint sample recorded yet")
        return chosen

    def ratio(self, coding: str, *, last: int | None = None) -> float:
        """FP32 bytes / encoded bytes over the recorded samples (or the last ``last``).

        Raises
        ------
        ValueError
            If nothing was recorded or ``coding`` was not measured.
        """
        chosen = self._samples_of(coding, last)
        return sum(s.fp32_bytes for s in chosen) / sum(s.encoded[coding] for s in chosen)

    def header_share(self, coding: str, *, last: int | None = None) -> float:
        """Fraction of the encoded bytes that are frame headers, over the samples.

        Raises
        ------
        ValueError
            If nothing was recorded or ``coding`` was not measured.
        """
        chosen = self._samples_of(coding, last)
        total = sum(s.encoded[coding] for s in chosen)
        return sum(s.headers.get(coding, 0) for s in chosen) / total

    def container_bits(self, *, last: int | None = None) -> float:
        """Mean container bits per value over the samples (or the last ``last``)."""
        chosen = self.samples if last is None else self.samples[-last:]
        if not chosen:
            raise ValueError("no footprint sample recorded yet")
        return sum(s.container_bits * s.values for s in chosen) / sum(s.values for s in chosen)
