"""The target container of a tensor: exponent and mantissa bits to keep, and how to round."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from . import _core

ROUNDINGS: tuple[str, ...] = tuple(_core.ROUNDINGS)
UNDERFLOWS: tuple[str, ...] = tuple(_core.UNDERFLOWS)
EXPONENT_CODINGS: tuple[str, ...] = tuple(_core.EXPONENT_CODINGS)
#: The coding level of ``Format()`` and the largest one (see :class:`Format`).
DEFAULT_LEVEL: int = _core.DEFAULT_LEVEL
MAX_LEVEL: int = _core.MAX_LEVEL

#: The named and block-scaled containers (see :meth:`Format.named`).
CONTAINERS: tuple[str, ...] = tuple(_core.CONTAINERS)
#: The block-scaled containers among them.
BLOCK_FORMATS: tuple[str, ...] = tuple(_core.BLOCK_FORMATS)

#: (exponent bits, mantissa bits) of each source type.
FIELD_WIDTHS: dict[str, tuple[int, int]] = {
    "float32": (8, 23),
    "float64": (11, 52),
    "float16": (5, 10),
    "bfloat16": (8, 7),
    "float8_e4m3fn": (4, 3),
    "float8_e5m2": (5, 2),
    "float8_e8m0fnu": (8, 0),
    "float6_e2m3fn": (2, 3),
    "float6_e3m2fn": (3, 2),
    "float4_e2m1fn": (2, 1),
}

#: Bits of an element of each block format, and values per block scale (one byte each; NVFP4 adds
#: one float32 per tensor).
_BLOCK_BITS: dict[str, tuple[int, int]] = {
    "mxfp8_e4m3": (8, 32),
    "mxfp8_e5m2": (8, 32),
    "mxfp6_e2m3": (6, 32),
    "mxfp6_e3m2": (6, 32),
    "mxfp4": (4, 32),
    "nvfp4": (4, 16),
}


def as_int(name: str, value: object) -> int:
    """``value`` as an ``int``: Python and numpy integers are integers, ``bool`` is not.

    Raises
    ------
    TypeError
        For anything else.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    number = as_int(name, value)
    if number < low or (high is not None and number > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name}={number} is outside {bound}")
    return number


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, choices))}")


@dataclass(frozen=True)
class Format:
    """A float container: sign, ``exp_bits`` exponent bits and ``man_bits`` mantissa bits.

    Parameters
    ----------
    exp_bits
        Exponent bits to keep, 1 up to the source's width. ``None`` keeps the source exponent field
        as it is. Fewer bits keep a window of ``2**exp_bits - 1`` consecutive exponents plus a code
        for zero.
    man_bits
        Mantissa bits to keep, 0 up to the source's width. ``None`` keeps the source mantissa.
    rounding
        ``"nearest"`` (ties to even), ``"truncate"`` (toward zero) or ``"stochastic"`` (unbiased,
        random bits keyed by ``seed`` and the element's index).
    underflow
        Values below the window: ``"flush"`` to signed zero, or ``"stochastic"`` to zero or the
        smallest window value, keeping the mean.
    window_top
        Unbiased exponent of the largest binade kept (values below ``2**(window_top+1)``);
        ``None`` places it at the array's largest finite exponent after rounding, so nothing
        saturates. Only with a reduced exponent.
    seed
        Key of the random bits of the stochastic modes (0 .. 2**64-1).
    exponent_coding
        How the exponent stream is coded; ``"auto"`` chooses per chunk, as ``level`` says.
    level
        How ``"auto"`` weighs size against speed, in the spirit of zstd's levels: ``1`` codes one
        Huffman symbol per value (exponent with the sign and top mantissa bits) and packs the
        rest; ``2`` (the default) also Huffman-codes mantissa byte lanes where that saves enough
        to pay for decoding them; ``3`` keeps the smallest frame whatever it costs to decode (rANS,
        Gecko, coded mantissa lanes). Every level decodes with the same ``decode``.
    container
        A named container instead of the widths: a real type (``"float8_e4m3fn"``,
        ``"float8_e5m2"``, ``"float6_e2m3fn"``, ``"float6_e3m2fn"``, ``"float4_e2m1fn"``,
        ``"float16"``, ``"bfloat16"``, ``"float32"``), whose ``quantize`` is the ml_dtypes cast
        there and back, or the same with ``"_satfinite"`` (finite overflow and infinities to the
        largest finite value); or a block-scaled format (``"mxfp8_e4m3"``, ``"mxfp8_e5m2"``,
        ``"mxfp6_e2m3"``, ``"mxfp6_e3m2"``, ``"mxfp4"``, ``"nvfp4"``). See :meth:`named`.

    ``Format()`` is lossless.
    """

    exp_bits: int | None = None
    man_bits: int | None = None
    rounding: str = "nearest"
    underflow: str = "flush"
    window_top: int | None = None
    seed: int = 0
    exponent_coding: str = "auto"
    level: int = DEFAULT_LEVEL
    container: str | None = None

    @classmethod
    def named(cls, name: str, **coding: Any) -> Format:
        """The container ``name``: a real type or a block-scaled format (see ``container``).

        A named format differs from a window format: it keeps the type's own exponent range
        (fixed bias, subnormals, its overflow to infinity or NaN), not a window placed at the
        array's largest value, so ``quantize`` equals the cast. ``coding`` may set
        ``exponent_coding`` and ``level`` of the stored parts.

        Raises
        ------
        ValueError
            For an unknown name, or a ``coding`` field other than those two.
        """
        extra = sorted(set(coding) - {"exponent_coding", "level"})
        if extra:
            raise ValueError(
                f"Format.named({name!r}) takes only exponent_coding and level, got {extra}"
            )
        return cls(container=name, **coding)

    def __post_init__(self) -> None:
        # Numpy integers are stored as ints, so formats compare, hash and serialise as one.
        if self.exp_bits is not None:
            object.__setattr__(self, "exp_bits", _check_int("exp_bits", self.exp_bits, 1, 11))
        if self.man_bits is not None:
            object.__setattr__(self, "man_bits", _check_int("man_bits", self.man_bits, 0, 52))
        _check_choice("rounding", self.rounding, ROUNDINGS)
        _check_choice("underflow", self.underflow, UNDERFLOWS)
        _check_choice("exponent_coding", self.exponent_coding, EXPONENT_CODINGS)
        object.__setattr__(self, "level", _check_int("level", self.level, 1, MAX_LEVEL))
        if self.window_top is not None:
            top = _check_int("window_top", self.window_top, -1100, 1100)
            object.__setattr__(self, "window_top", top)
            if self.exp_bits is None:
                raise ValueError(f"window_top={self.window_top} needs exp_bits")
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0, 2**64 - 1))
        if self.container is not None:
            _check_choice("container", self.container, CONTAINERS)
            fixed = ("exp_bits", "man_bits", "window_top", "rounding", "underflow")
            default = _WINDOW_DEFAULTS
            changed = [f for f in fixed if getattr(self, f) != getattr(default, f)]
            if changed:
                raise ValueError(
                    f"container={self.container!r} fixes the widths and rounds to nearest even: "
                    f"{changed[0]} cannot be set with it"
                )

    @property
    def is_block(self) -> bool:
        """True for a block-scaled container (MX, NVFP4)."""
        return self.container in BLOCK_FORMATS

    def widths(self, dtype: str) -> tuple[int, int]:
        """The (exponent, mantissa) bits this format keeps of ``dtype``.

        Raises
        ------
        ValueError
            When a width exceeds the source's.
        """
        src_e, src_m = FIELD_WIDTHS[dtype]
        if self.container is not None and not self.is_block:
            named = self.container.removesuffix("_satfinite")
            return FIELD_WIDTHS[named]
        if self.is_block:
            element = {"mxfp8_e4m3": "float8_e4m3fn", "mxfp8_e5m2": "float8_e5m2"}
            element.update(mxfp6_e2m3="float6_e2m3fn", mxfp6_e3m2="float6_e3m2fn")
            return FIELD_WIDTHS[element.get(str(self.container), "float4_e2m1fn")]
        e = src_e if self.exp_bits is None else self.exp_bits
        m = src_m if self.man_bits is None else self.man_bits
        if e > src_e:
            raise ValueError(f"exp_bits={e} exceeds {dtype}'s {src_e}")
        if m > src_m:
            raise ValueError(f"man_bits={m} exceeds {dtype}'s {src_m}")
        return e, m

    def is_lossless_for(self, dtype: str) -> bool:
        """True when this format keeps every bit of ``dtype``."""
        return self.container is None and self.widths(dtype) == FIELD_WIDTHS[dtype]

    def bits_per_value(self, dtype: str) -> float:
        """Bits of the container before any coding: sign + exponent + mantissa (a block format
        adds its scale's share; float8_e8m0fnu has no sign bit)."""
        if self.is_block:
            element, block = _BLOCK_BITS[str(self.container)]
            return element + 8 / block
        e, m = self.widths(dtype)
        sign = 0 if self.container is None and dtype == "float8_e8m0fnu" else 1
        return sign + e + m

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, ready for JSON."""
        default = Format()
        return {k: v for k, v in asdict(self).items() if v != getattr(default, k)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Format:
        """The format described by ``d`` (as written by :meth:`to_dict`).

        Raises
        ------
        ValueError
            For a key that is not a field.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Format field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def of(cls, value: Format | dict[str, Any] | None) -> Format:
        """The format given as a ``Format``, as its dict (see :meth:`to_dict`), or ``None``
        (lossless).

        Raises
        ------
        TypeError
            For anything else.
        """
        if value is None:
            return cls()
        if isinstance(value, Format):
            return value
        if isinstance(value, dict):
            return cls.from_dict(value)
        raise TypeError(f"format must be a Format or a dict, got {type(value).__name__}")

    def __str__(self) -> str:
        if self.container is not None:
            return self.container
        e = "E" if self.exp_bits is None else str(self.exp_bits)
        m = "M" if self.man_bits is None else str(self.man_bits)
        if self.exp_bits is None and self.man_bits is None:
            return "lossless"
        return f"e{e}m{m} {self.rounding}"


_WINDOW_DEFAULTS = Format()
