"""Policy: which container format each named tensor is stored in.

A :class:`Policy` maps tensor names to :class:`~schrodinger_fp.Format` objects
through an ordered list of glob rules (first match wins) and a default.
Controllers write to it, the codec and the adapters read from it, and every
change of a tensor's effective format is recorded so that a run's bitlength
history can be plotted and replayed.

The JSON shape is fixed (the ``sfp`` command reads it)::

    {"default": {format dict} | null,
     "rules": [{"pattern": "<fnmatch glob>", "format": {format dict}}],
     "history": [{"step": 3, "tensor": "fc.weight", "old": {...} | null,
                  "new": {...} | null}]}
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..format import Format

__all__ = ["Change", "FormatSource", "Policy", "PolicyLike", "format_lookup"]


def _check_format(fmt: object, what: str) -> Format | None:
    if fmt is None or isinstance(fmt, Format):
        return fmt
    raise TypeError(f"{what} must be a schrodinger_fp.Format or None, got {fmt!r}")


def _fmt_to_dict(fmt: Format | None) -> dict[str, Any] | None:
    return None if fmt is None else fmt.to_dict()


def _fmt_from_dict(d: object, what: str) -> Format | None:
    if d is None:
        return None
    if not isinstance(d, Mapping):
        raise ValueError(f"{what} must be a format dict or null, got {d!r}")
    try:
        return Format.from_dict(dict(d))
    except TypeError as exc:  # unknown keys
        raise ValueError(f"{what}={d!r} is not a valid format dict: {exc}") from exc


@dataclass(frozen=True)
class Change:
    """One recorded change of a tensor's effective format.

    Attributes
    ----------
    step : int or None
        Training step at which the change was made (None: outside training).
    tensor : str
        The tensor name, or the rule pattern / ``"<default>"`` for changes that
        are not tied to one name.
    old, new : Format or None
        Effective format before and after (None: stored as is).
    """

    step: int | None
    tensor: str
    old: Format | None
    new: Format | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready dict of this change."""
        return {
            "step": self.step,
            "tensor": self.tensor,
            "old": _fmt_to_dict(self.old),
            "new": _fmt_to_dict(self.new),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Change:
        """Build a change from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            If a key is missing or a value has the wrong type.
        """
        if not isinstance(d, Mapping) or "tensor" not in d:
            raise ValueError(f"history entry {d!r} needs at least a 'tensor' key")
        step = d.get("step")
        if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
            raise ValueError(f"history step={step!r} must be an integer or null")
        tensor = d["tensor"]
        if not isinstance(tensor, str):
            raise ValueError(f"history tensor={tensor!r} must be a string")
        return cls(
            step,
            tensor,
            _fmt_from_dict(d.get("old"), "history old"),
            _fmt_from_dict(d.get("new"), "history new"),
        )


DEFAULT_NAME = "<default>"


class Policy:
    """Tensor name -> :class:`Format`, by glob rules and a default.

    Parameters
    ----------
    default : Format or None
        Format of tensors that no rule matches (None: keep them as they are).
    rules : iterable of (pattern, Format)
        :mod:`fnmatch` globs over tensor names, tried in order; the first
        match wins.

    Examples
    --------
    >>> import schrodinger_fp as sfp
    >>> p = sfp.Policy(sfp.Format(man_bits=7), [("*.bias", sfp.Format())])
    >>> p.format_for("fc.bias") == sfp.Format()
    True
    >>> p.format_for("fc.weight").man_bits
    7
    """

    def __init__(
        self,
        default: Format | None = None,
        rules: Iterable[tuple[str, Format]] = (),
    ) -> None:
        self._default = _check_format(default, "default")
        self._rules: list[tuple[str, Format]] = []
        self._history: list[Change] = []
        # name -> format, valid until the rules or the default change (a training step looks up
        # hundreds of names against hundreds of one-name rules)
        self._lookups: dict[str, Format | None] = {}
        for pattern, fmt in rules:
            self._rules.append((self._check_pattern(pattern), self._check_rule_format(fmt)))

    # -- reading ---------------------------------------------------------
    @property
    def default(self) -> Format | None:
        """Format of tensors that no rule matches."""
        return self._default

    @property
    def rules(self) -> list[tuple[str, Format]]:
        """A copy of the ordered (pattern, format) rules."""
        return list(self._rules)

    @property
    def history(self) -> list[Change]:
        """A copy of the recorded changes, oldest first."""
        return list(self._history)

    def format_for(self, name: str) -> Format | None:
        """Return the format of tensor ``name``: first matching rule, else the default.

        Raises
        ------
        TypeError
            If ``name`` is not a string.
        """
        if not isinstance(name, str):
            raise TypeError(f"tensor name must be a string, got {name!r}")
        if name in self._lookups:
            return self._lookups[name]
        found = self._default
        for pattern, fmt in self._rules:
            if fnmatch.fnmatchcase(name, pattern):
                found = fmt
                break
        self._lookups[name] = found
        return found

    def series(self, name: str) -> list[tuple[int | None, Format | None]]:
        """Return the (step, new format) changes recorded for tensor ``name``.

        The first entry is (None, format before the first change) when a
        change was recorded, so the series can be plotted from the start.
        """
        changes = [c for c in self._history if c.tensor == name]
        if not changes:
            return [(None, self.format_for(name))]
        return [(None, changes[0].old)] + [(c.step, c.new) for c in changes]

    # -- writing ---------------------------------------------------------
    def set_default(self, fmt: Format | None, *, step: int | None = None) -> None:
        """Replace the default format, recording the change.

        Raises
        ------
        TypeError
            If ``fmt`` is not a Format or None.
        """
        fmt = _check_format(fmt, "default")
        self._lookups.clear()
        if fmt != self._default:
            self._history.append(Change(step, DEFAULT_NAME, self._default, fmt))
        self._default = fmt

    def set_rule(self, pattern: str, fmt: Format, *, step: int | None = None) -> None:
        """Set the format of a glob rule.

        An existing rule with the same pattern is replaced in place; a new
        rule goes first, so it takes precedence over older ones.

        Raises
        ------
        TypeError
            If ``pattern`` is not a string or ``fmt`` not a Format.
        ValueError
            If ``pattern`` is empty.
        """
        pattern = self._check_pattern(pattern)
        fmt = self._check_rule_format(fmt)
        self._lookups.clear()
        for i, (p, old) in enumerate(self._rules):
            if p == pattern:
                if old != fmt:
                    self._rules[i] = (pattern, fmt)
                    self._history.append(Change(step, pattern, old, fmt))
                return
        self._rules.insert(0, (pattern, fmt))
        self._history.append(Change(step, pattern, None, fmt))

    def set(self, name: str, fmt: Format, *, step: int | None = None) -> None:
        """Set the format of exactly one tensor (what controllers call).

        Adds or replaces a rule matching only ``name`` and records
        (step, name, old effective format, new) when the effective format
        changes; nothing is recorded when it stays the same.

        Raises
        ------
        TypeError
            If ``name`` is not a string or ``fmt`` not a Format.
        """
        if not isinstance(name, str):
            raise TypeError(f"tensor name must be a string, got {name!r}")
        fmt = self._check_rule_format(fmt)
        old = self.format_for(name)
        pattern = glob.escape(name)
        for i, (p, current) in enumerate(self._rules):
            if p == pattern:
                if current == fmt:
                    return  # the same rule again: nothing changes
                self._rules[i] = (pattern, fmt)
                break
        else:
            self._rules.insert(0, (pattern, fmt))
        # the escaped pattern matches ``name`` alone: every other cached lookup stays right
        self._lookups.pop(name, None)
        if old != fmt:
            self._history.append(Change(step, name, old, fmt))

    def remove_rule(self, pattern: str) -> None:
        """Remove the rule with this exact pattern.

        Raises
        ------
        ValueError
            If no rule has this pattern.
        """
        for i, (p, fmt) in enumerate(self._rules):
            if p == pattern:
                del self._rules[i]
                self._lookups.clear()
                self._history.append(Change(None, pattern, fmt, None))
                return
        raise ValueError(f"no rule with pattern {pattern!r}")

    # -- serialisation ---------------------------------------------------
    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        """Return the JSON-ready dict (shape in the module docstring)."""
        d: dict[str, Any] = {
            "default": _fmt_to_dict(self._default),
            "rules": [{"pattern": p, "format": f.to_dict()} for p, f in self._rules],
        }
        if history:
            d["history"] = [c.to_dict() for c in self._history]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Policy:
        """Build a policy from :meth:`to_dict` output (``history`` optional).

        Raises
        ------
        ValueError
            If the dict does not have the policy shape.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"policy must be a JSON object, got {d!r}")
        unknown = set(d) - {"default", "rules", "history"}
        if unknown:
            raise ValueError(f"unknown policy keys {sorted(unknown)}")
        rules_in = d.get("rules", [])
        if not isinstance(rules_in, list):
            raise ValueError(f"policy rules must be a list, got {rules_in!r}")
        rules: list[tuple[str, Format]] = []
        for r in rules_in:
            if not isinstance(r, Mapping) or set(r) != {"pattern", "format"}:
                raise ValueError(f"rule {r!r} must be {{'pattern': str, 'format': dict}}")
            fmt = _fmt_from_dict(r["format"], f"format of rule {r['pattern']!r}")
            if fmt is None:
                raise ValueError(f"rule {r['pattern']!r} has a null format")
            rules.append((r["pattern"], fmt))
        policy = cls(_fmt_from_dict(d.get("default"), "default"), rules)
        history = d.get("history", [])
        if not isinstance(history, list):
            raise ValueError(f"policy history must be a list, got {history!r}")
        policy._history = [Change.from_dict(c) for c in history]
        return policy

    def to_json(self, *, history: bool = True, indent: int | None = 2) -> str:
        """Return the policy as a JSON string."""
        return json.dumps(self.to_dict(history=history), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Policy:
        """Parse a policy from a JSON string.

        Raises
        ------
        ValueError
            If the text is not JSON or not a policy.
        """
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"policy is not valid JSON: {exc}") from None
        return cls.from_dict(doc)

    def save(self, path: str | os.PathLike[str], *, history: bool = True) -> None:
        """Write the policy as JSON to ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json(history=history))
            f.write("\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read a policy written by :meth:`save`; errors name the file."""
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            return cls.from_json(text)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Policy):
            return NotImplemented
        return (self._default, self._rules, self._history) == (
            other._default,
            other._rules,
            other._history,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Policy(default={self._default!r}, rules={self._rules!r})"

    # -- helpers ---------------------------------------------------------
    @staticmethod
    def _check_pattern(pattern: object) -> str:
        if not isinstance(pattern, str):
            raise TypeError(f"rule pattern must be a string, got {pattern!r}")
        if not pattern:
            raise ValueError("rule pattern must not be empty")
        return pattern

    @staticmethod
    def _check_rule_format(fmt: object) -> Format:
        if not isinstance(fmt, Format):
            raise TypeError(f"rule format must be a schrodinger_fp.Format, got {fmt!r}")
        return fmt


@runtime_checkable
class FormatSource(Protocol):
    """Anything that names a format for a tensor (a :class:`Policy` is one)."""

    def format_for(self, name: str) -> Format | None:
        """Return the format of tensor ``name``, or None for lossless."""
        ...


PolicyLike = Format | Mapping[str, Format] | FormatSource | None


def format_lookup(policy: PolicyLike) -> Callable[[str], Format | None]:
    """Turn any accepted ``policy`` into a function from tensor name to format.

    Parameters
    ----------
    policy : Format, Mapping[str, Format], object with ``format_for``, or None
        One format for every tensor; a dict (names it lacks stay lossless); a policy; or
        None for lossless everywhere.

    Returns
    -------
    callable
        ``name -> Format | None``.

    Raises
    ------
    TypeError
        If ``policy`` is none of the above, or a dict holds something other than a Format.
    """
    if policy is None:
        return lambda name: None
    if isinstance(policy, Format):
        return lambda name: policy
    if isinstance(policy, Mapping):
        for key, value in policy.items():
            if not isinstance(value, Format) and value is not None:
                raise TypeError(f"policy[{key!r}] must be a Format, got {type(value).__name__}")
        return lambda name: policy.get(name)
    if isinstance(policy, FormatSource):
        return policy.format_for
    raise TypeError(
        "policy must be a Format, a dict name -> Format, or an object with format_for(name), "
        f"got {type(policy).__name__}"
    )
