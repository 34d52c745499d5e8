"""The benchmark suite: ours against memcpy and the peers, in one process and one run.

``python bench/suite.py`` (``--repeats N``, ``--dtypes float32,...``, ``--json out.json``) loads the
corpus (MiniLM-L6-v2 weights, cast to float32, bfloat16, float16 with ml_dtypes), then
measures, on the same data and in the same run:

* memcpy: ``np.copyto`` into a preallocated array and ``x.copy()`` into a new one (the limit);
* lossless: ours (flat and coded exponents), zstd, blosc2 (shuffle + zstd), bitshuffle + lz4
  (blosc2's  filter), pcodec, ZipNN (when installed: it pulls in PyTorch);
* lossy, equal mantissa bits: ours (quantize, flat and coded encode) against numcodecs
  BitRound + zstd  and BitRound + pcodec;
* threads: ours with 1 and 2 threads.

Every codec runs single-threaded unless the row says otherwise; times are the best of ``--repeats``
(the machine is shared, so the best is the least disturbed), and the codecs of a table (with
memcpy) take turns, one run each per round, so that a slow spell slows them all and the speed
ratios between them hold; every round trip is checked bit for bit.
Ours decode into a preallocated array; ZipNN, zstd and the others return a new buffer, whose fresh
pages the kernel zeroes on first touch unless the C library reuses memory a call before freed, which
the process's allocation history decides: ZipNN's figures move by up to 2x with it.
``--retain-memory`` makes the C library keep freed memory (glibc's ``mallopt``), so that no codec
pays for fresh pages: the peers' best case.
Speeds are GB/s of raw input and fractions of memcpy (encode and quantize-new against copy into a
new array, decode and in-place quantize against copy into a preallocated one); "peak MB" is the
largest
resident-memory growth seen while the operation ran (sampled every millisecond, all allocators).
Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Every row but the thread rows is single-threaded, on a machine that may have two cores: numpy's
# OpenBLAS starts worker threads at import that spin (blas_thread_server) and take a core from the
# codec being timed. Nothing here uses BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers

import schrodinger_fp as sfp

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def peak_growth(fn: Callable[[], Any]) -> tuple[int, Any]:
    """Largest resident-memory growth (bytes) while ``fn`` runs, and its result."""
    base = _rss()
    peak = [base]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        out = fn()
    finally:
        done.set()
        t.join()
    peak[0] = max(peak[0], _rss())
    return peak[0] - base, out


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Fastest of ``repeats`` runs (seconds) of each function, taken in turn round by round: a slow
    spell of the shared machine then falls on every function alike, and their ratios hold."""
    t_best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            t_best[key] = min(t_best[key], time.perf_counter() - t0)
    return t_best


# ---------------------------------------------------------------- peers not in peers.py


def blosc2_codec(filt: str, codec: str) -> peers.Codec:
    """blosc2 with one filter and codec, single thread, typesize = itemsize."""
    import blosc2

    filters = {"shuffle": blosc2.Filter.SHUFFLE, "bitshuffle": blosc2.Filter.BITSHUFFLE}[filt]
    codecs = {"zstd": blosc2.Codec.ZSTD, "lz4": blosc2.Codec.LZ4}[codec]

    def enc(a: np.ndarray) -> bytes:
        return blosc2.compress2(
            a.reshape(-1).view(np.uint8),
            cparams={
                "codec": codecs,
                "clevel": 5,
                "filters": [filters],
                "typesize": a.dtype.itemsize,
                "nthreads": 1,
            },
        )

    def dec(b: bytes, like: np.ndarray) -> np.ndarray:
        return np.frombuffer(blosc2.decompress2(b, dparams={"nthreads": 1}), dtype=like.dtype)

    return peers.Codec(f"blosc2-{filt}+{codec}", enc, dec)


def bitround(
    keep: int, then: peers.Codec
) -> tuple[peers.Codec, Callable[[np.ndarray], np.ndarray]]:
    """numcodecs BitRound to ``keep`` mantissa bits, then ``then``; also the rounding alone."""
    from numcodecs import BitRound

    br = BitRound(keepbits=keep)

    def rounded(a: np.ndarray) -> np.ndarray:
        return br.encode(a).view(a.dtype).reshape(a.shape)

    codec = peers.Codec(
        f"BitRound{keep}+{then.name}",
        lambda a: then.encode(rounded(a)),
        lambda b, like: then.decode(b, like),
    )
    return codec, rounded


def ours(fmt: sfp.Format, threads: int = 1, name: str | None = None) -> peers.Codec:
    """Our codec with ``fmt``; decode into a preallocated array (as a training loop would)."""
    out: dict[str, np.ndarray] = {}

    def dec(b: bytes, like: np.ndarray) -> np.ndarray:
        dst = out.get("a")
        if dst is None or dst.shape != like.shape or dst.dtype != like.dtype:
            dst = out["a"] = np.empty_like(like)
        return sfp.decode(b, out=dst, threads=threads)

    return peers.Codec(
        name or f"sfp-{fmt.exponent_coding}", lambda a: sfp.encode(a, fmt, threads=threads), dec
    )


# ---------------------------------------------------------------- measuring


def run_codecs(
    group: list[tuple[peers.Codec, np.ndarray | None]],
    a: np.ndarray,
    repeats: int,
    also: dict[str, Callable[[], Any]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Ratio, seconds and peak memory of each codec of ``group`` (its decode must equal its
    ``expect``, ``a`` when None), timed in turns with each other and with the functions ``also``
    (whose seconds come back second)."""
    blobs = [c.encode(a) for c, _ in group]
    fns = dict(also or {})
    for i, (c, _) in enumerate(group):
        fns[f"enc {i}"] = lambda c=c: c.encode(a)
        fns[f"dec {i}"] = lambda c=c, b=blobs[i]: c.decode(b, a)
    seconds = interleaved(fns, repeats)
    rows = []
    uint = f"u{a.dtype.itemsize}"
    for i, (c, expect) in enumerate(group):
        # Memory after the timed runs, so reusable buffers (our decode's `out`) already exist.
        enc_mem, blob = peak_growth(lambda c=c: c.encode(a))
        dec_mem, back = peak_growth(lambda c=c, b=blob: c.decode(b, a))
        want = (a if expect is None else expect).reshape(-1)
        if not np.array_equal(np.asarray(back).reshape(-1).view(uint), want.view(uint)):
            raise AssertionError(f"{c.name} did not round-trip {a.dtype}")
        rows.append(
            {
                "codec": c.name,
                "dtype": str(a.dtype),
                "nbytes": a.nbytes,
                "ratio": a.nbytes / len(blob),
                "enc_s": seconds[f"enc {i}"],
                "dec_s": seconds[f"dec {i}"],
                "enc_mb": enc_mem / 1e6,
                "dec_mb": dec_mem / 1e6,
            }
        )
    return rows, {k: seconds[k] for k in also or {}}


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"SFP_SIMD={os.environ.get('SFP_SIMD', '(best)')}"
    )


def fmt_row(r: dict[str, Any], nbytes: int, copy_new: float, copy_pre: float) -> str:
    enc = nbytes / r["enc_s"] / 1e9
    dec = nbytes / r["dec_s"] / 1e9
    return (
        f"| {r['codec']} | {r['dtype']} | {r['ratio']:.3f} | {enc:.2f} | {dec:.2f} | "
        f"{100 * copy_new / r['enc_s']:.1f}% | {100 * copy_pre / r['dec_s']:.1f}% | "
        f"{r['enc_mb']:.0f} / {r['dec_mb']:.0f} |"
    )


HEAD = (
    "| codec | dtype | ratio | enc GB/s | dec GB/s | enc % memcpy(new) | dec % memcpy(pre) "
    "| peak MB enc/dec |\n|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dtypes", default=",".join(peers.DTYPES))
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--no-activations", action="store_true", help="skip the GELU/ReLU activation cases"
    )
    ap.add_argument(
        "--retain-memory",
        action="store_true",
        help="keep freed memory for later allocations, so no codec pays for fresh pages",
    )
    args = ap.parse_args(argv)
    rep = args.repeats
    retained = args.retain_memory and peers.retain_freed_memory()
    if args.retain_memory and not retained:
        raise SystemExit("--retain-memory needs glibc's mallopt")
    x32 = peers.weights()
    report: dict[str, Any] = {
        "machine": machine(),
        "values": int(x32.size),
        "retain_memory": retained,
        "rows": [],
    }
    memory = (
        "freed memory retained (`--retain-memory`): no codec pays for fresh pages"
        if retained
        else "the C library's default: a peer's new buffer may be fresh pages"
    )
    print(
        f"# schrodinger-fp benchmark suite\n\nmachine: {report['machine']}\n"
        f"corpus: MiniLM-L6-v2 weights, {x32.size} values; best of {rep}; memory: {memory}\n"
    )

    lossless: list[peers.Codec] = [
        ours(sfp.Format(exponent_coding="raw"), name="sfp lossless raw"),
        *(ours(sfp.Format(level=lv), name=f"sfp lossless level {lv}") for lv in (1, 2, 3)),
        peers.zstd(3),
        blosc2_codec("shuffle", "zstd"),
        blosc2_codec("bitshuffle", "lz4"),
        peers.pcodec(),
    ]
    cases = [(dtype, peers.cast(x32, dtype)) for dtype in args.dtypes.split(",")]
    if not args.no_activations:
        act = peers.activations()
        cases += [
            (f"{kind} activations bfloat16", peers.cast(act[kind], "bfloat16"))
            for kind in ("gelu", "relu")
        ]
    summary: list[dict[str, Any]] = []
    for label, a in cases:
        dtype = peers.dtype_name(a)
        pre = np.empty_like(a)
        codecs = list(lossless)
        missing = ""
        try:
            codecs.append(peers.zipnn(dtype))
        except Exception as e:
            missing = f"| zipnn | {dtype} | not installed ({type(e).__name__}) | | | | | |"
        memcpy = {
            "pre": lambda a=a, pre=pre: np.copyto(pre, a),
            "new": lambda a=a: a.copy(),
        }
        rows, copies = run_codecs([(c, None) for c in codecs], a, rep, memcpy)
        copy_pre, copy_new = copies["pre"], copies["new"]
        report[f"memcpy_{label}"] = {"new_s": copy_new, "pre_s": copy_pre}
        print(
            f"## {label}: {a.nbytes / 1e6:.1f} MB; memcpy {a.nbytes / copy_pre / 1e9:.2f} GB/s "
            f"(preallocated), {a.nbytes / copy_new / 1e9:.2f} GB/s (new array)\n"
        )
        print("### lossless\n\n" + HEAD)
        if missing:
            print(missing)
        for r in rows:
            r["case"] = label
            print(fmt_row(r, a.nbytes, copy_new, copy_pre))
        _vs_peers(rows, "sfp lossless level 2")
        summary += rows
        report["rows"] += rows
        if label == "float32":
            report["rows"] += lossy(a, rep, copy_new, copy_pre)
        if label in peers.DTYPES:
            report["rows"] += threads(a, rep, dtype)
    print(against_peers(summary))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


def against_peers(rows: list[dict[str, Any]]) -> str:
    """Each case: our levels against ZipNN and pcodec from the same run (MB/s of raw data)."""
    out = [
        "## Levels against the peers (single thread; ratio, encode / decode MB/s; "
        "x = speed over ZipNN's)\n",
        "| case | level 1 | level 2 (default) | level 3 | ZipNN | pcodec |",
        "|---|---|---|---|---|---|",
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        by = {r["codec"]: r for r in rows if r["case"] == case}
        z = by.get("zipnn")

        def cell(name: str, by: dict[str, Any] = by, z: Any = z) -> str:
            r = by.get(name)
            if r is None:
                return "-"
            mb = {k: r["nbytes"] / r[f"{k}_s"] / 1e6 for k in ("enc", "dec")}
            text = f"{r['ratio']:.4f}, {mb['enc']:.0f} / {mb['dec']:.0f}"
            if z is not None and name.startswith("sfp"):
                text += f" (x{z['enc_s'] / r['enc_s']:.2f} / x{z['dec_s'] / r['dec_s']:.2f})"
            return text

        levels = [cell(f"sfp lossless level {lv}") for lv in (1, 2, 3)]
        out.append(f"| {case} | " + " | ".join([*levels, cell("zipnn"), cell("pcodec")]) + " |")
    return "\n".join(out) + "\n"


def _vs_peers(rows: list[dict[str, Any]], ours_name: str) -> None:
    mine = next(r for r in rows if r["codec"] == ours_name)
    parts = [
        f"{r['codec']}: enc x{r['enc_s'] / mine['enc_s']:.1f}, "
        f"dec x{r['dec_s'] / mine['dec_s']:.1f}, "
        f"ratio x{mine['ratio'] / r['ratio']:.2f}"
        for r in rows
        if r is not mine
    ]
    print(
        f"\n{ours_name} against each peer (speed and ratio, >1 = ours better): "
        + "; ".join(parts)
        + "\n"
    )


def lossy(a: np.ndarray, rep: int, copy_new: float, copy_pre: float) -> list[dict[str, Any]]:
    rows = []
    for keep in (7, 3):
        print(f"### lossy, {keep} mantissa bits (float32)\n")
        fmt = sfp.Format(man_bits=keep)
        quantized = sfp.quantize(a, fmt)
        buf = a.copy()
        quantize = {
            "new": lambda fmt=fmt: sfp.quantize(a, fmt, threads=1),
            "in place": lambda fmt=fmt, buf=buf: sfp.quantize(buf, fmt, out=buf, threads=1),
        }
        br_zstd, rounded = bitround(keep, peers.zstd(3))
        br_pc, _ = bitround(keep, peers.pcodec())
        ref = rounded(a)
        group, q_times = run_codecs(
            [
                (
                    ours(sfp.Format(man_bits=keep, exponent_coding="raw"), name=f"sfp m{keep} raw"),
                    quantized,
                ),
                (
                    ours(
                        sfp.Format(man_bits=keep, exponent_coding="auto"), name=f"sfp m{keep} auto"
                    ),
                    quantized,
                ),
                (
                    ours(
                        sfp.Format(exp_bits=4, man_bits=keep, exponent_coding="auto"),
                        name=f"sfp e4m{keep} auto",
                    ),
                    sfp.quantize(a, sfp.Format(exp_bits=4, man_bits=keep)),
                ),
                (br_zstd, ref),
                (br_pc, ref),
            ],
            a,
            rep,
            quantize,
        )
        q_new, q_in = q_times["new"], q_times["in place"]
        q_mem = peak_growth(lambda fmt=fmt, buf=buf: sfp.quantize(buf, fmt, out=buf, threads=1))[0]
        print(
            f"quantize: new array {a.nbytes / q_new / 1e9:.2f} GB/s = "
            f"{100 * copy_new / q_new:.0f}% "
            f"of memcpy(new); in place {a.nbytes / q_in / 1e9:.2f} GB/s = "
            f"{100 * copy_pre / q_in:.0f}% of memcpy(pre), peak growth {q_mem / 1e6:.0f} MB\n"
        )
        rows.append(
            {"codec": f"quantize m{keep}", "dtype": "float32", "new_s": q_new, "inplace_s": q_in}
        )
        print(HEAD)
        if not np.array_equal(ref.view(np.uint32), quantized.view(np.uint32)):
            print("(note: BitRound and our nearest rounding differ on some values)")
        for r in group:
            print(fmt_row(r, a.nbytes, copy_new, copy_pre))
        _vs_peers(group, f"sfp m{keep} auto")
        rows += group
    return rows


def threads(a: np.ndarray, rep: int, dtype: str) -> list[dict[str, Any]]:
    fmt = sfp.Format(man_bits=7, exponent_coding="raw")
    blob = sfp.encode(a, fmt)
    out = np.empty_like(a)
    ops: dict[str, Callable[[int], Any]] = {
        "enc": lambda t: sfp.encode(a, fmt, threads=t),
        "dec": lambda t: sfp.decode(blob, out=out, threads=t),
        "quant": lambda t: sfp.quantize(a, fmt, out=out, threads=t),
    }
    seconds = interleaved(
        {f"{k} {t}": (lambda op=op, t=t: op(t)) for k, op in ops.items() for t in (1, 2)}, rep
    )
    res = {t: {k: seconds[f"{k} {t}"] for k in ops} for t in (1, 2)}
    speedup = {k: res[1][k] / res[2][k] for k in ("enc", "dec", "quant")}
    print(
        f"threads ({dtype}, m7 flat): 2 threads / 1 thread = encode x{speedup['enc']:.2f}, "
        f"decode x{speedup['dec']:.2f}, quantize x{speedup['quant']:.2f}\n"
    )
    return [
        {
            "codec": "threads",
            "dtype": dtype,
            **{f"{k}_{t}": v for t, d in res.items() for k, v in d.items()},
        }
    ]


if __name__ == "__main__":
    main()
