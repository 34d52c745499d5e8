"""Beyond one machine: worker processes of a dask.distributed cluster compress into Zarr."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from schrodinger_fp.zarr import SchrodingerFPCodec  # noqa: E402


def codec_loaded() -> bool:
    return "schrodinger_fp.zarr" in sys.modules


def test_local_cluster_writes_and_reads_zarr_bit_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((1200, 900)).astype(np.float32)
    x[::97, ::89] = np.nan
    path = str(tmp_path / "big.zarr")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        target = zarr.create_array(
            store=path,
            shape=x.shape,
            chunks=(300, 300),
            dtype="float32",
            serializer=SchrodingerFPCodec(),
            compressors=None,
        )
        with distributed.get_task_stream(client) as stream:
            da.from_array(x, chunks=(300, 300)).store(target, lock=False)
        workers = {task["worker"] for task in stream.data}
        assert len(workers) == 2  # both worker processes stored (so encoded) chunks
        assert all(client.run(codec_loaded).values())
        back = da.from_zarr(path).compute()
    assert back.tobytes() == x.tobytes()
    assert len(list((tmp_path / "big.zarr" / "c").rglob("*"))) >= 12  # 4 x 3 chunks written
