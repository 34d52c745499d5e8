"""``sfp stats``: bits per value of each stream and the exponent histogram of an archive."""

from __future__ import annotations

import argparse
import collections
from typing import Any

import numpy as np

from schrodinger_fp.storage.archive import Archive
from schrodinger_fp.storage.atomic import atomic_output

#: (exponent bits, mantissa bits, unsigned view) of each float dtype with an exponent field.
LAYOUT = {
    "float32": (8, 23, np.uint32),
    "float64": (11, 52, np.uint64),
    "float16": (5, 10, np.uint16),
    "bfloat16": (8, 7, np.uint16),
}
ZERO, SPECIAL = "zero/subnormal", "inf/nan"


def exponent_histogram(array: np.ndarray) -> collections.Counter[int | str]:
    """Count the unbiased exponents of a float array.

    Parameters
    ----------
    array : numpy.ndarray
        float32, float64, float16 or bfloat16.

    Returns
    -------
    collections.Counter
        Unbiased exponent -> count, plus ``"zero/subnormal"`` (field 0) and ``"inf/nan"``
        (all-ones field).
    """
    exp_bits, man_bits, uint = LAYOUT[str(array.dtype)]
    fields = (np.ascontiguousarray(array).reshape(-1).view(uint) >> man_bits) & (
        (1 << exp_bits) - 1
    )
    counts = np.bincount(fields.astype(np.int64), minlength=1 << exp_bits)
    bias = (1 << (exp_bits - 1)) - 1
    out: collections.Counter[int | str] = collections.Counter()
    for field, count in enumerate(counts.tolist()):
        if count == 0:
            continue
        if field == 0:
            out[ZERO] += count
        elif field == (1 << exp_bits) - 1:
            out[SPECIAL] += count
        else:
            out[field - bias] += count
    return out


def collect(archive: Archive) -> tuple[list[dict[str, Any]], collections.Counter[int | str]]:
    """Gather per-tensor stream sizes and the archive-wide exponent histogram.

    Returns
    -------
    rows : list of dict
        ``name``, ``values``, ``streams`` (name -> bytes) per tensor stored as a frame.
    histogram : collections.Counter
        Summed over all float tensors (see ``exponent_histogram``).
    """
    rows: list[dict[str, Any]] = []
    histogram: collections.Counter[int | str] = collections.Counter()
    for name, entry in archive.entries.items():
        if entry.dtype not in LAYOUT:
            continue
        histogram.update(exponent_histogram(archive[name]))
        info = archive.info(name)
        values = int(np.prod(entry.shape))
        streams = {"raw": entry.length} if info is None else dict(info.streams)
        rows.append({"name": name, "values": values, "streams": streams})
    return rows, histogram


def _sort_key(key: int | str) -> tuple[int, int]:
    if isinstance(key, int):
        return (1, key)
    return (0, 0) if key == ZERO else (2, 0)


def render(rows: list[dict[str, Any]], histogram: collections.Counter[int | str]) -> str:
    """Format the stats as text tables."""
    streams = sorted({s for row in rows for s in row["streams"]})
    width = max([len("name"), *(len(r["name"]) for r in rows)])
    lines = [
        "bits per value, by stream",
        f"{'name':<{width}} {'values':>10} "
        + " ".join(f"{s:>10}" for s in streams)
        + f" {'total':>8}",
    ]
    totals = collections.Counter[str]()
    for row in rows:
        n = max(1, row["values"])
        totals.update(row["streams"])
        cells = " ".join(f"{8 * row['streams'].get(s, 0) / n:>10.3f}" for s in streams)
        total = 8 * sum(row["streams"].values()) / n
        lines.append(f"{row['name']:<{width}} {row['values']:>10} {cells} {total:>8.3f}")
    n_all = max(1, sum(r["values"] for r in rows))
    cells = " ".join(f"{8 * totals.get(s, 0) / n_all:>10.3f}" for s in streams)
    lines.append(f"{'(all)':<{width}} {n_all:>10} {cells} {8 * sum(totals.values()) / n_all:>8.3f}")
    lines += ["", "exponent histogram (unbiased exponent: count, share)"]
    count_all = max(1, sum(histogram.values()))
    for key in sorted(histogram, key=_sort_key):
        share = histogram[key] / count_all
        bar = "#" * max(1, round(50 * share)) if histogram[key] else ""
        lines.append(f"{key!s:>15} {histogram[key]:>12} {100 * share:>7.3f}% {bar}")
    return "\n".join(lines)


def plot(
    path: str,
    rows: list[dict[str, Any]],
    histogram: collections.Counter[int | str],
    overwrite: bool,
) -> None:
    """Draw the exponent histogram and the bits per stream into a PNG at ``path``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (reported by the command as an error).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(histogram, key=_sort_key)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.bar([str(k) for k in keys], [histogram[k] for k in keys])
    left.set_yscale("log")
    left.set_title("exponent histogram (all float tensors)")
    left.set_xlabel("unbiased exponent")
    left.set_ylabel("values")
    left.tick_params(axis="x", labelrotation=90, labelsize=6)
    totals = collections.Counter[str]()
    for row in rows:
        totals.update(row["streams"])
    n_all = max(1, sum(r["values"] for r in rows))
    names = sorted(totals)
    right.bar(names, [8 * totals[s] / n_all for s in names])
    right.set_title("bits per value, by stream")
    right.set_ylabel("bits / value")
    fig.tight_layout()
    with atomic_output(path, overwrite=overwrite) as stream:
        fig.savefig(stream, format="png", dpi=100)
    plt.close(fig)


def cmd_stats(args: argparse.Namespace) -> None:
    """Print stream sizes and the exponent histogram; draw them with ``--plot``."""
    with Archive(args.file) as archive:
        rows, histogram = collect(archive)
    print(render(rows, histogram))
    if args.plot:
        try:
            plot(args.plot, rows, histogram, overwrite=args.force)
        except ImportError:
            raise ValueError("--plot needs matplotlib (pip install matplotlib)") from None


def add_parser(sub: Any) -> None:
    """Register ``sfp stats`` on the subparsers ``sub``."""
    p = sub.add_parser("stats", help="exponent histograms and bits per stream")
    p.add_argument("file")
    p.add_argument("--plot", metavar="PNG", help="also draw the stats into this PNG file")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing PNG")
    p.set_defaults(run=cmd_stats, quiet=False)
