"""A caching allocator for big host buffers, as PyTorch keeps one for CUDA memory.

A freed NumPy array of megabytes goes back to the OS (glibc maps it on its own and unmaps it
on free), so the next one of that size faults in every page afresh: on a step over 4e6 float32
that was half the time. Here a big buffer's memory, once nothing refers to it, goes back to a
free list by size class instead, and the next buffer of that class reuses it with its pages
faulted in.

- Only buffers of at least :data:`MIN_BYTES` are pooled; smaller ones are plain ``np.empty``
  (glibc's own free lists serve those well).
- Blocks are 64-byte aligned (a cache line; what vector loads like) and sized by class: the
  request rounded up to an eighth of its power of two, so a block serves requests up to 12.5%
  smaller than it.
- Taichi device arrays (``ti.ndarray``, a GPU's buffers) of as many bytes are kept the same way
  (:class:`Lease`, :func:`take_device`), in free lists of their own under the same cap.
- The free lists hold at most :func:`limit` bytes (``TFGRAD_POOL_BYTES``, default 1 GiB); a
  block that would pass the cap goes back to the OS. :func:`empty_cache` (``tfgrad.empty_cache``)
  releases every free block now; :func:`stats` says what is held.

A buffer is never reused while anything refers to it: an array from :func:`empty` reads its
memory through a small owner object (NumPy's chain of bases ends there, a non-array), so every
view of it (reshape, slices, ``.view``) keeps that owner alive, and the owner gives the block
back only when it dies.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

__all__ = [
    "empty", "empty_cache", "stats", "limit", "set_limit", "take_device", "Lease", "MIN_BYTES",
    "ALIGN",
]  # fmt: skip

MIN_BYTES = 1 << 20
ALIGN = 64

# Re-entrant: a collection run while the lock is held may free an owner, which takes it again.
_lock = threading.RLock()
_free: dict[int, list[np.ndarray]] = {}  # size class -> raw blocks (uint8, ALIGN extra bytes)
_held = 0  # bytes in _free
_limit = int(os.environ.get("TFGRAD_POOL_BYTES", 1 << 30))
_counts = {"reused": 0, "allocated": 0}


def _size_class(nbytes: int) -> int:
    step = 1 << max(nbytes.bit_length() - 4, 12)  # an eighth of the power of two, >= a page
    return -(-nbytes // step) * step


class _Owner:
    """Owns one raw block while any array refers to it; gives it back when it dies."""

    __slots__ = ("block", "size", "__array_interface__")

    def __init__(self, block: np.ndarray, size: int, nbytes: int):
        self.block, self.size = block, size
        address = block.ctypes.data
        address += -address % ALIGN
        self.__array_interface__ = {
            "shape": (nbytes,),
            "typestr": "|u1",
            "data": (address, False),
            "version": 3,
        }

    def __del__(self):
        try:
            _give_back(self.size, self.block)
        except Exception:  # interpreter shutdown: the module's globals are gone
            pass


def _give_back(size: int, block: np.ndarray) -> None:
    global _held
    with _lock:
        if _held + size > _limit:
            return  # past the cap: the block goes back to the OS
        _free.setdefault(size, []).append(block)
        _held += size


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new C-contiguous array, like ``np.empty(shape, dtype)``: from the pool when big."""
    dtype = np.dtype(dtype)
    n = 1
    for s in shape:
        n *= s
    nbytes = n * dtype.itemsize
    if nbytes < MIN_BYTES or _limit <= 0:
        return np.empty(shape, dtype)
    global _held
    size = _size_class(nbytes)
    block = None
    with _lock:
        blocks = _free.get(size)
        if blocks:
            block = blocks.pop()
            _held -= size
            _counts["reused"] += 1
        else:
            _counts["allocated"] += 1
    if block is None:
        block = np.empty(size + ALIGN, np.uint8)
    flat = np.asarray(_Owner(block, size, nbytes))  # its base is the owner, not an array
    return flat.view(dtype).reshape(shape)


# ---- Device arrays (Taichi ndarrays): the same rules, free lists of their own ----
_device_free: dict[Any, list] = {}  # key (the runtime's generation, dtype, size) -> arrays
_device_held = 0


class Lease:
    """Held by every buffer that shares a pooled device array; gives the array back (under
    ``key``, counting ``nbytes``) when the last of them dies."""

    __slots__ = ("key", "nbytes", "array")

    def __init__(self, key: Any, nbytes: int, array: Any):
        self.key, self.nbytes, self.array = key, nbytes, array

    def __del__(self):
        global _device_held
        try:
            with _lock:
                if _device_held + self.nbytes <= _limit:
                    _device_free.setdefault(self.key, []).append(self.array)
                    _device_held += self.nbytes
        except Exception:  # interpreter shutdown: the module's globals are gone
            pass


def take_device(key: Any, nbytes: int) -> Any:
    """A free device array kept under ``key``, or None."""
    global _device_held
    with _lock:
        arrays = _device_free.get(key)
        if not arrays:
            return None
        _device_held -= nbytes
        _counts["reused"] += 1
        return arrays.pop()


def empty_cache() -> int:
    """Give every free block (host and device) back; returns the bytes released."""
    global _held, _device_held
    with _lock:
        released = _held + _device_held
        _free.clear()
        _device_free.clear()
        _held = _device_held = 0
    return released


def limit() -> int:
    """The most bytes the free lists hold."""
    return _limit


def set_limit(nbytes: int) -> None:
    """Set the cap on free bytes (0 turns pooling off); frees what is over it now."""
    global _limit, _held
    with _lock:
        _limit = max(int(nbytes), 0)
        for size in sorted(_free, reverse=True):
            blocks = _free[size]
            while blocks and _held > _limit:
                blocks.pop()
                _held -= size


def stats() -> dict[str, int]:
    """``held`` (free host bytes kept), ``device_held`` (free device bytes), ``limit``,
    ``blocks`` (free host ones), ``device_blocks``, ``reused``, ``allocated``."""
    with _lock:
        blocks = sum(len(b) for b in _free.values())
        device_blocks = sum(len(b) for b in _device_free.values())
        return {"held": _held, "device_held": _device_held, "limit": _limit, "blocks": blocks,
                "device_blocks": device_blocks, **_counts}  # fmt: skip
