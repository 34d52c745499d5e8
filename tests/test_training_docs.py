"""docs/training.md's examples run as written: the README's training tour is one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_training_doc_has_the_readme_loop() -> None:
    assert len(BLOCKS) >= 2
    assert "compressed_stash" in BLOCKS[0] and "adapter.step" in BLOCKS[0]


def test_training_doc_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    torch.set_num_threads(1)
    namespace: dict[str, object] = {}
    for block in BLOCKS:
        exec(compile(block, str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    ratio = float(re.search(r"stash ([0-9.]+)x smaller", out).group(1))  # type: ignore[union-attr]
    assert ratio > 1.5, out
