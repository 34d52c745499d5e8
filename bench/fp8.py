"""FP8 and block-scaled containers on the MiniLM weights, in one run, single thread.

    python bench/fp8.py [--repeats 3] [--out bench/FP8_RESULTS.md]

Lossless FP8: the float32 weights cast to float8_e4m3fn and float8_e5m2 (ml_dtypes, round to
nearest), all tensors as one array; ratio and decode speed of each level against ZipNN (its FP8
mode, ``bytearray_dtype="float8_e4m3fn"``) and memcpy. Block formats: each tensor encoded on its
own (blocks along its last axis), bits per value as stored (elements, scales, headers), the
mismatches of ``quantize`` against the numpy reference of ``tests/mx_reference.py``, the relative
RMS error against float32, and the block-scale streams' coded size against their order-0 entropy.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np

import schrodinger_fp as sfp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from mx_reference import quantize as mx_reference
from peers import best_time, load_tensors


def entropy_bits(codes: np.ndarray) -> float:
    """Order-0 entropy of a byte array, in bits (total)."""
    counts = np.bincount(codes.view(np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log2(p)).sum() * codes.size)


def lossless_rows(w32: np.ndarray, repeats: int) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from zipnn import ZipNN
    rows = []
    # Untimed encodes first: a process's first few encodes of a large array take up to three times
    # as long while the allocator maps fresh memory for the chunks.
    warm = w32.astype(ml_dtypes.float8_e5m2)
    for _ in range(3):
        sfp.encode(warm, threads=1)
    for name in ("float8_e4m3fn", "float8_e5m2"):
        x = w32.astype(getattr(ml_dtypes, name))
        raw = x.view(np.uint8)
        out = np.empty_like(raw)
        t_copy, _ = best_time(lambda raw=raw, out=out: np.copyto(out, raw), repeats)
        bound = x.size / (entropy_bits(raw) / 8)
        z = ZipNN(bytearray_dtype=name, threads=1, input_format="byte")
        data = raw.tobytes()
        t_zc, cz = best_time(lambda z=z, data=data: z.compress(data), repeats)
        t_zd, dz = best_time(lambda z=z, cz=cz: z.decompress(cz), repeats)
        assert bytes(dz) == data
        zipnn_ratio, zipnn_speed = x.size / len(cz), x.size / t_zd / 1e9
        rows.append(
            f"| zipnn | {name} | {zipnn_ratio:.4f} | {x.size / t_zc / 1e9:.3f} | "
            f"{zipnn_speed:.3f} | 1.00 | 1.00 |"
        )
        for level in (1, 2, 3):
            fmt = sfp.Format(level=level)
            t_e, frame = best_time(lambda x=x, fmt=fmt: sfp.encode(x, fmt, threads=1), repeats)
            t_d, y = best_time(lambda frame=frame: sfp.decode(frame, threads=1), repeats)
            assert y.tobytes() == data
            # Into a preallocated array as well, as the suite measures decoding (a new array's
            # first-touch page faults cost a share of the time on VMs).
            into = np.empty_like(x)
            t_o, _ = best_time(
                lambda frame=frame, into=into: sfp.decode(frame, out=into, threads=1), repeats
            )
            assert into.tobytes() == data
            ratio, speed, speed_o = x.size / len(frame), x.size / t_d / 1e9, x.size / t_o / 1e9
            rows.append(
                f"| sfp level {level} | {name} | {ratio:.4f} | {x.size / t_e / 1e9:.3f} | "
                f"{speed:.3f} ({speed_o:.3f}) | {ratio / zipnn_ratio:.3f} | "
                f"{speed / zipnn_speed:.2f} ({speed_o / zipnn_speed:.2f}) |"
            )
        rows.append(
            f"| (order-0 byte entropy bound; memcpy {x.size / t_copy / 1e9:.2f} GB/s) | {name} | "
            f"{bound:.4f} | | | | |"
        )
    return rows


def block_rows(tensors: dict[str, np.ndarray]) -> list[str]:
    rows = []
    n = sum(t.size for t in tensors.values())
    for name in sfp.BLOCK_FORMATS:
        fmt = sfp.Format.named(name)
        stored = mismatches = scale_bytes = 0
        scale_entropy = big_bytes = big_entropy = 0.0
        err2 = ref2 = 0.0
        for t in tensors.values():
            frame = sfp.encode(t, fmt, threads=1)
            stored += len(frame)
            q = sfp.quantize(t, fmt)
            expected = mx_reference(t, name).values
            mismatches += int(np.count_nonzero(q.view(np.uint32) != expected.view(np.uint32)))
            err2 += float(np.sum((q.astype(np.float64) - t) ** 2))
            ref2 += float(np.sum(t.astype(np.float64) ** 2))
            # The scale part of the frame is this frame (the same coder, coded for size).
            scales = sfp.to_blocks(t, fmt).scales
            streams = sfp.inspect(sfp.encode(scales, sfp.Format(level=3), threads=1)).streams
            coded = streams["exponents"] + streams["signs"] + streams["mantissas"]
            h = entropy_bits(scales) / 8
            scale_bytes += coded
            scale_entropy += h
            if scales.size >= 2048:
                big_bytes += coded
                big_entropy += h
        rows.append(
            f"| {name} | {fmt.bits_per_value('float32'):.3f} | {8 * stored / n:.3f} | "
            f"{mismatches} | "
            f"{np.sqrt(err2 / ref2):.4f} | {scale_bytes / scale_entropy:.3f} | "
            f"{big_bytes / big_entropy:.3f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the Markdown report here too")
    args = parser.parse_args()
    tensors = load_tensors()
    w32 = np.concatenate([t.ravel() for t in tensors.values()])
    started = time.perf_counter()
    lines = [
        "# FP8 and block-scaled containers",
        "",
        f"`python bench/fp8.py --repeats {args.repeats}`: "
        f"{platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}; MiniLM-L6-v2 weights, "
        f"{w32.size} values; single thread, best of {args.repeats}.",
        "",
        "## Lossless FP8 (the weights cast to FP8, one array)",
        "",
        "Decoding into a new array, and in parentheses into a preallocated one (`out=`, as",
        "`bench/suite.py` measures it); ZipNN always returns a new one.",
        "",
        "| codec | dtype | ratio | enc Gvalues/s | dec Gvalues/s | ratio / zipnn | dec / zipnn |",
        "|---|---|---|---|---|---|---|",
        *lossless_rows(w32, args.repeats),
        "",
        "## Block formats (each tensor on its own, blocks along its last axis)",
        "",
        "bits/value: the container (element + its share of the scale) and as stored; mismatches of",
        "`quantize` against `tests/mx_reference.py`; relative RMS error against float32; scale",
        "streams' coded bytes (the stream without the part's frame header) over their order-0",
        "entropy, all tensors and those with 2048 scales or more.",
        "",
        "| format | container bits/value | stored bits/value | mismatches | rel. RMS error | "
        "scales / entropy | scales / entropy (>= 2048) |",
        "|---|---|---|---|---|---|---|",
        *block_rows(tensors),
        "",
        f"({time.perf_counter() - started:.0f} s)",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
