"""The ``sfp`` command: compress tensor dumps into archives and back, following zstd's ways.

``sfp compress``, ``decompress``, ``list``, ``test``, ``stats`` and ``demo``. Inputs are kept
unless ``--rm``; outputs are never overwritten without ``-f`` and never left half-written, also
when the command is interrupted (Ctrl-C, SIGTERM, SIGHUP). Exit codes: 0 success, 1 error (bad
input, corrupt data, I/O failure), 2 usage, 128 + the signal's number when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

import numpy as np

from schrodinger_fp.cli.convert import WRITABLE, cmd_compress, cmd_decompress
from schrodinger_fp.cli.options import (
    CommandError,
    add_common,
    add_format_options,
    check_usage,
    human,
    threads_from_args,
)
from schrodinger_fp.format import FIELD_WIDTHS, Format
from schrodinger_fp.storage.archive import Archive, Entry

#: Signals that end ``sfp`` the way Ctrl-C does: outputs in progress are removed.
TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Interrupted(BaseException):
    """A terminating signal arrived; unwinding removes the outputs in progress."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def describe_format(entry: Entry) -> str:
    """Return how a tensor is stored: ``raw``, ``lossless`` or ``e4m2 nearest (lossy)``."""
    if entry.encoding == "raw":
        return "raw"
    fmt = entry.format or Format()
    if fmt.is_lossless_for(entry.dtype):
        return "lossless"
    if fmt.container is not None:
        return f"{fmt.container} (lossy)"
    exp, man = FIELD_WIDTHS[entry.dtype]
    exp = exp if fmt.exp_bits is None else fmt.exp_bits
    man = man if fmt.man_bits is None else fmt.man_bits
    return f"e{exp}m{man} {fmt.rounding} (lossy)"


def cmd_list(args: argparse.Namespace) -> None:
    """Print one line per tensor: dtype, shape, format, stored size, ratio, bits per value."""
    with Archive(args.file) as archive:
        entries = list(archive.entries.values())
        files = list(archive.files)
        width = max([len("name"), *(len(e.name) for e in entries)])
        print(
            f"{'name':<{width}}  {'dtype':<8} {'shape':<14} {'format':<26} "
            f"{'stored':>10} {'ratio':>7} {'bits/val':>8}"
        )
        for e in entries:
            shape = "x".join(map(str, e.shape)) or "scalar"
            bits = 8 * e.length / max(1, int(np.prod(e.shape)))
            print(
                f"{e.name:<{width}}  {e.dtype:<8} {shape:<14} {describe_format(e):<26} "
                f"{e.length:>10} {e.ratio:>6.3f}x {bits:>8.3f}"
            )
        raw = sum(e.nbytes for e in entries)
        stored = Path(args.file).stat().st_size
        lossy = [e for e in entries if not e.lossless]
        kind = f"LOSSY ({len(lossy)} of {len(entries)} tensors reduced)" if lossy else "lossless"
        if files:
            print(f"{len(files)} other files: {', '.join(files)}")
        print(
            f"{len(entries)} tensors, {human(raw)} => {human(stored)}, "
            f"ratio {raw / stored if stored else 0:.3f}x, {kind}"
        )


def cmd_test(args: argparse.Namespace) -> None:
    """Verify every checksum and decode every frame."""
    with Archive(args.file, threads=threads_from_args(args)) as archive:
        archive.verify()
        count = len(archive)
    if not args.quiet:
        print(f"{args.file} : OK ({count} tensors)", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``sfp`` argument parser."""
    from schrodinger_fp.cli import demo, stats

    parser = argparse.ArgumentParser(prog="sfp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "compress",
        help="compress a .safetensors/.npy/.npz/.pt dump or a checkpoint directory to .sfp",
    )
    p.add_argument(
        "file",
        help="input dump; a checkpoint directory or a *.safetensors.index.json with its shards; "
        "- for stdin (safetensors or .npy)",
    )
    p.add_argument("-o", "--output", help="output archive (default: FILE.sfp; - for stdout)")
    p.add_argument("-c", "--stdout", action="store_true", help="write the archive to stdout")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--rm", action="store_true", help="remove the input after success")
    add_format_options(p)
    add_common(p)
    p.set_defaults(run=cmd_compress)

    p = sub.add_parser("decompress", help="decompress an .sfp archive")
    p.add_argument("file", help="input archive (- for stdin redirected from a file)")
    p.add_argument(
        "-o",
        "--output",
        help="output file (default: FILE without .sfp; - for stdout); for a checkpoint, "
        "the directory",
    )
    p.add_argument("-c", "--stdout", action="store_true", help="write to stdout")
    p.add_argument("--to", choices=WRITABLE, help="output type (default: from the output name)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--rm", action="store_true", help="remove the archive after success")
    add_common(p)
    p.set_defaults(run=cmd_decompress)

    p = sub.add_parser("list", help="list tensors: dtype, shape, format, ratio")
    p.add_argument("file")
    p.set_defaults(run=cmd_list, quiet=False)

    p = sub.add_parser("test", help="verify checksums and decode every tensor")
    p.add_argument("file")
    add_common(p)
    p.set_defaults(run=cmd_test)

    stats.add_parser(sub)
    demo.add_parser(sub)
    return parser


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _terminating_signals_unwind() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into ``Interrupted`` while a command runs (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in TERMINATING}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sfp`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check_usage(parser, args)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        with _terminating_signals_unwind():
            args.run(args)
    except BrokenPipeError:
        # The reader went away (``sfp list x.sfp | head``): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (KeyboardInterrupt, Interrupted) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"sfp: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + int(signum)
    except Exception as exc:
        message = _message(exc)
        if message is None:
            raise
        print(f"sfp: error: {message}", file=sys.stderr)
        return 1
    return 0


def _message(exc: Exception) -> str | None:
    """What ``sfp: error:`` says about ``exc``; None for a bug (an unexpected type)."""
    if isinstance(exc, (CommandError, ValueError, TypeError, MemoryError)):
        return str(exc) or type(exc).__name__
    if isinstance(exc, (FileExistsError, KeyError)):
        return str(exc.args[0]) if exc.args else type(exc).__name__
    if isinstance(exc, OSError):
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return None


__all__ = ["build_parser", "main"]
