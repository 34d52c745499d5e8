"""Zarr v3 arrays with the schrodinger-fp codec alone and with Zarr's default zstd on top.

The codec codes each chunk completely, so zstd over its frames has little left to find. This
prints, for the MiniLM-L6-v2 weights of the shared corpus (or a synthetic stand-in when it is
absent), the stored bytes and the write and read times of both arrays, measured in the same run,
as ratios of the zstd-stacked array to the codec alone.

    python bench/zarr_compressors.py [REPEATS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import zarr
from zarr.storage import MemoryStore

from schrodinger_fp.storage.tensorfiles import open_tensors
from schrodinger_fp.zarr import SchrodingerFPCodec

CORPUS = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "minilm_l6_v2.safetensors"
)


def weights() -> tuple[str, np.ndarray]:
    """The corpus weights as one float32 vector, or a normal sample of the same size."""
    if CORPUS.is_file():
        tensors = open_tensors(CORPUS)
        parts = [
            np.asarray(a, np.float32).reshape(-1)
            for _, a in tensors.items()
            if a.dtype == np.float32
        ]
        return "MiniLM-L6-v2 weights", np.concatenate(parts)
    rng = np.random.default_rng(0)
    return "normal(0, 0.05) sample", (rng.standard_normal(22_700_000) * 0.05).astype(np.float32)


def measure(x: np.ndarray, compressors: object) -> tuple[int, float, float]:
    """Stored bytes, write and read seconds of ``x`` in a Zarr array."""
    store = MemoryStore()
    z = zarr.create_array(
        store=store,
        shape=x.shape,
        chunks=(1 << 20,),
        dtype="float32",
        serializer=SchrodingerFPCodec(),
        compressors=compressors,
    )
    started = time.perf_counter()
    z[:] = x
    write = time.perf_counter() - started
    started = time.perf_counter()
    back = z[:]
    read = time.perf_counter() - started
    assert back.tobytes() == x.tobytes()
    stored = sum(len(v.to_bytes()) for v in store._store_dict.values())
    return stored, write, read


def best(runs: list[tuple[int, float, float]]) -> tuple[int, float, float]:
    return runs[0][0], min(r[1] for r in runs), min(r[2] for r in runs)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    name, x = weights()
    # Interleaved, so that a change in the machine's load falls on both alike.
    runs: dict[str, list[tuple[int, float, float]]] = {"alone": [], "stacked": []}
    for _ in range(repeats):
        runs["alone"].append(measure(x, None))
        runs["stacked"].append(measure(x, "auto"))
    alone, stacked = best(runs["alone"]), best(runs["stacked"])
    print(f"{name}: {x.nbytes / 1e6:.1f} MB float32, chunks of 2^20 values, best of {repeats}")
    print(f"{'':<22} {'stored MB':>10} {'write s':>8} {'read s':>8}")
    for label, (stored, write, read) in (("codec alone", alone), ("codec + zstd", stacked)):
        print(f"{label:<22} {stored / 1e6:>10.3f} {write:>8.3f} {read:>8.3f}")
    print(
        f"zstd on top: {100 * (1 - stacked[0] / alone[0]):.2f} % smaller, "
        f"write time x{stacked[1] / alone[1]:.2f}, read time x{stacked[2] / alone[2]:.2f}"
    )


if __name__ == "__main__":
    main()
