"""Arguments of the codec API as users pass them: numpy integers, bools, negative counts,
raw-bits output arrays."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import schrodinger_fp as sfp


def test_numpy_integers_are_integers() -> None:
    fmt = sfp.Format(exp_bits=np.int32(4), man_bits=np.int64(3), seed=np.uint64(7))
    assert fmt == sfp.Format(exp_bits=4, man_bits=3, seed=7)
    assert type(fmt.man_bits) is int and fmt.to_dict() == {"exp_bits": 4, "man_bits": 3, "seed": 7}
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    assert (
        sfp.decode(sfp.encode(x, chunk_size=np.int64(16), threads=np.int8(2))).tobytes()
        == x.tobytes()
    )


@pytest.mark.parametrize("value", [True, np.bool_(False), 2.0, "3"])
def test_bools_and_non_integers_are_refused(value: object) -> None:
    x = np.ones(10, np.float32)
    with pytest.raises(TypeError, match="threads must be an int"):
        sfp.encode(x, threads=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="man_bits must be an int"):
        sfp.Format(man_bits=value)  # type: ignore[arg-type]


def test_negative_counts_are_value_errors() -> None:
    x = np.ones(10, np.float32)
    frame = sfp.encode(x)
    with pytest.raises(ValueError, match="threads=-1 is negative"):
        sfp.encode(x, threads=-1)
    with pytest.raises(ValueError, match="chunk_size=-1 is negative"):
        sfp.encode(x, chunk_size=-1)
    with pytest.raises(ValueError, match="threads=-1"):
        sfp.decode(frame, threads=-1)
    with pytest.raises(ValueError, match="threads=0"):
        sfp.quantize(x, sfp.Format(man_bits=2), threads=0)


def test_a_bfloat16_frame_decodes_into_its_raw_bits() -> None:
    x = np.linspace(-3, 3, 64).astype(ml_dtypes.bfloat16)
    out = np.empty(64, np.uint16)
    assert sfp.decode(sfp.encode(x), out=out) is out
    assert out.tobytes() == x.tobytes()
    with pytest.raises(ValueError, match="out is int16"):
        sfp.decode(sfp.encode(x), out=np.empty(64, np.int16))
    with pytest.raises(ValueError, match="out is uint16"):
        sfp.decode(sfp.encode(x), out=np.empty(63, np.uint16))
