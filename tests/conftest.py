"""Shared fixtures: the real-weights corpus beside the checkout (its tests skip without it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

CORPUS_DIR = Path(
    os.environ.get("SFP_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)
MINILM = CORPUS_DIR / "minilm_l6_v2.safetensors"


@pytest.fixture(scope="session")
def minilm() -> dict[str, np.ndarray]:
    """The float32 tensors of the MiniLM-L6-v2 weights, by name."""
    if not MINILM.exists():
        pytest.skip(f"corpus file {MINILM} is absent")
    from safetensors.numpy import load_file

    return {k: v for k, v in load_file(str(MINILM)).items() if v.dtype == np.float32}
