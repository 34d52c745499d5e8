"""A real text-classification task found on every machine: which stdlib package a docstring is from.

The docstrings of the functions, classes and methods of a fixed list of
standard-library packages, read with :mod:`inspect` from the installed Python
at run time (no download). Each docstring is labelled with its package; the
split into train and test is a fixed shuffle of the docstrings.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import random
import warnings
from dataclasses import dataclass

#: Packages with several hundred docstrings each, of different topics.
PACKAGES = (
    "asyncio",
    "email",
    "xml",
    "unittest",
    "multiprocessing",
    "http",
    "logging",
    "importlib",
)


@dataclass(frozen=True)
class Docstrings:
    """Texts and package labels, split into train and test."""

    labels: tuple[str, ...]
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]


def _modules(package: str) -> list[object]:
    root = importlib.import_module(package)
    out = [root]
    for info in pkgutil.walk_packages(getattr(root, "__path__", []), prefix=f"{package}."):
        if any(part.startswith("_") or part == "test" for part in info.name.split(".")[1:]):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(importlib.import_module(info.name))
        except Exception:
            continue
    return out


def _docstrings(package: str) -> set[str]:
    texts: set[str] = set()
    for module in _modules(package):
        for _, obj in inspect.getmembers(module):
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if not (getattr(obj, "__module__", None) or "").startswith(package):
                continue
            members = [obj]
            if inspect.isclass(obj):
                members += [m for _, m in inspect.getmembers(obj, inspect.isfunction)]
            for m in members:
                if not (getattr(m, "__module__", None) or "").startswith(package):
                    continue
                doc = inspect.getdoc(m)
                if doc and len(doc) >= 20:
                    texts.add(" ".join(doc.split())[:300])
    return texts


def load(test_share: float = 0.25, seed: int = 0) -> Docstrings:
    """Read the docstrings of :data:`PACKAGES` (a docstring found in two packages is dropped)."""
    found = {p: _docstrings(p) for p in PACKAGES}
    counts: dict[str, int] = {}
    for texts in found.values():
        for t in texts:
            counts[t] = counts.get(t, 0) + 1
    rows = [(t, i) for i, p in enumerate(PACKAGES) for t in sorted(found[p]) if counts[t] == 1]
    random.Random(seed).shuffle(rows)
    n_test = int(test_share * len(rows))
    return Docstrings(PACKAGES, rows[n_test:], rows[:n_test])


if __name__ == "__main__":
    d = load()
    print(
        len(d.train),
        len(d.test),
        {p: sum(1 for _, i in d.train if i == k) for k, p in enumerate(d.labels)},
    )
