"""Write the suite's lossless cases as raw little-endian files, for the Rust profile bench.

``cargo bench -p sfp-core --bench profile -- FILE REPEATS FILTER`` (with ``SFP_PROF_DTYPE``) and
callgrind runs of it read one raw file; this writes the MiniLM weights as float32, bfloat16 and
float16 and the GELU and ReLU activations as bfloat16, made exactly as ``bench/suite.py`` makes
them (``peers.weights``, ``peers.activations``, ``peers.cast``).

Usage: ``python bench/raw_cases.py [FOLDER]`` (default ``/tmp/sfp_raw``); prints each file with
the ``SFP_PROF_DTYPE`` it takes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import peers

PROF_DTYPE = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


def cases() -> dict[str, tuple[np.ndarray, str]]:
    """Each case's file stem, its array and its dtype name."""
    tensors = peers.load_tensors()
    weights = peers.weights(tensors)
    act = peers.activations(tensors)
    out: dict[str, tuple[np.ndarray, str]] = {}
    for dtype in ("float32", "bfloat16", "float16"):
        out[f"weights_{dtype}"] = (peers.cast(weights, dtype), dtype)
    for kind in ("gelu", "relu"):
        out[f"{kind}_bfloat16"] = (peers.cast(act[kind], "bfloat16"), "bfloat16")
    return out


def main() -> None:
    """Write every case to the folder given (or ``/tmp/sfp_raw``)."""
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/sfp_raw")
    folder.mkdir(parents=True, exist_ok=True)
    for stem, (array, dtype) in cases().items():
        path = folder / f"{stem}.raw"
        array.tofile(path)
        print(f"SFP_PROF_DTYPE={PROF_DTYPE[dtype]} {path}")


if __name__ == "__main__":
    main()
