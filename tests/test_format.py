"""Format: validation at construction, widths per dtype, dict round trip."""

from __future__ import annotations

import pytest

import schrodinger_fp as sfp


def test_defaults_are_lossless_for_every_dtype() -> None:
    for dtype in sfp.WIDE_DTYPES:
        assert sfp.Format().is_lossless_for(dtype)
    assert str(sfp.Format()) == "lossless"


def test_widths_keep_the_source_field_when_none() -> None:
    assert sfp.Format(man_bits=2).widths("float32") == (8, 2)
    assert sfp.Format(exp_bits=4).widths("bfloat16") == (4, 7)
    assert sfp.Format(exp_bits=4, man_bits=2).bits_per_value("float64") == 7
    assert str(sfp.Format(exp_bits=4, man_bits=2)) == "e4m2 nearest"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"exp_bits": 0}, ValueError, "exp_bits=0 is outside 1..11"),
        ({"man_bits": -1}, ValueError, "man_bits=-1 is outside 0..52"),
        ({"exp_bits": "4"}, TypeError, "exp_bits must be an int, got str '4'"),
        ({"man_bits": True}, TypeError, "man_bits must be an int"),
        ({"rounding": "up"}, ValueError, "rounding='up' is not one of 'truncate', 'nearest'"),
        ({"underflow": "clamp"}, ValueError, "underflow='clamp' is not one of"),
        ({"exponent_coding": "lz4"}, ValueError, "exponent_coding='lz4' is not one of"),
        ({"window_top": 3}, ValueError, "window_top=3 needs exp_bits"),
        ({"seed": -1}, ValueError, "seed=-1 is outside"),
        ({"seed": 2**64}, ValueError, "seed=18446744073709551616 is outside"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(".", r"\.")):
        sfp.Format(**kwargs)


def test_widths_beyond_the_source_are_rejected_with_the_dtype() -> None:
    with pytest.raises(ValueError, match="man_bits=31 exceeds float32's 23"):
        sfp.Format(man_bits=31).widths("float32")
    with pytest.raises(ValueError, match="exp_bits=9 exceeds bfloat16's 8"):
        sfp.Format(exp_bits=9).widths("bfloat16")


def test_dict_round_trip_keeps_only_non_defaults() -> None:
    fmt = sfp.Format(exp_bits=3, man_bits=1, rounding="stochastic", seed=7, window_top=-2)
    d = fmt.to_dict()
    assert d == {
        "exp_bits": 3,
        "man_bits": 1,
        "rounding": "stochastic",
        "seed": 7,
        "window_top": -2,
    }
    assert sfp.Format.from_dict(d) == fmt
    assert sfp.Format().to_dict() == {}
    with pytest.raises(ValueError, match=r"unknown Format field\(s\) \['bits'\]"):
        sfp.Format.from_dict({"bits": 3})


def test_formats_are_hashable_values() -> None:
    assert len({sfp.Format(man_bits=2), sfp.Format(man_bits=2), sfp.Format()}) == 2
