"""An interrupted ``sfp`` (Ctrl-C, SIGTERM, SIGHUP) leaves no output and no temporary file.

The command reads its input from a pipe that the test holds open, so it is certainly in the
middle of writing when the signal comes: the test waits for the temporary output to appear (a
marker, not a sleep), sends the signal, and checks the exit code and the directory.
"""

from __future__ import annotations

import json
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SFP = [sys.executable, "-m", "schrodinger_fp.cli"]


def safetensors_head(count: int, size: int) -> bytes:
    """The header of a safetensors stream of ``count`` float32 tensors of ``size`` values."""
    header = {
        f"t{i}": {
            "dtype": "F32",
            "shape": [size],
            "data_offsets": [4 * size * i, 4 * size * (i + 1)],
        }
        for i in range(count)
    }
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob


def wait_for(condition: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_during_compress_leaves_nothing(tmp_path: Path, signum: int) -> None:
    target = tmp_path / "out.sfp"
    process = subprocess.Popen(
        [*SFP, "compress", "-", "-o", str(target), "-q"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stderr is not None
    try:
        process.stdin.write(safetensors_head(2, 1000))
        process.stdin.write(np.ones(1000, np.float32).tobytes())  # the first tensor only
        process.stdin.flush()
        wait_for(lambda: any(tmp_path.glob(".out.sfp.*.tmp")), "the temporary output")
        process.send_signal(signum)
        code = process.wait(timeout=60)
        stderr = process.stderr.read().decode()
    finally:
        process.kill()
        process.wait()
        process.stdin.close()
        process.stderr.close()
    assert code == 128 + signum, stderr
    assert f"sfp: interrupted ({signal.Signals(signum).name})" in stderr
    assert list(tmp_path.iterdir()) == []
