"""Property-testing kit: hypothesis strategies for formats and float arrays, and assertion helpers.

A framework that embeds the codec can property-test its own round trips with these, the way our
own tests do. The strategies need `hypothesis <https://hypothesis.readthedocs.io>`_ (this module is
the only one that imports it); the assertion helpers work without it.

Examples
--------
>>> from hypothesis import given, settings
>>> from schrodinger_fp import testing
>>> @settings(max_examples=20)
... @given(testing.arrays_and_formats())
... def test_roundtrip(case):
...     x, fmt = case
...     testing.assert_roundtrip(x, fmt)
>>> test_roundtrip()
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .codec import decode, encode, inspect, quantize
from .dtypes import SUPPORTED_DTYPES, WIDE_DTYPES, numpy_dtype
from .format import EXPONENT_CODINGS, FIELD_WIDTHS, ROUNDINGS, UNDERFLOWS, Format

__all__ = [
    "arrays",
    "arrays_and_formats",
    "assert_bitwise_equal",
    "assert_quantize_equal",
    "assert_roundtrip",
    "bits_of",
    "dtypes",
    "formats",
    "special_bits",
]

_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits_of(x: np.ndarray) -> np.ndarray:
    """The raw bits of a float array as unsigned integers of the same width and shape (a copy)."""
    x = np.ascontiguousarray(x)
    return x.view(_UINT[x.dtype.itemsize]).copy()


def special_bits(dtype: str) -> list[int]:
    """Bit patterns of the edge values of ``dtype``, each with both signs.

    Zero, infinity, NaNs (signalling with payload 1, quiet, all payload bits), the smallest and
    largest subnormals, the smallest normal, the largest finite value, 1, and the values just
    above 1 and just below 2 (where rounding carries).
    """
    e, m = FIELD_WIDTHS[dtype]
    inf = ((1 << e) - 1) << m
    one = ((1 << (e - 1)) - 1) << m
    base = [
        0,
        inf,
        inf | 1,
        inf | (1 << (m - 1)),
        inf | ((1 << m) - 1),
        1,
        (1 << m) - 1,
        1 << m,
        inf - 1,
        one,
        one | 1,
        one | ((1 << m) - 1),
        one | (1 << (m - 1)),
    ]
    sign = 1 << (e + m)
    return [b | s for b in base for s in (0, sign)]


def _hyp() -> Any:
    try:
        import hypothesis.strategies as st
    except ImportError as e:  # pragma: no cover - exercised only without hypothesis
        raise ImportError(
            "schrodinger_fp.testing strategies need hypothesis: pip install hypothesis"
        ) from e
    return st


def dtypes() -> Any:
    """Strategy: one of ``WIDE_DTYPES`` (names), the types every window format applies to."""
    return _hyp().sampled_from(WIDE_DTYPES)


def formats(dtype: str) -> Any:
    """Strategy: a valid :class:`~schrodinger_fp.Format` for ``dtype``.

    Widths from 1 exponent / 0 mantissa bits up to the source's (``None`` too), every rounding,
    underflow and exponent coding, explicit windows anywhere in the range they can take, seeds.
    """
    st = _hyp()
    src_e, src_m = FIELD_WIDTHS[dtype]
    bias = (1 << (src_e - 1)) - 1

    @st.composite
    def build(draw: Any) -> Format:
        exp_bits = draw(st.one_of(st.none(), st.integers(1, src_e)))
        man_bits = draw(st.one_of(st.none(), st.integers(0, src_m)))
        window_top = None
        if exp_bits is not None and exp_bits < src_e and draw(st.booleans()):
            lo, hi = (1 << exp_bits) - 1 - bias, (1 << src_e) - 2 - bias
            window_top = draw(st.integers(lo, hi))
        return Format(
            exp_bits=exp_bits,
            man_bits=man_bits,
            rounding=draw(st.sampled_from(ROUNDINGS)),
            underflow=draw(st.sampled_from(UNDERFLOWS)),
            window_top=window_top,
            seed=draw(st.integers(0, 2**64 - 1)),
            exponent_coding=draw(st.sampled_from(EXPONENT_CODINGS)),
        )

    return build()


def arrays(
    dtype: str | None = None, *, max_side: int = 12, max_dims: int = 3, non_contiguous: bool = True
) -> Any:
    """Strategy: float arrays of every supported dtype, rich in edge values.

    Shapes include 0-d and empty arrays. Elements are a mix of arbitrary bit patterns (NaN payloads
    included), the edge values of :func:`special_bits` (signed zeros, infinities, subnormals, the
    extremes) and values clustered in a few binades, as tensors are. With ``non_contiguous``, some
    arrays are strided or transposed views.
    """
    st = _hyp()
    from hypothesis.extra import numpy as hnp

    @st.composite
    def build(draw: Any) -> np.ndarray:
        name = dtype if dtype is not None else draw(dtypes())
        dt = numpy_dtype(name)
        width = 8 * dt.itemsize
        e, m = FIELD_WIDTHS[name]
        bias = (1 << (e - 1)) - 1
        centre = draw(st.integers(1, (1 << e) - 2))
        clustered = st.builds(
            lambda s, d, f: (s << (e + m)) | (max(1, min((1 << e) - 2, centre - d)) << m) | f,
            st.integers(0, 1),
            st.integers(0, 4),
            st.integers(0, (1 << m) - 1),
        )
        elements = st.one_of(
            st.integers(0, (1 << width) - 1),
            st.sampled_from(special_bits(name)),
            clustered,
            st.just(bias << m),
        )
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
        raw = draw(hnp.arrays(_UINT[dt.itemsize], shape, elements=elements))
        x = raw.view(dt)
        if non_contiguous and x.ndim >= 1 and x.size > 1:
            view = draw(st.sampled_from(["contiguous", "strided", "transposed"]))
            if view == "strided":
                x = x[::2]
            elif view == "transposed":
                x = x.T
        return x

    return build()


def arrays_and_formats(dtype: str | None = None, **array_options: Any) -> Any:
    """Strategy: ``(array, format)`` pairs, the format valid for the array's dtype."""
    st = _hyp()

    @st.composite
    def build(draw: Any) -> tuple[np.ndarray, Format]:
        name = dtype if dtype is not None else draw(dtypes())
        x = draw(arrays(name, **array_options))
        return x, draw(formats(name))

    return build()


def _dtype_name(x: np.ndarray) -> str:
    for name in SUPPORTED_DTYPES:
        if x.dtype == numpy_dtype(name):
            return name
    raise TypeError(f"dtype {x.dtype} is not supported: use {', '.join(SUPPORTED_DTYPES)}")


def assert_bitwise_equal(actual: np.ndarray, expected: np.ndarray, msg: str = "") -> None:
    """Assert two arrays have the same dtype, shape and bits (NaN payloads and zero signs included).

    Raises
    ------
    AssertionError
        Naming the first differing element and both values' bits.
    """
    prefix = f"{msg}: " if msg else ""
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        raise AssertionError(
            f"{prefix}got {actual.dtype}{actual.shape}, expected {expected.dtype}{expected.shape}"
        )
    a, b = bits_of(actual), bits_of(expected)
    diff = np.flatnonzero(a.reshape(-1) != b.reshape(-1))
    if diff.size:
        i = int(diff[0])
        idx = np.unravel_index(i, actual.shape) if actual.ndim else ()
        hexw = 2 * actual.dtype.itemsize
        raise AssertionError(
            f"{prefix}{diff.size} of {a.size} values differ; first at {tuple(int(j) for j in idx)}:"
            f" got 0x{int(a.reshape(-1)[i]):0{hexw}x} ({actual.reshape(-1)[i]!r}), expected"
            f" 0x{int(b.reshape(-1)[i]):0{hexw}x} ({expected.reshape(-1)[i]!r})"
        )


def assert_quantize_equal(actual: np.ndarray, x: np.ndarray, fmt: Format) -> None:
    """Assert ``actual`` is bit-identical to ``quantize(x, fmt)`` (a framework's rounding, say)."""
    assert_bitwise_equal(actual, quantize(x, fmt), f"quantize(x, {fmt})")


def assert_roundtrip(x: np.ndarray, fmt: Format | None = None, **encode_options: Any) -> bytes:
    """Assert ``decode(encode(x, fmt))`` is ``quantize(x, fmt)`` bit for bit (``x`` itself when
    lossless), and that ``inspect`` describes the frame; returns the frame.

    ``encode_options`` go to :func:`~schrodinger_fp.encode` (``chunk_size``, ``threads``).
    """
    x = np.asarray(x)
    fmt = Format() if fmt is None else fmt
    frame = encode(x, fmt, **encode_options)
    y = decode(frame)
    name = _dtype_name(x)
    assert_bitwise_equal(y, quantize(x, fmt), f"decode(encode(x, {fmt}))")
    if fmt.is_lossless_for(name):
        assert_bitwise_equal(y, x, "lossless decode(encode(x))")
    info = inspect(frame)
    if info.dtype != name or info.shape != x.shape:
        raise AssertionError(f"inspect says {info.dtype}{info.shape}, the array is {name}{x.shape}")
    return frame
