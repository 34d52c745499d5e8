"""Gecko's parameter space measured on real tensors: group size, base, zero handling, header width.

An exact numpy model of the stream Gecko writes (``rust/sfp-core/src/exponent/gecko.rs``):
per chunk a 3-byte prefix, then per group a header (with a per-group base, its offset in
``bits(r)`` bits; the width in ``bits(bits(r))`` bits; one zero flag with the zero code) and the
deltas at the group's width. "mask" (a zero flag and a G-bit zero mask per group holding zeros;
not in the coder, as the zero code never costs more) is modelled for comparison. ``lossless.py``
checks the model against the coder.

Run: ``python bench/gecko_params.py``.
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 20
GROUPS = (4, 8, 16, 32, 64, 128)


def _bits(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64)
    out = np.zeros(v.shape, dtype=np.int64)
    nz = v > 0
    out[nz] = np.floor(np.log2(v[nz])).astype(np.int64) + 1
    return out


def gecko_chunk_bits(
    c: np.ndarray, group: int, base: str = "chunk", zeros: str = "code"
) -> tuple[int, int]:
    """(header bits, total bits incl. the 3-byte prefix and padding) Gecko spends on one chunk."""
    if c.size == 0:
        return 0, 0
    c = c.astype(np.int64)
    r = int(c.max())
    starts = np.arange(0, c.size, group)
    lens = np.diff(np.append(starts, c.size))
    is_zero = c == 0
    has_zero = np.add.reduceat(is_zero.astype(np.int64), starts) > 0
    all_zero = np.add.reduceat(is_zero.astype(np.int64), starts) == lens
    gmax = np.maximum.reduceat(c, starts)
    min_nz = np.minimum.reduceat(np.where(is_zero, 1 << 20, c), starts)
    b = gmax if base == "group" else np.full(starts.size, r)
    wmax = int(_bits(np.array([r]))[0])
    hdr = (wmax if base == "group" else 0) + int(_bits(np.array([wmax]))[0])
    if zeros == "natural":
        w = _bits(b - np.where(has_zero, 0, min_nz))
        payload = lens * w
    elif zeros == "code":
        hdr += 1
        w = np.where(all_zero, 0, _bits(b - min_nz + has_zero))
        payload = lens * w
    else:  # mask
        hdr += 1
        w = np.where(all_zero, 0, _bits(b - min_nz))
        payload = lens * w + np.where(has_zero, lens, 0)
    header_bits = hdr * starts.size
    total = header_bits + int(payload.sum())
    return header_bits, 24 + 8 * ((total + 7) // 8)


def gecko_bits(
    codes: np.ndarray, group: int, base: str = "chunk", zeros: str = "code", chunk: int = CHUNK
) -> tuple[float, float]:
    """(header bits/value, total bits/value) over all chunks of ``codes``."""
    h = t = 0
    for i in range(0, codes.size, chunk):
        hb, tb = gecko_chunk_bits(codes[i : i + chunk], group, base, zeros)
        h += hb
        t += tb
    return h / codes.size, t / codes.size


def window_codes(fields: np.ndarray, exp_bits: int) -> np.ndarray:
    """Codes of a reduced format with ``exp_bits`` exponent bits: a window of ``2^e - 1`` exponents
    under the largest (code 0 = flushed to zero), as the codec's default window does."""
    top = int(fields.max())
    codes = fields.astype(np.int64) - top + (1 << exp_bits) - 1
    return np.where((codes >= 1) & (fields > 0), codes, 0).astype(np.uint16)


def datasets() -> dict[str, np.ndarray]:
    """Exponent codes of the corpus and of real activations made from it."""
    import peers

    from schrodinger_fp.stats import exponent_fields

    t = peers.load_tensors()
    w = peers.weights(t)
    act = peers.activations(t)
    e32 = exponent_fields(w)
    return {
        "w f32": e32,
        "w f16": exponent_fields(peers.cast(w, "float16")),
        "w f32 e4": window_codes(e32, 4),
        "gelu f32": exponent_fields(act["gelu"]),
        "relu f32": exponent_fields(act["relu"]),
        "gelu bf16 e4": window_codes(exponent_fields(peers.cast(act["gelu"], "bfloat16")), 4),
    }


def table(data: dict[str, np.ndarray] | None = None) -> list[str]:
    """The parameter table as text lines: bits per exponent for every setting and data set."""
    data = data or datasets()
    names = list(data)
    lines = [
        "Gecko bits/exponent (hdr = header bits/value at that setting on 'w f32'); lower is better",
        f"{'G':>4} {'base':>6} {'zeros':>8} {'hdr':>6} " + " ".join(f"{n:>12}" for n in names),
    ]
    best: dict[str, tuple[float, str]] = {}
    for group in GROUPS:
        for base in ("chunk", "group"):
            for zeros in ("natural", "code", "mask"):
                row = []
                hdr0 = 0.0
                for i, n in enumerate(names):
                    hb, tb = gecko_bits(data[n], group, base, zeros)
                    if i == 0:
                        hdr0 = hb
                    row.append(tb)
                    key = f"G={group} {base} {zeros}"
                    if n not in best or tb < best[n][0]:
                        best[n] = (tb, key)
                lines.append(
                    f"{group:>4} {base:>6} {zeros:>8} {hdr0:6.3f} "
                    + " ".join(f"{v:12.3f}" for v in row)
                )
    lines.append(
        "best per data set: " + "; ".join(f"{n}: {v:.3f} ({k})" for n, (v, k) in best.items())
    )
    return lines


if __name__ == "__main__":
    print("\n".join(table()))
