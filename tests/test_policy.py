"""Policy: rules, default, history, JSON round trip, errors."""

from __future__ import annotations

import json

import pytest

import schrodinger_fp as sfp
from schrodinger_fp.training.policy import Change


def test_first_matching_rule_wins_then_default() -> None:
    p = sfp.Policy(
        sfp.Format(man_bits=7),
        [("*.bias", sfp.Format()), ("fc*", sfp.Format(exp_bits=5, man_bits=2))],
    )
    assert p.format_for("fc1.bias") == sfp.Format()
    assert p.format_for("fc1.weight") == sfp.Format(exp_bits=5, man_bits=2)
    assert p.format_for("conv.weight") == sfp.Format(man_bits=7)
    assert sfp.Policy().format_for("x") is None


def test_set_records_only_effective_changes_and_takes_precedence() -> None:
    p = sfp.Policy(rules=[("*", sfp.Format(man_bits=10))])
    p.set("a.weight", sfp.Format(man_bits=10), step=1)  # same effective format: not recorded
    p.set("a.weight", sfp.Format(man_bits=4), step=2)
    p.set("a.weight", sfp.Format(man_bits=3), step=5)
    assert p.format_for("a.weight") == sfp.Format(man_bits=3)
    assert p.format_for("b.weight") == sfp.Format(man_bits=10)
    assert [(c.step, c.old, c.new) for c in p.history] == [
        (2, sfp.Format(man_bits=10), sfp.Format(man_bits=4)),
        (5, sfp.Format(man_bits=4), sfp.Format(man_bits=3)),
    ]
    assert [s for s, _ in p.series("a.weight")] == [None, 2, 5]


def test_set_escapes_glob_characters_in_names() -> None:
    p = sfp.Policy()
    p.set("layer[0]*", sfp.Format(man_bits=1))
    assert p.format_for("layer[0]*") == sfp.Format(man_bits=1)
    assert p.format_for("layer0x") is None


def test_json_round_trip_exact_shape(tmp_path) -> None:
    p = sfp.Policy(sfp.Format(man_bits=7, rounding="stochastic", seed=3))
    p.set_rule("*.bias", sfp.Format())
    p.set("fc.weight", sfp.Format(exp_bits=4, man_bits=2), step=9)
    d = json.loads(p.to_json())
    assert set(d) == {"default", "rules", "history"}
    assert d["default"] == sfp.Format(man_bits=7, rounding="stochastic", seed=3).to_dict()
    assert d["rules"][0] == {"pattern": "fc.weight", "format": {"exp_bits": 4, "man_bits": 2}}
    assert d["history"][-1]["step"] == 9
    q = sfp.Policy.from_json(p.to_json())
    assert q == p
    path = tmp_path / "policy.json"
    p.save(path)
    assert sfp.Policy.load(path) == p
    minimal = sfp.Policy.from_dict({"default": None, "rules": []})
    assert minimal == sfp.Policy()
    assert Change.from_dict(p.history[-1].to_dict()) == p.history[-1]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"default": None, "rules": [], "extra": 1}, "extra"),
        ({"rules": "nope"}, "nope"),
        ({"rules": [{"pattern": "a"}]}, "'pattern': 'a'"),
        ({"rules": [{"pattern": "a", "format": None}]}, "null format"),
        ({"default": 5}, "5"),
        ({"history": [{"step": "x", "tensor": "a"}]}, "step='x'"),
        ([], r"\[\]"),
    ],
)
def test_from_dict_rejects_bad_input_naming_it(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sfp.Policy.from_dict(bad)  # type: ignore[arg-type]


def test_type_errors_name_the_value() -> None:
    with pytest.raises(TypeError, match="7"):
        sfp.Policy(default=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'m7'"):
        sfp.Policy().set("a", "m7")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="3"):
        sfp.Policy().format_for(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'zz'"):
        sfp.Policy().remove_rule("zz")
