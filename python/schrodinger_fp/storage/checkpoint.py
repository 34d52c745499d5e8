"""Checkpoints as people have them: a directory of safetensors shards with their index, config
and tokenizer files, stored as one archive and restored byte for byte.

Every tensor of every shard becomes an entry of the archive (so ``sfp.load`` and ``sfp list``
find a tensor by name whichever shard holds it), and the archive's metadata records each file:
a shard's exact header and the order of its tensors, which rebuild the shard byte for byte;
every other file (the index, ``config.json``, the tokenizer, a shard with gaps between its
tensors) is stored as its bytes in a file entry, which ``Archive`` keeps apart from the tensors.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from schrodinger_fp.storage.archive import Archive
from schrodinger_fp.storage.atomic import atomic_output, current_umask
from schrodinger_fp.storage.index import Entry, check_relative_path
from schrodinger_fp.storage.tensorfiles import TensorFileError, open_tensors
from schrodinger_fp.storage.writer import ArchiveWriter
from schrodinger_fp.training.policy import PolicyLike, format_lookup

__all__ = ["CHECKPOINT_KEY", "INDEX_SUFFIX", "Checkpoint", "files_of", "restore", "save_checkpoint"]

#: Metadata key of the file list.
CHECKPOINT_KEY = "sfp.checkpoint"
#: How a Hugging Face shard index is named: ``model.safetensors.index.json``.
INDEX_SUFFIX = ".safetensors.index.json"


@dataclass(frozen=True)
class Checkpoint:
    """The files of a checkpoint, relative to ``root``.

    Attributes
    ----------
    root : Path
        The directory the paths are relative to.
    paths : list of str
        ``/``-separated relative paths of the files, in the order they are stored.
    directory : bool
        True for a whole directory (every file but a ``.git`` folder; restored as a
        directory), False for an index and the shards it names (restored into a directory).
    """

    root: Path
    paths: list[str]
    directory: bool

    @classmethod
    def of(cls, source: Path) -> Checkpoint:
        """The checkpoint at ``source``: a directory, or a ``*.safetensors.index.json`` file.

        Raises
        ------
        TensorFileError
            For an index that does not name its shards, or a directory with no file.
        """
        if source.is_dir():
            # A cloned model repository's .git is version control, not the checkpoint.
            paths = sorted(
                p.relative_to(source).as_posix()
                for p in source.rglob("*")
                if p.is_file() and ".git" not in p.relative_to(source).parts
            )
            if not paths:
                raise TensorFileError(f"{source}: the directory holds no file")
            return cls(source, paths, directory=True)
        try:
            index = json.loads(source.read_text(encoding="utf-8"))
            shards = sorted(set(index["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TensorFileError(
                f"{source}: not a safetensors index (no weight_map of tensor -> shard): {exc}"
            ) from None
        for shard in shards:
            _relative(source, shard)
            if not (source.parent / shard).is_file():
                raise TensorFileError(f"{source}: shard {shard} is missing")
        return cls(source.parent, [source.name, *shards], directory=False)


def _relative(where: Path, name: object) -> str:
    if not isinstance(name, str):
        raise TensorFileError(f"{where}: file name {name!r} is not a string")
    try:
        return check_relative_path(name)
    except ValueError as exc:
        raise TensorFileError(f"{where}: {exc}") from None


def save_checkpoint(
    stream: Any,
    checkpoint: Checkpoint,
    policy: PolicyLike,
    *,
    threads: int | None,
    progress: Callable[[int], None],
) -> list[Entry]:
    """Write ``checkpoint`` as one archive to ``stream``.

    Returns
    -------
    list of Entry
        The archive's entries, files included.
    """
    lookup = format_lookup(policy)
    writer = ArchiveWriter(stream, threads=threads, clamp=True)
    files: list[dict[str, Any]] = []
    for path in checkpoint.paths:
        full = checkpoint.root / path
        record: dict[str, Any] = {"path": path, "mode": stat.S_IMODE(full.stat().st_mode)}
        tensors = None
        if path.endswith(".safetensors"):
            tensors = open_tensors(full)
        if tensors is not None and tensors.header is not None:
            record.update(kind="safetensors", header=tensors.header.decode("utf-8"))
            record["tensors"] = tensors.names
            for name, array in tensors.items():
                writer.add(name, array, lookup(name))
                progress(array.nbytes)
        else:
            data = np.fromfile(full, dtype=np.uint8)
            record["kind"] = "file"
            writer.add_file(path, data)
            progress(data.nbytes)
        files.append(record)
    doc = {"directory": checkpoint.directory, "files": files}
    return writer.finish({"sfp.source_format": "checkpoint", CHECKPOINT_KEY: json.dumps(doc)})


def files_of(archive: Archive) -> tuple[bool, list[dict[str, Any]]]:
    """The checkpoint files an archive records: (restored as a directory, file records).

    Raises
    ------
    ValueError
        If the archive is not a checkpoint, or its record is malformed.
    """
    text = archive.metadata.get(CHECKPOINT_KEY)
    if text is None:
        raise ValueError(f"{archive.path} is not a checkpoint archive")
    try:
        doc = json.loads(text)
        files = doc["files"]
        directory = bool(doc["directory"])
        for record in files:
            _relative(archive.path, record["path"])
            if record["kind"] not in ("safetensors", "file"):
                raise ValueError(f"unknown file kind {record['kind']!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{archive.path}: malformed checkpoint record: {exc}") from None
    return directory, files


def restore(
    archive: Archive, destination: Path, *, overwrite: bool, progress: Callable[[int], None]
) -> list[Path]:
    """Write the files of a checkpoint archive under ``destination``, byte for byte.

    The files are written into a hidden staging directory first and moved into place at the
    end, so an error or an interruption leaves nothing behind.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    FileExistsError
        If a file (or, for a directory checkpoint, the directory) exists and not ``overwrite``.
    """
    directory, files = files_of(archive)
    if directory and destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} already exists (use -f to replace it)")
    targets = [destination / record["path"] for record in files]
    if not overwrite:
        for target in targets:
            if target.exists():
                raise FileExistsError(f"{target} already exists (use -f to replace it)")
    parent = destination.parent if directory else destination
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name[:200]}.", dir=parent))
    try:
        for record in files:
            _write_file(archive, record, staging / record["path"], progress)
        if directory:
            _replace_directory(staging, destination)
        else:
            for record in files:
                (destination / record["path"]).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / record["path"], destination / record["path"])
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return targets


def _write_file(
    archive: Archive, record: dict[str, Any], path: Path, progress: Callable[[int], None]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, mode=int(record["mode"])) as stream:
        if record["kind"] == "file":
            data = archive.file(record["path"])
            stream.write(data)
            progress(len(data))
            return
        header = record["header"].encode("utf-8")
        stream.write(len(header).to_bytes(8, "little") + header)
        for name in record["tensors"]:
            array = archive[name]
            stream.write(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
            progress(array.nbytes)


def _replace_directory(staging: Path, destination: Path) -> None:
    os.chmod(staging, 0o777 & ~current_umask())
    if not destination.exists():
        os.rename(staging, destination)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{destination.name[:200]}.old.", dir=destination.parent))
    os.rename(destination, old / "dir")
    os.rename(staging, destination)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
