"""Benchmark inputs and peer codecs, all of one shape: ``encode(arr)``, ``decode(bytes, like)``.

Inputs: the MiniLM-L6-v2 weights of the shared corpus as float32, and their round-to-nearest casts
to bfloat16 and float16 (ml_dtypes / numpy casts); real activations made from them (GELU and ReLU of
the
first feed-forward layer over layer-normed token embeddings).

Peers: zstd (zstandard), pcodec, ZipNN (pulls in PyTorch: a benchmark-only dependency), all single
threaded; ours through ``schrodinger_fp``; memcpy (``np.copyto``) as the physical reference.
"""

from __future__ import annotations

import json
import struct
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

import schrodinger_fp as sfp

CORPUS_NAME = "minilm_l6_v2.safetensors"
DTYPES = ("float32", "bfloat16", "float16")
_NP = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float16": np.dtype(np.float16),
}


def retain_freed_memory() -> bool:
    """Keeps freed memory for later allocations (glibc's ``mallopt``), so that no buffer is fresh
    pages (``bench/suite.py --retain-memory`` says why that matters); False, changing nothing,
    where the C library has no ``mallopt``."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    m_mmap_threshold, m_trim_threshold = -3, -1
    # Above the largest buffer the suite makes, so that none is mapped anew or given back.
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 31))


def corpus_path() -> Path:
    """The corpus file: ``../shared/corpus`` beside the checkout, else ``/work/shared/corpus``."""
    for base in (
        Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus",
        Path("/work/shared/corpus"),
    ):
        if (base / CORPUS_NAME).exists():
            return base / CORPUS_NAME
    raise FileNotFoundError(f"{CORPUS_NAME} not found in ../shared/corpus or /work/shared/corpus")


def load_tensors(path: Path | None = None) -> dict[str, np.ndarray]:
    """Every float32 tensor of a safetensors file, by name (read with numpy alone)."""
    raw = (path or corpus_path()).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        lo, hi = meta["data_offsets"]
        out[name] = np.frombuffer(
            raw, dtype="<f4", count=(hi - lo) // 4, offset=8 + n + lo
        ).reshape(meta["shape"])
    return out


def weights(tensors: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """All float32 weights, flattened and concatenated in file order."""
    tensors = tensors or load_tensors()
    return np.concatenate([t.reshape(-1) for t in tensors.values()])


def dtype_name(a: np.ndarray) -> str:
    """The codec's name for the dtype of ``a`` (``bfloat16`` for ml_dtypes' bfloat16)."""
    return "bfloat16" if a.dtype == ml_dtypes.bfloat16 else str(a.dtype)


def cast(x32: np.ndarray, dtype: str) -> np.ndarray:
    """Round-to-nearest cast of float32 data to ``dtype``."""
    return x32.astype(_NP[dtype])


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-12) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def activations(
    tensors: dict[str, np.ndarray] | None = None, tokens: int = 2048, seed: int = 0
) -> dict[str, np.ndarray]:
    """Real activations of MiniLM's feed-forward layers, as float32.

    ``tokens`` random token ids are embedded (word + position + type embeddings, layer norm), then
    every
    layer's first feed-forward matrix is applied to that hidden state (``h @ W1.T + b1``): the
    pre-activation, its GELU (what BERT uses) and its ReLU are returned, concatenated over layers.
    """
    t = tensors or load_tensors()
    pre = "" if "embeddings.word_embeddings.weight" in t else "bert."
    emb = t[pre + "embeddings.word_embeddings.weight"]
    pos = t[pre + "embeddings.position_embeddings.weight"]
    typ = t[pre + "embeddings.token_type_embeddings.weight"]
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, emb.shape[0], size=tokens)
    h = emb[ids] + pos[np.arange(tokens) % pos.shape[0]] + typ[0]
    h = _layer_norm(
        h, t[pre + "embeddings.LayerNorm.weight"], t[pre + "embeddings.LayerNorm.bias"]
    ).astype(np.float32)
    pres = []
    layer = 0
    while f"{pre}encoder.layer.{layer}.intermediate.dense.weight" in t:
        w1 = t[f"{pre}encoder.layer.{layer}.intermediate.dense.weight"]
        b1 = t[f"{pre}encoder.layer.{layer}.intermediate.dense.bias"]
        pres.append((h @ w1.T + b1).astype(np.float32).reshape(-1))
        layer += 1
    z = np.concatenate(pres)
    return {
        "pre": z,
        "gelu": _gelu(z).astype(np.float32),
        "relu": np.maximum(z, 0).astype(np.float32),
    }


@dataclass
class Codec:
    """A lossless codec under test: ``encode(arr) -> bytes`` and ``decode(bytes, like) -> arr``."""

    name: str
    encode: Callable[[np.ndarray], bytes]
    decode: Callable[[bytes, np.ndarray], np.ndarray]


def ours(coding: str) -> Codec:
    """schrodinger_fp, lossless, single thread, with exponent coding ``coding``."""
    fmt = sfp.Format(exponent_coding=coding)
    return Codec(
        f"sfp-{coding}",
        lambda a: sfp.encode(a, fmt, threads=1),
        lambda b, like: sfp.decode(b, threads=1),
    )


def zstd(level: int = 3) -> Codec:
    """zstd at ``level`` on the raw bytes, single thread."""
    import zstandard

    c = zstandard.ZstdCompressor(level=level)
    d = zstandard.ZstdDecompressor()
    return Codec(
        f"zstd-{level}",
        lambda a: c.compress(a.reshape(-1).view(np.uint8).data),
        lambda b, like: np.frombuffer(d.decompress(b), dtype=like.dtype),
    )


def pcodec() -> Codec:
    """pcodec standalone, default level; bfloat16 (not a pcodec type) goes as float32."""
    from pcodec import ChunkConfig, standalone

    cfg = ChunkConfig()

    def enc(a: np.ndarray) -> bytes:
        if a.dtype == _NP["bfloat16"]:
            a = a.astype(np.float32)
        return standalone.simple_compress(a, cfg)

    def dec(b: bytes, like: np.ndarray) -> np.ndarray:
        out = standalone.simple_decompress(b)
        return out.astype(like.dtype) if out.dtype != like.dtype else out

    return Codec("pcodec", enc, dec)


def zipnn(dtype: str) -> Codec:
    """ZipNN (byte grouping + Huffman), single thread, for ``dtype``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from zipnn import ZipNN

    z = ZipNN(bytearray_dtype=dtype, threads=1, input_format="byte")
    return Codec(
        "zipnn",
        lambda a: z.compress(a.tobytes()),
        lambda b, like: np.frombuffer(z.decompress(b), dtype=like.dtype),
    )


def best_time(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    """The fastest of ``repeats`` runs of ``fn`` (seconds) and the last result."""
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def memcpy_seconds(a: np.ndarray, repeats: int = 5) -> float:
    """Time of one ``np.copyto`` of ``a`` into a preallocated buffer (the bandwidth reference)."""
    dst = np.empty_like(a)
    return best_time(lambda: np.copyto(dst, a), repeats)[0]


def measure(codec: Codec, a: np.ndarray, repeats: int = 3) -> dict[str, float]:
    """Ratio, encode and decode seconds of ``codec`` on ``a``; checks the round trip bit for bit."""
    enc_s, blob = best_time(lambda: codec.encode(a), repeats)
    dec_s, back = best_time(lambda: codec.decode(blob, a), repeats)
    bits = a.reshape(-1).view(f"u{a.dtype.itemsize}")
    if not np.array_equal(np.asarray(back).reshape(-1).view(bits.dtype), bits):
        raise AssertionError(f"{codec.name} did not round-trip {a.dtype}")
    return {"ratio": a.nbytes / len(blob), "enc_s": enc_s, "dec_s": dec_s, "bytes": len(blob)}
