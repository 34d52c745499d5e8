"""Compressed size of a checkpoint's float tensors, lossless and at e4m2, in float32 and bfloat16.

``python bench/core_sizes.py [FILE.safetensors]`` (default: the MiniLM weights in ../shared/corpus).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import load_file

import schrodinger_fp as sfp

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "minilm_l6_v2.safetensors"
FORMATS = {"lossless": sfp.Format(), "e4m2": sfp.Format(exp_bits=4, man_bits=2)}


def main(path: Path) -> None:
    tensors = {k: v for k, v in load_file(str(path)).items() if v.dtype == np.float32}
    values = sum(t.size for t in tensors.values())
    print(f"{path.name}: {len(tensors)} float32 tensors, {values:,} values")
    header = ("dtype", "format", "bytes in", "bytes out", "ratio", "bits/value")
    print("{:<9} {:<9} {:>12} {:>12} {:>7} {:>10}".format(*header))
    for dtype in (np.float32, ml_dtypes.bfloat16):
        arrays = [t.astype(dtype) for t in tensors.values()]
        n_in = sum(a.nbytes for a in arrays)
        for label, fmt in FORMATS.items():
            start = time.perf_counter()
            n_out = sum(len(sfp.encode(a, fmt)) for a in arrays)
            seconds = time.perf_counter() - start
            name = np.dtype(dtype).name
            print(
                f"{name:<9} {label:<9} {n_in:>12,} {n_out:>12,} {n_in / n_out:>7.3f}"
                f" {8 * n_out / values:>10.3f}   ({n_in / seconds / 1e6:,.0f} MB/s encode)"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
