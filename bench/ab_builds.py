"""Two or more builds of the extension module timed against each other in one process.

    cargo build --release -p sfp-python && cp target/release/lib_core.so /tmp/core_a.so
    (change the code, build again, copy to /tmp/core_b.so)
    python bench/ab_builds.py /tmp/sfp_raw/gelu_bfloat16.raw bfloat16 a=/tmp/core_a.so \
        b=/tmp/core_b.so --level 2 --side encode --repeats 20

Each build is loaded as its own module, and their calls alternate call by call, so a slow
spell of the shared machine falls on every build alike; separate runs of a benchmark differ
by more than most changes do. Every build must write the same frame (checked first), so an A/B
compares the speed of one format. The files are raw little-endian arrays, as
``bench/raw_cases.py`` writes them.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import time
from types import ModuleType

import numpy as np

import schrodinger_fp as sfp
from schrodinger_fp.codec import numpy_dtype


def load(tag: str, path: str) -> ModuleType:
    """The extension module built at ``path``, loaded under the package name ``tag``."""
    name = f"{tag}._core"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="a raw array")
    ap.add_argument("dtype", help="its dtype name, as schrodinger_fp names it (e.g. bfloat16)")
    ap.add_argument("builds", nargs="+", help="TAG=PATH of each build's extension module")
    ap.add_argument("--level", type=int, default=2)
    ap.add_argument("--side", choices=("encode", "decode"), default="decode")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    builds = {tag: load(tag, path) for tag, path in (b.split("=", 1) for b in args.builds)}
    a = np.fromfile(args.file, dtype=numpy_dtype(args.dtype))
    fmt = sfp.Format(level=args.level)
    src = a.view(np.uint8)
    frame = sfp.encode(a, fmt, threads=1)
    for tag, m in builds.items():
        if bytes(m.encode(src, args.dtype, [a.size], fmt, None, 1)) != frame:
            raise SystemExit(f"build {tag} writes another frame")
    out = np.empty_like(a)
    raw = out.view(np.uint8)
    seconds: dict[str, list[float]] = {tag: [] for tag in builds}
    for _ in range(args.repeats):
        for tag, m in builds.items():
            t0 = time.perf_counter()
            if args.side == "decode":
                m.decode_into(frame, raw, [a.size], args.dtype, False, 1, None)
            else:
                m.encode(src, args.dtype, [a.size], fmt, None, 1)
            seconds[tag].append(time.perf_counter() - t0)
            if args.side == "decode" and not np.array_equal(raw, src):
                raise SystemExit(f"build {tag} decoded other values")
    print(f"{args.side}, level {args.level}, {args.file} ({a.nbytes / 1e6:.1f} MB), one thread")
    for tag, ts in seconds.items():
        ts.sort()
        best, median = a.nbytes / ts[0] / 1e9, a.nbytes / ts[len(ts) // 2] / 1e9
        print(f"{tag}: best {best:.3f} GB/s, median {median:.3f} GB/s")


if __name__ == "__main__":
    main()
