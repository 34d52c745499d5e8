"""Seeds of the stochastic modes for each piece of a larger store (a tensor, a chunk).

Stochastic rounding draws its random bits from ``(seed, element index)``. Used as is, one seed
would give every tensor of an archive and every chunk of a Zarr array the same pattern of
roundings, correlating errors that should be independent. Each piece therefore rounds with a
seed derived from the user's seed and a key naming the piece; the derivation is a fixed hash,
so a store written twice with the same seed is identical.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from schrodinger_fp.format import Format

__all__ = ["derive_seed", "is_stochastic", "with_derived_seed"]


def derive_seed(seed: int, key: bytes) -> int:
    """Return the seed of the piece named ``key``: the first 8 bytes of BLAKE2b(seed, key).

    Parameters
    ----------
    seed : int
        The user's seed (0 .. 2**64-1).
    key : bytes
        What names the piece: a tensor name in UTF-8, a digest of a chunk's values.

    Returns
    -------
    int
        A seed in 0 .. 2**64-1.
    """
    digest = hashlib.blake2b(key, digest_size=8, key=seed.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little")


def is_stochastic(fmt: Format) -> bool:
    """Whether ``fmt`` draws random bits (stochastic rounding or underflow)."""
    return fmt.rounding == "stochastic" or fmt.underflow == "stochastic"


def with_derived_seed(fmt: Format, key: bytes) -> Format:
    """Return ``fmt`` keyed for the piece ``key``; a format without randomness is returned as is."""
    if not is_stochastic(fmt):
        return fmt
    return replace(fmt, seed=derive_seed(fmt.seed, key))
