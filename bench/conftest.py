"""pytest-benchmark reporting for ``bench/micro_kernels.py``: GB/s and % of memcpy per row."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    """After pytest-benchmark's own table: each kernel's best time as GB/s and as % of the memcpy
    of the same dtype in the same run."""
    session = getattr(config, "_benchmarksession", None)
    rows = [b for b in getattr(session, "benchmarks", []) if "bytes" in b.extra_info]
    if not rows:
        return
    memcpy = {
        b.params["dtype"]: b.extra_info["bytes"] / b.stats.min
        for b in rows
        if b.name.startswith("test_memcpy")
    }
    terminalreporter.write_sep("-", "throughput (best round; % of memcpy of the same dtype)")
    for b in rows:
        speed = b.extra_info["bytes"] / b.stats.min
        ref = memcpy.get(b.params.get("dtype", ""))
        share = f"{100 * speed / ref:6.1f}%" if ref else "      "
        ratio = b.extra_info.get("ratio")
        extra = f"  ratio {ratio:.3f}" if ratio else ""
        terminalreporter.write_line(f"{b.name:60} {speed / 1e9:7.2f} GB/s {share}{extra}")
