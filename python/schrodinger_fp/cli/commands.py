"""The ``sfp`` command: compress tensor dumps into archives and back, following zstd's ways.

``sfp compress``, ``decompress``, ``list``, ``test``, ``stats`` and ``demo``. Inputs are kept
unless ``--rm``; outputs are never overwritten without ``-f`` and never left half-written.
Exit codes: 0 success, 1 error (bad input, corrupt data, I/O failure), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from schrodinger_fp._atomic import atomic_output
from schrodinger_fp.archive import Archive, Entry, save
from schrodinger_fp.cliopts import (
    CommandError,
    add_common,
    add_format_options,
    check_usage,
    human,
    policy_from_args,
    threads_from_args,
)
from schrodinger_fp.format import Format
from schrodinger_fp.tensorfiles import (
    kind_of,
    open_tensors,
    write_npy,
    write_npz,
    write_safetensors,
)

SUFFIX = ".sfp"
SOURCE_KEY = "sfp.source_format"
WRITABLE = ("safetensors", "npz", "npy")
#: (exponent bits, mantissa bits) of each codec dtype.
FIELDS = {"float32": (8, 23), "float64": (11, 52), "float16": (5, 10), "bfloat16": (8, 7)}


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


@contextlib.contextmanager
def progress_bar(total: int, desc: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(nbytes)`` callable that drives a tqdm bar on stderr when enabled.

    The bar is shown only when ``enabled`` and stderr is a terminal and tqdm is installed.
    """
    if not enabled or not sys.stderr.isatty():
        yield lambda n: None
        return
    try:
        from tqdm import tqdm
    except ImportError:
        yield lambda n: None
        return
    with tqdm(
        total=total, desc=desc, unit="B", unit_scale=True, file=sys.stderr, leave=False
    ) as bar:
        yield bar.update


def describe_format(entry: Entry) -> str:
    """Return how a tensor is stored: ``raw``, ``lossless`` or ``e4m2 nearest (lossy)``."""
    if entry.encoding == "raw":
        return "raw"
    fmt = entry.format or Format()
    if fmt.is_lossless_for(entry.dtype):
        return "lossless"
    exp, man = FIELDS[entry.dtype]
    exp = exp if fmt.exp_bits is None else fmt.exp_bits
    man = man if fmt.man_bits is None else fmt.man_bits
    return f"e{exp}m{man} {fmt.rounding} (lossy)"


def cmd_compress(args: argparse.Namespace) -> None:
    """Compress a tensor dump into an ``.sfp`` archive."""
    source = Path(args.file)
    if source.suffix == SUFFIX:
        raise CommandError(f"{source} already has the {SUFFIX} suffix -- ignored")
    if not source.is_file():
        raise CommandError(f"{source}: no such file")
    kind_of(source)
    target = Path(args.output) if args.output else source.with_name(source.name + SUFFIX)
    _check_distinct(source, target)
    policy = policy_from_args(args)
    started = time.perf_counter()
    tensors = open_tensors(source)
    metadata = {**tensors.metadata, SOURCE_KEY: tensors.kind}
    with progress_bar(tensors.nbytes, source.name, not args.quiet) as advance:
        entries = save(
            target,
            tensors.items(),
            policy,
            metadata=metadata,
            threads=threads_from_args(args),
            overwrite=args.force,
            progress=lambda e: advance(e.nbytes),
        )
    elapsed = time.perf_counter() - started
    _summary(args, source, target, entries, elapsed)
    if args.rm:
        source.unlink()


def _summary(
    args: argparse.Namespace, source: Path, target: Path, entries: list[Entry], elapsed: float
) -> None:
    raw = sum(e.nbytes for e in entries)
    stored = target.stat().st_size
    ratio = raw / stored if stored else 0.0
    lossy = sum(not e.lossless for e in entries)
    kind = f"lossy: {lossy} of {len(entries)} tensors reduced" if lossy else "lossless"
    speed = raw / elapsed / 1e6 if elapsed > 0 else float("inf")
    _say(
        args,
        f"{source} : {100 * stored / raw if raw else 0:.2f}%   ({human(raw)} => {human(stored)}, "
        f"{target}) ratio {ratio:.3f}x, {kind}, {elapsed:.2f} s, {speed:.1f} MB/s",
    )


def _check_distinct(source: Path, target: Path) -> None:
    if target.exists() and target.resolve() == source.resolve():
        raise CommandError(f"{target}: output would overwrite the input")


def output_kind(args: argparse.Namespace, archive: Path) -> tuple[Path, str]:
    """Choose the decompressed file's path and type from ``-o``, ``--to`` and the name."""
    if args.output:
        target = Path(args.output)
    elif archive.suffix == SUFFIX:
        target = archive.with_name(archive.name[: -len(SUFFIX)])
        if args.to:
            target = target.with_suffix("." + args.to)
    else:
        raise CommandError(f"{archive}: unknown suffix (expected {SUFFIX}); give -o OUTPUT")
    if args.to:
        return target, args.to
    suffix = target.suffix.lower()
    if suffix.lstrip(".") in WRITABLE:
        return target, suffix.lstrip(".")
    raise CommandError(
        f"cannot tell the output type of {target}; use --to safetensors, --to npz or --to npy"
    )


def cmd_decompress(args: argparse.Namespace) -> None:
    """Decompress an archive to safetensors, npz or npy."""
    source = Path(args.file)
    target, kind = output_kind(args, source)
    _check_distinct(source, target)
    started = time.perf_counter()
    with Archive(source, threads=threads_from_args(args)) as archive:
        entries = list(archive.entries.values())
        if kind == "npy" and len(entries) != 1:
            raise CommandError(f"--to npy needs exactly one tensor; {source} holds {len(entries)}")
        total = sum(e.nbytes for e in entries)
        with progress_bar(total, source.name, not args.quiet) as advance:

            def arrays() -> Iterator[np.ndarray]:
                for entry in entries:
                    array = archive[entry.name]
                    advance(entry.nbytes)
                    yield array

            with atomic_output(target, overwrite=args.force) as stream:
                if kind == "safetensors":
                    specs = [(e.name, e.dtype, e.shape) for e in entries]
                    meta = {k: v for k, v in archive.metadata.items() if k != SOURCE_KEY}
                    write_safetensors(stream, specs, arrays(), meta)
                elif kind == "npz":
                    write_npz(stream, zip([e.name for e in entries], arrays(), strict=True))
                else:
                    write_npy(stream, next(arrays()))
    elapsed = time.perf_counter() - started
    speed = total / elapsed / 1e6 if elapsed > 0 else float("inf")
    _say(args, f"{source} : {human(total)} => {target} ({kind}), {elapsed:.2f} s, {speed:.1f} MB/s")
    if args.rm:
        source.unlink()


def cmd_list(args: argparse.Namespace) -> None:
    """Print one line per tensor: dtype, shape, format, stored size, ratio, bits per value."""
    with Archive(args.file) as archive:
        entries = list(archive.entries.values())
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
        print(
            f"{len(entries)} tensors, {human(raw)} => {human(stored)}, "
            f"ratio {raw / stored if stored else 0:.3f}x, {kind}"
        )


def cmd_test(args: argparse.Namespace) -> None:
    """Verify every checksum and decode every frame."""
    with Archive(args.file, threads=threads_from_args(args)) as archive:
        archive.verify()
        count = len(archive)
    _say(args, f"{args.file} : OK ({count} tensors)")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``sfp`` argument parser."""
    from schrodinger_fp import clistats, demo

    parser = argparse.ArgumentParser(prog="sfp", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("compress", help="compress a .safetensors/.npy/.npz/.pt dump to .sfp")
    p.add_argument("file", help="input dump")
    p.add_argument("-o", "--output", help="output archive (default: FILE.sfp)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--rm", action="store_true", help="remove the input after success")
    add_format_options(p)
    add_common(p)
    p.set_defaults(run=cmd_compress)

    p = sub.add_parser("decompress", help="decompress an .sfp archive")
    p.add_argument("file", help="input archive")
    p.add_argument("-o", "--output", help="output file (default: FILE without .sfp)")
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

    clistats.add_parser(sub)
    demo.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sfp`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        check_usage(parser, args)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        args.run(args)
    except BrokenPipeError:
        # The reader went away (``sfp list x.sfp | head``): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except CommandError as exc:
        print(f"sfp: error: {exc}", file=sys.stderr)
        return 1
    except FileExistsError as exc:
        print(f"sfp: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"sfp: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"sfp: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        print(f"sfp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sfp: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["build_parser", "main"]
