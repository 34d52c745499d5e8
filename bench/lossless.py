"""Lossless benchmark: ours (raw/gecko/entropy/auto) beside ZipNN, pcodec and zstd, in one run.

For the MiniLM weights as float32, bfloat16 and float16 it prints ratio and single-thread encode /
decode throughput (MB/s of the uncompressed data and as a fraction of memcpy, measured in the same
run), the order-0 split-exponent bound (sign and mantissa raw, exponents at their order-0 entropy,
over the whole tensor and per 2^20-value chunk), the exponent bits/value each coder spends against
the per-chunk order-0 entropy, the same ratios on real activations (with the sign-exponent joint
entropy), what each mantissa-coding idea would gain at its order-0 entropy beside what the coder
reaches, and Gecko's parameter table.

Run: ``python bench/lossless.py`` (``--no-params`` skips the slow Gecko parameter sweep;
``--repeats N`` sets the timing repeats, best of N).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gecko_params
import peers

import schrodinger_fp as sfp
from schrodinger_fp.format import FIELD_WIDTHS
from schrodinger_fp.stats import entropy_of_counts, exponent_fields

CHUNK = 1 << 20
CODINGS = ("raw", "gecko", "entropy", "auto")


def chunk_entropy_bits(codes: np.ndarray, chunk: int = CHUNK) -> float:
    """Mean over values of the order-0 entropy of each chunk's codes (bits/value)."""
    total = 0.0
    for i in range(0, codes.size, chunk):
        c = codes[i : i + chunk]
        total += entropy_of_counts(np.bincount(c)) * c.size
    return total / codes.size


def bound_ratio(a: np.ndarray, per_chunk: bool) -> float:
    """Ratio of the order-0 split-exponent bound: sign and mantissa raw, exponent at its entropy."""
    e, m = FIELD_WIDTHS[peers_name(a)]
    codes = exponent_fields(a)
    h = chunk_entropy_bits(codes) if per_chunk else entropy_of_counts(np.bincount(codes))
    return (1 + e + m) / (1 + m + h)


def bytes_bound_ratio(a: np.ndarray) -> float:
    """Ratio if, besides the exponent, every mantissa byte lane were entropy-coded per chunk
    (order 0): where byte-grouping coders such as ZipNN find their extra on the mantissas."""
    e, m = FIELD_WIDTHS[peers_name(a)]
    bits = a.reshape(-1).view(f"u{a.dtype.itemsize}").astype(np.int64)
    codes = (bits >> m) & ((1 << e) - 1)
    total = 0.0
    for i in range(0, bits.size, CHUNK):
        b, c = bits[i : i + CHUNK], codes[i : i + CHUNK]
        h = 1.0 + entropy_of_counts(np.bincount(c))
        for lo in range(0, m, 8):
            width = min(8, m - lo)
            h += entropy_of_counts(np.bincount((b >> lo) & ((1 << width) - 1)))
        total += h * b.size
    return (1 + e + m) * bits.size / total


def _lane_bits(m: np.ndarray, width: int) -> float:
    """Order-0 entropy of the 8-bit lanes (lowest first) of ``width``-bit values, bits/value."""
    if m.size == 0:
        return 0.0
    return sum(
        min(entropy_of_counts(np.bincount((m >> lo) & ((1 << min(8, width - lo)) - 1))), 8.0)
        for lo in range(0, width, 8)
    )


def mantissa_ideas(a: np.ndarray, chunk: int = CHUNK) -> dict[str, float]:
    """Ratio of each mantissa-coding idea at its per-chunk order-0 entropy (tables ignored).

    Every row codes sign and exponent at the better of separate (sign stream + H(e)) and joint
    H(s, e). ``flat``: mantissas raw (the exponent-only bound); ``lanes``: mantissa 8-bit lanes
    entropy-coded; ``top<k>``: the top k mantissa bits coded with the exponent, the rest raw;
    ``top<k>+lanes``: and the rest in lanes; ``zeros``: mantissas of zero-code values omitted when
    they are all zero (no subnormals); ``best``: per chunk the best of all of these combined, which
    is what the mantissa coder chooses from (it also keeps a table per 2^16 values per lane, which
    can beat these per-2^20 figures)."""
    e, m = FIELD_WIDTHS[peers_name(a)]
    bits = a.reshape(-1).view(f"u{a.dtype.itemsize}").astype(np.int64)
    tot: dict[str, float] = {}
    for i in range(0, bits.size, chunk):
        b = bits[i : i + chunk]
        s, ex, man = (b >> (e + m)) & 1, (b >> m) & ((1 << e) - 1), b & ((1 << m) - 1)
        z = ex == 0
        skip = bool(z.any()) and not bool((man[z] != 0).any())
        kept = man[~z] if skip else man
        frac = kept.size / b.size
        row: dict[str, float] = {}
        best = float("inf")
        for k in range(0, min(3, m) + 1):
            j = (ex << k) | (man >> (m - k))
            h = min(
                (1.0 if s.any() else 0.0) + entropy_of_counts(np.bincount(j)),
                entropy_of_counts(np.bincount(j * 2 + s)),
            )
            low = m - k
            lanes = _lane_bits(man & ((1 << low) - 1), low)
            row["flat" if k == 0 else f"top{k}"] = h + low
            row["lanes" if k == 0 else f"top{k}+lanes"] = h + lanes
            if k == 0:
                row["zeros"] = h + low * frac
            best = min(best, h + low, h + lanes)
            if skip:
                best = min(best, h + frac * _lane_bits(kept & ((1 << low) - 1), low))
        row["best"] = best
        for key, v in row.items():
            tot[key] = tot.get(key, 0.0) + v * b.size
    return {key: (1 + e + m) * bits.size / v for key, v in tot.items()}


def mantissa_table(data: dict[str, np.ndarray]) -> None:
    """The ratio each mantissa-coding idea would reach (order-0 entropy per 2^20 values) beside
    what ``sfp-auto`` reaches and which mantissa coders its chunks used."""
    keys = ["flat", "lanes", "top1", "top3", "top3+lanes", "zeros", "best"]
    print(f"{'data':<16} " + " ".join(f"{k:>10}" for k in keys) + f" {'sfp-auto':>9}  chunks")
    for name, a in data.items():
        ideas = mantissa_ideas(a)
        blob = sfp.encode(a, threads=1)
        info = sfp.inspect(blob)
        used = ", ".join(f"{k} x{v}" for k, v in sorted(info.mantissa_coders.items()))
        print(
            f"{name:<16} "
            + " ".join(f"{ideas.get(k, float('nan')):10.4f}" for k in keys)
            + f" {a.nbytes / len(blob):9.4f}  {used}"
        )


def peers_name(a: np.ndarray) -> str:
    return {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}.get(
        a.dtype, "bfloat16"
    )


def joint_sign_entropy(a: np.ndarray, chunk: int = CHUNK) -> tuple[float, float]:
    """(exponent entropy + sign cost, joint sign-exponent entropy), bits/value, per chunk.

    The sign cost is what the frame spends today: 1 bit per value, or 0 when a chunk has no negative
    value (the sign stream is omitted)."""
    e, m = FIELD_WIDTHS[peers_name(a)]
    codes = exponent_fields(a).astype(np.int64)
    bits = a.reshape(-1).view(f"u{a.dtype.itemsize}")
    sign = (bits >> (e + m)).astype(np.int64)
    sep = joint = 0.0
    for i in range(0, codes.size, chunk):
        c, s = codes[i : i + chunk], sign[i : i + chunk]
        sep += (entropy_of_counts(np.bincount(c)) + (1.0 if s.any() else 0.0)) * c.size
        joint += entropy_of_counts(np.bincount(c * 2 + s)) * c.size
    return sep / codes.size, joint / codes.size


def speed_table(
    label: str, a: np.ndarray, codecs: list[peers.Codec], repeats: int
) -> dict[str, dict[str, float]]:
    mb = a.nbytes / 1e6
    mem = peers.memcpy_seconds(a)
    print(
        f"\n## {label}: {a.size:,} values, {mb:.1f} MB;"
        f" memcpy {mb / mem:,.0f} MB/s (single thread, same run)"
    )
    print(
        f"{'codec':<14} {'ratio':>7} {'enc MB/s':>9} {'dec MB/s':>9}"
        f" {'enc/memcpy':>10} {'dec/memcpy':>10}"
    )
    results = {}
    for codec in codecs:
        r = peers.measure(codec, a, repeats)
        results[codec.name] = r
        print(
            f"{codec.name:<14} {r['ratio']:7.4f} {mb / r['enc_s']:9.0f} {mb / r['dec_s']:9.0f}"
            f" {mem / r['enc_s']:10.3f} {mem / r['dec_s']:10.3f}"
        )
    print(f"{'bound (whole)':<14} {bound_ratio(a, False):7.4f}")
    print(f"{'bound (chunk)':<14} {bound_ratio(a, True):7.4f}")
    print(
        f"{'bound +mant':<14} {bytes_bound_ratio(a):7.4f}"
        "   (mantissa byte lanes entropy-coded too, tables per 2^20 values)"
    )
    print(
        f"{'bound ours':<14} {mantissa_ideas(a)['best']:7.4f}"
        "   (sign-exponent, top mantissa bits, zero skip and lanes, per 2^20 values)"
    )
    z = results.get("zipnn")
    if z:
        for c in ("sfp-auto", "sfp-entropy"):
            if c in results:
                o = results[c]
                print(
                    f"{c} vs zipnn: encode {z['enc_s'] / o['enc_s']:.2f}x,"
                    f" decode {z['dec_s'] / o['dec_s']:.2f}x,"
                    f" ratio {o['ratio'] / z['ratio']:.4f}x"
                )
    return results


def chunk_alphabet_bits(a: np.ndarray, info: sfp.FrameInfo) -> float:
    """Per-chunk order-0 entropy (bits/value) of what each chunk's exponent stream codes: the
    exponent, with the top ``k`` mantissa bits when the chunk's mantissa coder is ``top<k>+...``,
    and with the sign when the chunk has no sign stream but negative values."""
    e, m = FIELD_WIDTHS[peers_name(a)]
    bits = a.reshape(-1).view(f"u{a.dtype.itemsize}").astype(np.int64)
    total, at = 0.0, 0
    for c in info.chunks:
        b = bits[at : at + c["values"]]
        at += c["values"]
        name = c["mantissa_coder"]
        k = int(name[name.index("top") + 3]) if "top" in name else 0
        j = (((b >> m) & ((1 << e) - 1)) << k) | ((b & ((1 << m) - 1)) >> (m - k))
        s = (b >> (e + m)) & 1
        if c["signs"] == 0 and s.any():
            j = j * 2 + s
        total += entropy_of_counts(np.bincount(j)) * b.size
    return total / max(bits.size, 1)


def exponent_table(label: str, a: np.ndarray) -> None:
    """Exponent bits/value per coding against the per-chunk entropy H of what the stream codes.
    Where a chunk coded signs jointly (its sign stream is gone) the stream holds signs too, and
    where the mantissa coder moved top mantissa bits into it (``auto``/``entropy``), those too:
    ``H*`` is then the per-chunk entropy of exactly that alphabet."""
    codes = exponent_fields(a)
    h = chunk_entropy_bits(codes)
    _, joint = joint_sign_entropy(a)
    row = []
    for coding in CODINGS:
        info = sfp.inspect(sfp.encode(a, sfp.Format(exponent_coding=coding)))
        bpv = 8 * info.streams["exponents"] / a.size
        ref = chunk_alphabet_bits(a, info)
        row.append(f"{coding} {bpv:.3f} ({bpv / ref - 1:+.1%} vs H* {ref:.3f})")
    print(f"{label:<16} H {h:.3f} H(s,e) {joint:.3f} | " + " | ".join(row))


def gecko_model_check(a: np.ndarray) -> None:
    """The numpy model of Gecko (used for the parameter table) against the coder's real stream."""
    codes = exponent_fields(a)
    model = sum(
        gecko_params.gecko_chunk_bits(codes[i : i + CHUNK], 32, "group", "code")[1] // 8
        for i in range(0, codes.size, CHUNK)
    )
    real = sfp.inspect(sfp.encode(a, sfp.Format(exponent_coding="gecko"))).streams["exponents"]
    print(
        f"gecko model check ({peers_name(a)}): model {model} B, coder {real} B,"
        f" {'equal' if model == real else 'DIFFER'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-params", action="store_true", help="skip the Gecko parameter sweep")
    args = ap.parse_args()

    tensors = peers.load_tensors()
    w32 = peers.weights(tensors)
    print(f"# Lossless: MiniLM-L6-v2 weights ({w32.size:,} values), chunk 2^20, single thread")
    data = {dt: peers.cast(w32, dt) for dt in peers.DTYPES}
    for dt, a in data.items():
        codecs = [peers.ours(c) for c in CODINGS] + [peers.zipnn(dt), peers.pcodec(), peers.zstd(3)]
        speed_table(f"weights {dt}", a, codecs, args.repeats)

    print(
        "\n# Exponent bits/value per coder vs the per-chunk order-0 entropy of what each chunk's"
        " exponent stream codes (H*: exponent, + sign if joint, + top mantissa bits if moved)"
    )
    for dt, a in data.items():
        exponent_table(f"weights {dt}", a)
    act = peers.activations(tensors)
    acts = {
        "gelu float32": act["gelu"],
        "gelu bfloat16": peers.cast(act["gelu"], "bfloat16"),
        "relu bfloat16": peers.cast(act["relu"], "bfloat16"),
        "pre float32": act["pre"],
    }
    for name, a in acts.items():
        exponent_table(name, a)

    print("\n# Activations (MiniLM FFN, 2048 random tokens, all 6 layers): ratio")
    print(
        f"{'data':<15} {'sfp-auto':>9} {'zipnn':>7} {'pcodec':>7} {'zstd-3':>7} {'bound':>7}"
        f" {'b-ours':>7}"
    )
    for name, a in acts.items():
        dt = peers_name(a)
        r = [
            peers.measure(c, a, 1)["ratio"]
            for c in (peers.ours("auto"), peers.zipnn(dt), peers.pcodec(), peers.zstd(3))
        ]
        print(
            f"{name:<15} "
            + " ".join(f"{v:7.4f}" for v in r[:1])
            + "  "
            + " ".join(f"{v:7.4f}" for v in r[1:])
            + f" {bound_ratio(a, True):7.4f} {mantissa_ideas(a)['best']:7.4f}"
        )

    print(
        "\n# Mantissa coding: ratio of each idea at its order-0 entropy per 2^20 values"
        " (tables ignored) vs the coder"
    )
    mantissa_table({**{f"weights {k}": v for k, v in data.items()}, **acts})

    print(
        "\n# Sign-exponent joint coding (bits/value, per chunk):"
        " exponent H + sign stream vs joint H"
    )
    for name, a in {**{f"weights {k}": v for k, v in data.items()}, **acts}.items():
        sep, joint = joint_sign_entropy(a)
        print(f"{name:<16} separate {sep:.3f}  joint {joint:.3f}  saves {sep - joint:.3f} b/v")

    print()
    gecko_model_check(data["float32"])
    gecko_model_check(data["float16"])
    if not args.no_params:
        print()
        print("\n".join(gecko_params.table()))


if __name__ == "__main__":
    main()
