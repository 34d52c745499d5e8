"""Which format each tensor of a dump gets: one format, a dict, a policy, or a JSON rule file.

The JSON file has the shape that ``Policy.to_json`` writes::

    {"default": {"exp_bits": 4, "man_bits": 2} | null,
     "rules": [{"pattern": "*.bias", "format": {}}, ...]}

Patterns are ``fnmatch`` globs matched against the whole tensor name; the first rule that
matches wins; a name that no rule matches gets ``default`` (``null`` means lossless).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from schrodinger_fp.format import Format


@runtime_checkable
class FormatSource(Protocol):
    """Anything that names a format for a tensor (a ``Policy`` is one)."""

    def format_for(self, name: str) -> Format | None:
        """Return the format of tensor ``name``, or None for lossless."""
        ...


PolicyLike = Format | Mapping[str, Format] | FormatSource | None


@dataclass(frozen=True)
class FormatRules:
    """A default format and an ordered list of ``(glob, format)`` rules.

    Parameters
    ----------
    default : Format or None
        Format for names that no rule matches; None keeps them lossless.
    rules : tuple of (str, Format)
        ``fnmatch`` patterns and their formats, tried in order.
    """

    default: Format | None = None
    rules: tuple[tuple[str, Format], ...] = ()

    def format_for(self, name: str) -> Format | None:
        """Return the format of the first rule whose pattern matches ``name``.

        Parameters
        ----------
        name : str
            A tensor name.

        Returns
        -------
        Format or None
            The matching rule's format, else ``default``.
        """
        for pattern, fmt in self.rules:
            if fnmatch.fnmatchcase(name, pattern):
                return fmt
        return self.default

    @classmethod
    def from_json(cls, doc: Any) -> FormatRules:
        """Build rules from a parsed JSON document (see the module docstring).

        Parameters
        ----------
        doc : Any
            The parsed JSON value.

        Returns
        -------
        FormatRules

        Raises
        ------
        ValueError
            If the document does not have the expected shape or a format is invalid.
        """
        if not isinstance(doc, dict):
            raise ValueError(f"policy must be a JSON object, got {type(doc).__name__}")
        unknown = set(doc) - {"default", "rules"}
        if unknown:
            raise ValueError(f"policy has unknown keys {sorted(unknown)}; expected default, rules")
        default = doc.get("default")
        rules_doc = doc.get("rules", [])
        if not isinstance(rules_doc, list):
            raise ValueError("policy 'rules' must be a list")
        rules = []
        for i, rule in enumerate(rules_doc):
            if not isinstance(rule, dict) or set(rule) != {"pattern", "format"}:
                raise ValueError(f"policy rule {i} must be an object with 'pattern' and 'format'")
            if not isinstance(rule["pattern"], str):
                raise ValueError(f"policy rule {i}: pattern must be a string")
            rules.append((rule["pattern"], _format_from(rule["format"], f"rule {i}")))
        return cls(
            default=None if default is None else _format_from(default, "default"),
            rules=tuple(rules),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FormatRules:
        """Read rules from a JSON file.

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file.

        Returns
        -------
        FormatRules

        Raises
        ------
        OSError
            If the file cannot be read.
        ValueError
            If it is not valid JSON or not a valid policy.
        """
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        try:
            return cls.from_json(doc)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None


def _format_from(doc: Any, where: str) -> Format:
    """Build a ``Format`` from its dict, naming ``where`` in errors."""
    if not isinstance(doc, dict):
        raise ValueError(f"policy {where}: format must be an object, got {doc!r}")
    try:
        return Format.from_dict(doc)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"policy {where}: invalid format {doc!r}: {exc}") from None


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
