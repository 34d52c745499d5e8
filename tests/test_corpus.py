"""Real tensors: the MiniLM-L6-v2 weights round-trip at several formats, in float32 and bfloat16."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp

FORMATS = [
    sfp.Format(),
    sfp.Format(exp_bits=4, man_bits=2),
    sfp.Format(exp_bits=3, man_bits=1, rounding="stochastic", seed=9),
    sfp.Format(man_bits=7),
    sfp.Format(exp_bits=5, man_bits=5, rounding="truncate", underflow="stochastic"),
]


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
@pytest.mark.parametrize("fmt", FORMATS, ids=str)
def test_minilm_round_trips(minilm: dict[str, np.ndarray], dtype: type, fmt: sfp.Format) -> None:
    total_in = total_out = 0
    for name, w in minilm.items():
        x = w.astype(dtype)
        blob = sfp.encode(x, fmt)
        y = sfp.decode(blob)
        assert y.tobytes() == sfp.quantize(x, fmt).tobytes(), name
        if fmt == sfp.Format():
            assert y.tobytes() == x.tobytes(), name
        total_in, total_out = total_in + x.nbytes, total_out + len(blob)
    bits = fmt.bits_per_value(np.dtype(dtype).name)
    source_bits = 8 * np.dtype(dtype).itemsize
    assert total_in / total_out >= source_bits / bits * 0.98  # never worse than the flat container
