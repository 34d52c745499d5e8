"""``sfp compress`` and ``sfp decompress``: tensor dumps and checkpoint directories to archives
and back, following zstd's ways (``-`` is stdin, ``-c`` or ``-o -`` stdout; the output keeps the
input's permission bits; an output is never left half-written).

Where streaming is possible: ``compress`` reads safetensors and ``.npy`` from a pipe (an ``.npz``
or PyTorch file keeps its directory at its end) and writes an archive to a pipe; ``decompress``
writes safetensors, ``.npy`` and ``.npz`` to a pipe, but reads an archive only from a file (its
index is at its end), which may be stdin redirected from a file.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from schrodinger_fp.cli.options import CommandError, human, policy_from_args, threads_from_args
from schrodinger_fp.cli.progress import progress_bar
from schrodinger_fp.format import FIELD_WIDTHS, Format
from schrodinger_fp.storage.archive import Archive, Entry, save
from schrodinger_fp.storage.atomic import atomic_output
from schrodinger_fp.storage.checkpoint import (
    CHECKPOINT_KEY,
    INDEX_SUFFIX,
    Checkpoint,
    files_of,
    restore,
    save_checkpoint,
)
from schrodinger_fp.storage.tensorfiles import (
    TensorFile,
    kind_of,
    open_tensors,
    read_stream,
    write_npy,
    write_npz,
    write_safetensors,
)
from schrodinger_fp.training.policy import PolicyLike

SUFFIX = ".sfp"
SOURCE_KEY = "sfp.source_format"
WRITABLE = ("safetensors", "npz", "npy")
STDIO = "-"


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


class _CountingStream:
    """Counts what passes to a stream that cannot be asked its size afterwards (a pipe)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def write(self, data: Any) -> int:
        written = self._stream.write(data)
        self.count += memoryview(data).nbytes
        return written

    def flush(self) -> None:
        self._stream.flush()


def _stdout(what: str) -> _CountingStream:
    if sys.stdout.isatty():
        raise CommandError(f"refusing to write {what} to a terminal (use -o FILE, or a pipe)")
    return _CountingStream(sys.stdout.buffer)


def _existing(name: str) -> Path:
    path = Path(name)
    if not path.exists():
        raise CommandError(f"{path}: no such file or directory")
    return path


def cmd_compress(args: argparse.Namespace) -> None:
    """Compress a tensor dump, a checkpoint directory or a shard index into an ``.sfp`` archive."""
    policy = policy_from_args(args)
    threads = threads_from_args(args)
    to_stdout = args.stdout or args.output == STDIO or (args.file == STDIO and not args.output)
    mode: int | None = None
    job: _TensorsJob | _CheckpointJob
    if args.file == STDIO:
        source_name = "<stdin>"
        job = _TensorsJob(read_stream(sys.stdin.buffer), policy, threads)
        target = None if to_stdout else Path(args.output)
    else:
        source = _existing(args.file)
        source_name = str(source)
        if source.suffix == SUFFIX:
            raise CommandError(f"{source} already has the {SUFFIX} suffix -- ignored")
        if source.is_dir() or source.name.endswith(INDEX_SUFFIX):
            if args.rm:
                raise CommandError("--rm does not apply to a checkpoint: remove its files yourself")
            checkpoint = Checkpoint.of(source)
            mode = _private_mode(checkpoint.root / p for p in checkpoint.paths)
            job = _CheckpointJob(checkpoint, policy, threads)
        else:
            kind_of(source)
            job = _TensorsJob(open_tensors(source), policy, threads)
            mode = stat.S_IMODE(source.stat().st_mode)
        default = source.with_name(source.resolve().name + SUFFIX)
        target = None if to_stdout else Path(args.output) if args.output else default
        if target is not None and target.exists() and target.resolve() == source.resolve():
            raise CommandError(f"{target}: output would overwrite the input")
    started = time.perf_counter()
    with progress_bar(job.nbytes(), Path(source_name).name, not args.quiet) as advance:
        if target is None:
            out = _stdout("an archive")
            entries = job.write(out, advance)
            out.flush()
            stored, where = out.count, "stdout"
        else:
            with atomic_output(target, overwrite=args.force, mode=mode) as stream:
                entries = job.write(stream, advance)
            stored, where = target.stat().st_size, str(target)
    _summary(args, source_name, where, entries, stored, time.perf_counter() - started)
    _clamp_notes(args, policy, entries)
    if args.rm and args.file != STDIO:
        Path(args.file).unlink()


@dataclass(frozen=True)
class _TensorsJob:
    """Compressing one tensor dump."""

    tensors: TensorFile
    policy: PolicyLike
    threads: int | None

    def nbytes(self) -> int:
        return self.tensors.nbytes

    def write(self, stream: Any, advance: Callable[[int], None]) -> list[Entry]:
        return save(
            stream,
            self.tensors.items(),
            self.policy,
            metadata={**self.tensors.metadata, SOURCE_KEY: self.tensors.kind},
            threads=self.threads,
            progress=lambda e: advance(e.nbytes),
            clamp=True,
        )


@dataclass(frozen=True)
class _CheckpointJob:
    """Compressing the files of a checkpoint."""

    checkpoint: Checkpoint
    policy: PolicyLike
    threads: int | None

    def nbytes(self) -> int:
        return sum((self.checkpoint.root / p).stat().st_size for p in self.checkpoint.paths)

    def write(self, stream: Any, advance: Callable[[int], None]) -> list[Entry]:
        return save_checkpoint(
            stream, self.checkpoint, self.policy, threads=self.threads, progress=advance
        )


def _private_mode(paths: Iterator[Path]) -> int:
    """The permission bits every file allows: a checkpoint with one private file stays private."""
    mode = 0o666
    for path in paths:
        mode &= stat.S_IMODE(path.stat().st_mode)
    return mode


def _summary(
    args: argparse.Namespace,
    source: str,
    target: str,
    entries: list[Entry],
    stored: int,
    elapsed: float,
) -> None:
    raw = sum(e.nbytes for e in entries)
    ratio = raw / stored if stored else 0.0
    lossy = sum(not e.lossless for e in entries)
    kind = f"lossy: {lossy} of {len(entries)} tensors reduced" if lossy else "lossless"
    speed = raw / elapsed / 1e6 if elapsed > 0 else float("inf")
    _say(
        args,
        f"{source} : {100 * stored / raw if raw else 0:.2f}%   ({human(raw)} => {human(stored)}, "
        f"{target}) ratio {ratio:.3f}x, {kind}, {elapsed:.2f} s, {speed:.1f} MB/s",
    )


def _clamp_notes(args: argparse.Namespace, policy: object, entries: list[Entry]) -> None:
    """Say which dtypes kept a whole field because the asked width exceeds theirs."""
    if not isinstance(policy, Format):
        return
    counts: dict[str, int] = {}
    for entry in entries:
        if entry.encoding == "sfp" or entry.dtype in FIELD_WIDTHS:
            counts[entry.dtype] = counts.get(entry.dtype, 0) + 1
    for dtype, count in sorted(counts.items()):
        if dtype not in FIELD_WIDTHS:
            continue
        src_e, src_m = FIELD_WIDTHS[dtype]
        for field, asked, width in (
            ("man", policy.man_bits, src_m),
            ("exp", policy.exp_bits, src_e),
        ):
            if asked is not None and asked > width:
                _say(
                    args,
                    f"note: --{field}-bits {asked} exceeds {dtype}'s {width}: "
                    f"its {count} {dtype} tensors keep all {width} {field} bits",
                )


def output_kind(
    args: argparse.Namespace, archive: Path | None, metadata: dict[str, str]
) -> tuple[Path | None, str]:
    """Choose the decompressed file (None: stdout) and its type.

    The type comes from ``--to``, else the output's suffix, else the type the archive was
    made from.
    """
    if args.stdout or args.output == STDIO or (archive is None and not args.output):
        target = None
    elif args.output:
        target = Path(args.output)
    elif archive is not None and archive.suffix == SUFFIX:
        target = archive.with_name(archive.name[: -len(SUFFIX)])
        if args.to and target.suffix.lstrip(".").lower() != args.to:
            target = target.with_suffix("." + args.to)
    else:
        raise CommandError(f"{archive}: unknown suffix (expected {SUFFIX}); give -o OUTPUT")
    if args.to:
        return target, args.to
    suffix = "" if target is None else target.suffix.lower().lstrip(".")
    if suffix in WRITABLE:
        return target, suffix
    source = metadata.get(SOURCE_KEY)
    if source in WRITABLE:
        return target, source
    made_from = f" (the archive was made from {source})" if source else ""
    raise CommandError(
        f"cannot tell the output type of {target or 'stdout'}{made_from}; "
        "use --to safetensors, --to npz or --to npy"
    )


def cmd_decompress(args: argparse.Namespace) -> None:
    """Decompress an archive to safetensors, npz or npy, or a checkpoint to its files."""
    if args.file == STDIO:
        if not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):
            raise CommandError(
                "cannot read an archive from a pipe: its index is at its end; give the file "
                "name, or redirect a file (sfp decompress - < model.sfp)"
            )
        source: Path | None = None
        file: Any = sys.stdin.buffer
        mode = stat.S_IMODE(os.fstat(sys.stdin.fileno()).st_mode)
    else:
        source = _existing(args.file)
        file = source
        mode = stat.S_IMODE(source.stat().st_mode)
    started = time.perf_counter()
    with Archive(file, threads=threads_from_args(args)) as archive:
        entries = list(archive.entries.values())
        if CHECKPOINT_KEY in archive.metadata:
            total = _restore(args, archive, source)
            where, kind = "files", "checkpoint"
        else:
            target, kind = output_kind(args, source, archive.metadata)
            if source and target and target.exists() and target.resolve() == source.resolve():
                raise CommandError(f"{target}: output would overwrite the input")
            if kind == "npy" and len(entries) != 1:
                raise CommandError(
                    f"--to npy needs exactly one tensor; {archive.path} holds {len(entries)}"
                )
            total = sum(e.nbytes for e in entries)
            with progress_bar(total, archive.path.name, not args.quiet) as advance:
                if target is None:
                    out = _stdout(f"a {kind} file")
                    _write(out, kind, archive, entries, advance)
                    out.flush()
                    where = "stdout"
                else:
                    with atomic_output(target, overwrite=args.force, mode=mode) as stream:
                        _write(stream, kind, archive, entries, advance)
                    where = str(target)
    elapsed = time.perf_counter() - started
    speed = total / elapsed / 1e6 if elapsed > 0 else float("inf")
    name = archive.path
    _say(args, f"{name} : {human(total)} => {where} ({kind}), {elapsed:.2f} s, {speed:.1f} MB/s")
    if args.rm and source is not None:
        source.unlink()


def _restore(args: argparse.Namespace, archive: Archive, source: Path | None) -> int:
    if args.stdout or args.output == STDIO or (source is None and not args.output):
        raise CommandError(f"{archive.path} holds a checkpoint of several files; give -o DIRECTORY")
    if args.to:
        raise CommandError(
            "--to does not apply to a checkpoint: its files are restored as they were"
        )
    directory, _ = files_of(archive)
    if args.output:
        destination = Path(args.output)
    elif source is not None and directory and source.suffix == SUFFIX:
        destination = source.with_name(source.name[: -len(SUFFIX)])
    elif source is not None and not directory:
        destination = source.parent
    else:
        raise CommandError(f"{source}: unknown suffix (expected {SUFFIX}); give -o DIRECTORY")
    total = sum(e.nbytes for e in archive.entries.values())
    total += sum(e.nbytes for e in archive.files.values())
    with progress_bar(total, archive.path.name, not args.quiet) as advance:
        restore(archive, destination, overwrite=args.force, progress=advance)
    return total


def _write(stream: Any, kind: str, archive: Archive, entries: list[Entry], advance: Any) -> None:
    def arrays() -> Iterator[np.ndarray]:
        for entry in entries:
            array = archive[entry.name]
            advance(entry.nbytes)
            yield array

    if kind == "safetensors":
        specs = [(e.name, e.dtype, e.shape) for e in entries]
        meta = {k: v for k, v in archive.metadata.items() if k != SOURCE_KEY}
        write_safetensors(stream, specs, arrays(), meta)
    elif kind == "npz":
        write_npz(stream, zip([e.name for e in entries], arrays(), strict=True))
    else:
        write_npy(stream, next(arrays()))
