"""Learned bitlengths stored in named containers: the smallest of a given set that holds them."""

from __future__ import annotations

from collections.abc import Iterable

from ...format import CONTAINERS, FIELD_WIDTHS, Format

__all__ = ["NamedContainers"]


class NamedContainers:
    """Chooses, for each tensor, the smallest named container whose exponent and mantissa fields
    hold the widths its controllers learned ("learn the bitlength, store the nearest container").

    Give the same instance to a :class:`QuantumMantissa` and a :class:`QuantumExponent` so that
    each sees the width the other learned; a field no controller learns keeps the source's width.
    A named type keeps its own exponent range (no window), so it holds a tensor's values only when
    they lie in that range; the block formats (``"mxfp8_e4m3"``, ...) scale each block of 32
    into it.

    Parameters
    ----------
    names : iterable of str
        Container names (``sfp.CONTAINERS``), for example
        ``["float8_e4m3fn", "float8_e5m2", "bfloat16"]``. When none holds the widths, the tensor
        is stored as it is (lossless).

    Raises
    ------
    ValueError
        For an unknown or repeated name, or an empty set.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names = list(names)
        if not self.names:
            raise ValueError("NamedContainers needs at least one container name")
        for name in self.names:
            if name not in CONTAINERS:
                raise ValueError(f"container {name!r} is not one of {', '.join(CONTAINERS)}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"container names repeat: {self.names}")
        self.widths: dict[str, dict[str, int]] = {}

    def choose(self, tensor: str, dtype: str, kind: str, bits: int) -> Format:
        """Record that ``tensor`` (of ``dtype``) needs ``bits`` in field ``kind`` ("man" or
        "exp"), and return the container to store it in."""
        e, m = FIELD_WIDTHS[dtype]
        learned = self.widths.setdefault(tensor, {"exp": e, "man": m})
        learned[kind] = bits
        fits = [
            Format.named(n)
            for n in self.names
            if all(
                have >= need
                for have, need in zip(
                    Format.named(n).widths(dtype), (learned["exp"], learned["man"]), strict=True
                )
            )
        ]
        if not fits:
            return Format()
        return min(fits, key=lambda f: (f.bits_per_value(dtype), self.names.index(str(f))))
