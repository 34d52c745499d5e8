"""Compressed stash: what autograd saves for backward, held as encoded frames in its container.

Inside ``with compressed_stash(adapter) as stash:`` every tensor autograd saves
for backward (``torch.autograd.graph.saved_tensors_hooks``) is encoded with
:func:`schrodinger_fp.encode` at its tensor's format and decoded again when
backward needs it. Because ``decode(encode(x, f)) == quantize(x, f)`` bit for
bit, training with the stash gives exactly the gradients of fake quantization
at the same formats, while the step really holds the encoded bytes.

What is held, and how it is counted (:class:`StashStats`), each distinct
tensor once (a tensor saved by two operations is held and counted once):

* floating-point tensors of at least ``min_bytes`` with a lossy format:
  encoded frames (``held_bytes`` counts the frame lengths);
* integer tensors (max-pool indices) of at least ``min_bytes``: losslessly in
  the smallest integer type that holds their values; boolean masks (dropout)
  packed eight to a byte;
* everything else (small tensors, tensors whose format is lossless): held as
  they are, at their own size;
* ``fp32_bytes`` counts the same tensors in FP32 containers (4 bytes a
  float value; non-float tensors at their own size), except what a
  controller keeps for its own gradient alone (the corner above a field at
  its lowest bitlength, :meth:`Adapter.kept_for_controllers`): held and
  counted in ``held_bytes``, but an FP32 training would hold none of it.

Names and formats come from the :class:`~schrodinger_fp.torch.Adapter`: a
tensor the adapter quantized (a weight, a module output) is held at the format
it was quantized to; any other saved tensor is named ``"<module>.saved"``
after the innermost module running when it was saved, and held at that name's
format in the policy (lossless when none).

CUDA tensors are copied to the host, encoded there and copied back for
backward (as ``torch.autograd.graph.save_on_cpu`` does), so device memory
falls and results stay exact; other devices are rejected.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

import ml_dtypes
import numpy as np
import torch

from ..format import Format
from ..training.core_calls import decode, encode

if TYPE_CHECKING:
    from .adapter import Adapter

__all__ = ["CompressedStash", "StashStats", "compressed_stash"]

_NUMPY_DTYPES = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float16: np.dtype(np.float16),
    torch.bfloat16: np.dtype(ml_dtypes.bfloat16),
}
_DTYPE_NAMES = {t: str(n) for t, n in _NUMPY_DTYPES.items()}

#: Saved tensors smaller than this are held as they are (a frame header would outweigh them).
MIN_BYTES = 4096

#: (name, format) of one saved tensor.
Lookup = Callable[[torch.Tensor], tuple[str, Format | None]]


@dataclass
class StashStats:
    """Bytes of one forward pass's stash, from what was really stored.

    Attributes
    ----------
    tensors : int
        Distinct tensors saved.
    encoded : int
        Of them, how many are held as encoded frames.
    fp32_bytes : int
        The same tensors in FP32 containers.
    held_bytes : int
        What the stash holds: frame bytes plus tensors kept as they are.
    frame_bytes : int
        Of ``held_bytes``, the encoded frames of floating-point tensors.
    by_name : dict name -> [fp32 bytes, held bytes]
        The same, per tensor name.
    """

    tensors: int = 0
    encoded: int = 0
    fp32_bytes: int = 0
    held_bytes: int = 0
    frame_bytes: int = 0
    by_name: dict[str, list[int]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """``fp32_bytes / held_bytes`` (1.0 for an empty stash)."""
        return self.fp32_bytes / self.held_bytes if self.held_bytes else 1.0

    def add(self, name: str, fp32: int, held: int, encoded: bool) -> None:
        """Count one tensor."""
        self.tensors += 1
        self.encoded += int(encoded)
        self.fp32_bytes += fp32
        self.held_bytes += held
        entry = self.by_name.setdefault(name, [0, 0])
        entry[0] += fp32
        entry[1] += held


@dataclass(eq=False)
class _Frame:
    """One saved tensor held as an encoded frame.

    ``stride`` None: the frame holds the values in C order of ``shape``; else
    in memory order, restored with these strides (a transposed or permuted
    tensor is encoded where it lies, without a contiguous copy first).

    A frame saved by several operations (a module output, and the layer that
    reads it) is decoded once: ``saves`` counts the saves not restored yet,
    and the decoded values are kept from the first restore to the last (a
    graph without the stash holds the tensor all along).
    """

    data: bytes
    shape: torch.Size
    dtype: torch.dtype
    device: torch.device
    stride: tuple[int, ...] | None = None
    saves: int = 0
    decoded: torch.Tensor | None = None

    def values(self) -> torch.Tensor:
        """The decoded values, one dimension, in the frame's order, on the tensor's device."""
        t = self.decoded
        if t is None:
            t = _from_numpy(decode(self.data), self.dtype).reshape(-1)
            t = t.to(self.device) if self.device.type != "cpu" else t
        self.saves -= 1  # a graph kept for a second backward restores more often than saved
        self.decoded = t if self.saves > 0 else None
        return t

    def restore(self) -> torch.Tensor:
        flat = self.values()
        if self.stride is None:
            return flat.reshape(self.shape)
        return flat.as_strided(self.shape, self.stride)

    @property
    def memory_order(self) -> bool:
        """Whether the frame's order is the memory order of the tensor it was saved from."""
        return self.stride is not None


@dataclass(frozen=True)
class _View:
    """Another view (a transpose, say) of the same memory as a frame held in memory order."""

    frame: _Frame
    shape: torch.Size
    stride: tuple[int, ...]

    def restore(self) -> torch.Tensor:
        return self.frame.values().as_strided(self.shape, self.stride)


@dataclass(frozen=True)
class _Narrowed:
    """An integer or boolean tensor held losslessly in fewer bytes (bits for booleans)."""

    data: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    device: torch.device

    def restore(self) -> torch.Tensor:
        if self.dtype == torch.bool:
            n = self.shape.numel()
            bits = np.unpackbits(self.data.numpy())[:n]
            t = torch.from_numpy(bits.astype(np.bool_)).reshape(self.shape)
        else:
            t = self.data.to(self.dtype).reshape(self.shape)
        return t.to(self.device) if self.device.type != "cpu" else t


def _narrow(t: torch.Tensor) -> _Narrowed | None:
    """Max-pool indices, dropout masks: the smallest integer type that holds every value."""
    flat = t.detach().to("cpu").reshape(-1)
    if t.dtype == torch.bool:
        packed = torch.from_numpy(np.packbits(flat.numpy()))
        return _Narrowed(packed, t.shape, t.dtype, t.device)
    if t.dtype not in (torch.int64, torch.int32, torch.int16):
        return None
    lo, hi = int(flat.min()), int(flat.max())
    for small in (torch.uint8, torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(small)
        if info.min <= lo and hi <= info.max:
            if info.bits >= torch.iinfo(t.dtype).bits:
                return None
            return _Narrowed(flat.to(small), t.shape, t.dtype, t.device)
    return None


def _dense_order(t: torch.Tensor) -> bool:
    """Whether ``t`` covers its memory without gaps or overlaps (a permuted contiguous tensor)."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda d: d[1]):
        if size == 1:
            continue
        if stride != expected:
            return False
        expected *= size
    return True


def _in_memory_order(t: torch.Tensor) -> torch.Tensor:
    """A dense permuted tensor's dimensions reordered as they lie in memory: a contiguous view."""
    order = sorted(range(t.dim()), key=lambda d: (-t.stride()[d], -t.shape[d]))
    return t.permute(order)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _from_numpy(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


def _key(t: torch.Tensor) -> tuple[Any, ...]:
    """The memory a saved tensor covers (views of the same values share it)."""
    return (
        t.untyped_storage().data_ptr(),
        t.storage_offset(),
        t.numel(),
        t.dtype,
        t.device,
        t._version,
    )


class CompressedStash:
    """Saved-tensor hooks that hold the stash in containers; built by :func:`compressed_stash`.

    Attributes
    ----------
    stats : StashStats
        Bytes of what was saved so far in this context.
    captured : dict key -> numpy.ndarray
        With ``capture=True``: every encoded tensor as it was before reduction,
        for a :class:`~schrodinger_fp.training.FootprintRecorder`.
    formats : dict key -> Format
        The format each captured tensor was held at.
    """

    def __init__(
        self,
        lookup: Lookup,
        *,
        min_bytes: int = MIN_BYTES,
        exponent_coding: str = "raw",
        threads: int | None = 1,
        capture: bool = False,
        quantizer: Callable[[torch.Tensor, Format], torch.Tensor] | None = None,
        extra: Callable[[str], bool] | None = None,
    ) -> None:
        if not isinstance(min_bytes, int) or isinstance(min_bytes, bool) or min_bytes < 0:
            raise ValueError(f"min_bytes={min_bytes!r} must be an integer >= 0")
        Format(exponent_coding=exponent_coding)  # validates the coding name
        self._lookup = lookup
        self.min_bytes = min_bytes
        self.exponent_coding = exponent_coding
        self.threads = threads
        self.capture = capture
        self._quantizer = quantizer
        self._extra = extra
        self.stats = StashStats()
        self.captured: dict[str, np.ndarray] = {}
        self.formats: dict[str, Format | None] = {}
        self._seen: dict[tuple[Any, ...], Any] = {}
        self._hooks: Any = None

    def __enter__(self) -> CompressedStash:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._hooks.__exit__(exc_type, exc, tb)
        self._seen.clear()  # the graph keeps what it holds; the map only deduplicates a pass

    # -- hooks -----------------------------------------------------------
    def _pack(self, t: torch.Tensor) -> Any:
        held = self._find(t)
        if isinstance(held, _Frame):
            held.saves += 1
        elif isinstance(held, _View):
            held.frame.saves += 1
        return held

    def _find(self, t: torch.Tensor) -> Any:
        """What holds ``t``: what holds its memory already, or a new hold."""
        key = _key(t)
        first = self._seen.get(key)
        # the memory of a tensor that is gone may hold a new one: only a live first tensor counts
        if first is None or first[0]() is None:
            held = self._hold(t)
            # held in the memory's order: other views of the same memory are views of it
            memory_order = t.is_contiguous() or (isinstance(held, _Frame) and held.memory_order)
            self._seen[key] = (weakref.ref(t), t.shape, t.stride(), memory_order, held)
            return held
        _, shape, stride, memory_order, held = first
        if (shape, stride) == (t.shape, t.stride()):
            return held
        if held is t or not isinstance(held, _Frame | torch.Tensor):
            return t  # a view of memory held as it is: nothing more to hold
        if memory_order and _dense_order(t):  # another view of the same values
            if isinstance(held, _Frame):
                return _View(held, t.shape, t.stride())
            return held.reshape(-1).as_strided(t.shape, t.stride())
        return self._hold(t)

    @staticmethod
    def _unpack(held: Any) -> torch.Tensor:
        if isinstance(held, _Frame | _View | _Narrowed):
            return held.restore()
        return held  # type: ignore[no-any-return]

    def _hold(self, t: torch.Tensor) -> Any:
        own = t.numel() * t.element_size()
        if t.dtype not in _NUMPY_DTYPES:
            name = f"<{str(t.dtype).removeprefix('torch.')}>"
            small = _narrow(t) if own >= self.min_bytes and t.numel() else None
            if small is None or self._quantizer is not None:
                self.stats.add(name, own, own, False)
                return t
            held = small.data.numel() * small.data.element_size()
            self.stats.add(name, own, held, True)
            return small
        # what a controller keeps for its own gradient alone (the corner above) is held, but an
        # FP32 training would hold nothing of it: no FP32 bytes, so the ratio is not flattered
        fp32 = 4 * t.numel()
        name, fmt = self._lookup(t)
        if self._extra is not None and self._extra(name):
            fp32 = 0
        lossless = fmt is None or (
            fmt.window_top is None and fmt.is_lossless_for(_DTYPE_NAMES[t.dtype])
        )
        if own < self.min_bytes or lossless:
            self.stats.add(name, fp32, own, False)
            return t
        assert fmt is not None
        if t.device.type not in ("cpu", "cuda"):
            raise ValueError(
                f"compressed_stash holds CPU and CUDA tensors; {name!r} is on {t.device}"
            )
        # a permuted tensor (a transpose) is encoded in its memory order, without a contiguous
        # copy; the core's counter-based random bits follow the element order, so stochastic
        # formats keep C order and stay equal to fake quantization
        lying = _in_memory_order(t) if not t.is_contiguous() and _dense_order(t) else None
        memory_order = (
            lying is not None
            and lying.is_contiguous()
            and fmt.rounding != "stochastic"
            and fmt.underflow != "stochastic"
        )
        if self._quantizer is not None:  # fake quantization: the same values, held as tensors
            q = self._quantizer(t.detach(), fmt).contiguous()
            if memory_order:
                # in the layout a frame restores (a transpose stays one): backward's kernels may
                # round differently on another layout
                q = torch.empty_strided(t.shape, t.stride(), dtype=q.dtype).copy_(q)
            self.stats.add(name, fp32, own, False)
            return q
        arr = _to_numpy(lying if memory_order and lying is not None else t)
        frame = encode(arr, _coded(fmt, self.exponent_coding), threads=self.threads)
        self.stats.add(name, fp32, len(frame), True)
        self.stats.frame_bytes += len(frame)
        if self.capture:  # the recorder codes the values in C order, as they are used
            key = name if name not in self.captured else f"{name}[{len(self.captured)}]"
            self.captured[key] = _to_numpy(t) if memory_order else arr.copy()
            self.formats[key] = fmt
        return _Frame(frame, t.shape, t.dtype, t.device, t.stride() if memory_order else None)


@functools.lru_cache(maxsize=4096)
def _coded(fmt: Format, coding: str) -> Format:
    # cached: a Format validates itself when built, and every saved tensor needs one each step
    return replace(fmt, exponent_coding=coding)


def compressed_stash(
    source: Adapter | Format | None,
    *,
    min_bytes: int = MIN_BYTES,
    exponent_coding: str = "raw",
    threads: int | None = 1,
    capture: bool = False,
) -> CompressedStash:
    """Hold every tensor autograd saves in this context as an encoded frame.

    Use it around the forward pass; ``backward()`` may run outside::

        with compressed_stash(adapter) as stash:
            loss = loss_fn(model(x), y)
        loss.backward()
        stash.stats.ratio  # FP32 bytes / bytes held

    Parameters
    ----------
    source : Adapter, Format or None
        The adapter from :func:`~schrodinger_fp.torch.attach` (names and
        formats per tensor, see the module docstring); or one Format for every
        saved tensor; or None (lossless: only counts the bytes).
    min_bytes : int, default 4096
        Smaller tensors are held as they are (a frame header would outweigh them).
    exponent_coding : str, default "raw"
        Exponent coding of the frames (``"raw"``: flat containers, fastest;
        ``"gecko"`` / ``"auto"``: smaller, slower).
    threads : int or None, default 1
        Threads per encode (None: the codec's default).
    capture : bool, default False
        Keep a copy of each encoded tensor (``stash.captured``) for a footprint recorder.

    Raises
    ------
    TypeError
        If ``source`` is none of the above (a Policy alone cannot name tensors:
        pass the adapter built from it).
    ValueError
        If ``min_bytes`` or ``exponent_coding`` is invalid; during the forward
        pass, if a tensor lives on a device other than CPU or CUDA.
    """
    from .adapter import Adapter

    extra = None
    if isinstance(source, Adapter):
        lookup: Lookup = source.saved_format
        extra = source.kept_for_controllers
    elif source is None or isinstance(source, Format):
        fixed = source
        lookup = lambda t: ("saved", fixed)  # noqa: E731
    else:
        raise TypeError(
            "compressed_stash needs the Adapter from attach() (it names each tensor), "
            f"a Format or None, got {type(source).__name__}"
        )
    return CompressedStash(
        lookup,
        min_bytes=min_bytes,
        exponent_coding=exponent_coding,
        threads=threads,
        capture=capture,
        extra=extra,
    )
