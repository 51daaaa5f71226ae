"""Buffers of the Taichi backend and the views its kernels take of them.

On the CPU a buffer is a C-contiguous NumPy array with the logical shape; kernels take it
zero-copy, flattened (``a.reshape(-1)`` is a view), so each kernel compiles once per dtype, not
once per rank. Shapes and strides become small host-side metadata. On a GPU (or with
``buffers="ndarray"``) a buffer is a :class:`DeviceArray`, a flat ``ti.ndarray`` on the device,
and ops never copy between host and device.

bool is stored as uint8 and bfloat16 as its uint16 bits (Taichi has neither); kernels decode
them (see :mod:`.codec`). float16 and bfloat16 compute in float32, rounding once on store.
"""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np
import taichi as ti

from ...errors import DtypeError
from .. import pool
from . import runtime

__all__ = ["DeviceArray", "Buffers", "DTYPES", "FLOATS", "INTEGERS", "contiguous_strides"]

BOOL = np.dtype(np.bool_)
INT32 = np.dtype(np.int32)
INT64 = np.dtype(np.int64)
FLOAT16 = np.dtype(np.float16)
BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)
FLOATS = (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)
INTEGERS = (INT32, INT64)
DTYPES = (BOOL, INT32, INT64, FLOAT16, BFLOAT16, FLOAT32, FLOAT64)

# How kernels see each dtype: computing kernels get the storage view, moving kernels (on the
# CPU) an unsigned view of the same width, so one compiled copy serves every dtype of a width.
STORAGE_VIEW = {BOOL: np.dtype(np.uint8), BFLOAT16: np.dtype(np.uint16)}
_RAW_VIEW = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.uint32),
    8: np.dtype(np.uint64),
}
_TAICHI_STORAGE = {
    BOOL: ti.u8,
    INT32: ti.i32,
    INT64: ti.i64,
    FLOAT16: ti.f16,
    BFLOAT16: ti.u16,
    FLOAT32: ti.f32,
    FLOAT64: ti.f64,
}

# The dtype a sum or product accumulates in.
ACCUMULATOR = {
    BOOL: INT64,
    INT32: INT64,
    INT64: INT64,
    FLOAT16: FLOAT32,
    BFLOAT16: FLOAT32,
    FLOAT32: FLOAT32,
    FLOAT64: FLOAT64,
}


class DeviceArray:
    """A buffer on the device: a flat ``ti.ndarray`` in the storage dtype (bool as u8, bfloat16
    as u16 bits), its logical ``shape`` and NumPy ``dtype``. Taichi has no empty ndarrays, so an
    empty buffer holds one unused element."""

    __slots__ = ("array", "shape", "dtype", "lease")

    def __init__(self, array: Any, shape: tuple[int, ...], dtype: np.dtype, lease: Any = None):
        self.array = array
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.lease = lease  # a pooled array's pool.Lease: every buffer sharing it holds it

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def reshape(self, shape: tuple[int, ...]) -> DeviceArray:
        return DeviceArray(self.array, shape, self.dtype, self.lease)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    """The element strides of a C-contiguous array of ``shape``."""
    strides, step = [], 1
    for s in reversed(shape):
        strides.append(step)
        step *= s
    return strides[::-1]


class Buffers:
    """What the kernels' host adapters ask of a backend about buffers: new ones, and the flat
    views kernels take. :class:`~.backend.TaichiBackend` is one; ``device_buffers`` says whether
    buffers are :class:`DeviceArray` s and ``device`` where they live."""

    device: str
    device_buffers: bool
    _meta_cache: dict[tuple[int, ...], Any]

    def check_dtype(self, op: str, dtype: np.dtype) -> None:
        if dtype not in DTYPES:
            names = ", ".join(str(d) for d in DTYPES)
            raise DtypeError(f"{op}: the taichi backend has no dtype {dtype}; use one of {names}.")

    def empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | DeviceArray:
        shape = tuple(shape)
        if not self.device_buffers:
            return pool.empty(shape, dtype)
        size = max(math.prod(shape), 1)
        nbytes = size * dtype.itemsize
        if nbytes < pool.MIN_BYTES or pool.limit() <= 0:
            return DeviceArray(ti.ndarray(_TAICHI_STORAGE[dtype], shape=(size,)), shape, dtype)
        # Pooled: a free array of this runtime (an older one's arrays are gone), dtype and size.
        key = (runtime.generation(), dtype, size)
        storage = pool.take_device(key, nbytes)
        if storage is None:
            storage = ti.ndarray(_TAICHI_STORAGE[dtype], shape=(size,))
        return DeviceArray(storage, shape, dtype, pool.Lease(key, nbytes, storage))

    def arg(self, buf: np.ndarray | DeviceArray) -> Any:
        """A computing kernel's argument: flat, in the storage dtype."""
        if isinstance(buf, DeviceArray):
            return buf.array
        view = STORAGE_VIEW.get(buf.dtype)
        return buf.reshape(-1) if view is None else buf.reshape(-1).view(view)

    def raw(self, buf: np.ndarray | DeviceArray) -> Any:
        """A moving kernel's argument: flat; on the CPU an unsigned view of the same width."""
        if isinstance(buf, DeviceArray):
            return buf.array
        return buf.reshape(-1).view(_RAW_VIEW[buf.dtype.itemsize])

    def meta(self, values: list[int]) -> Any:
        """Index metadata as an int64 array: NumPy on the CPU, cached on a device."""
        if self.device == "cpu":
            return np.array(values, dtype=np.int64)
        key = tuple(values)
        found = self._meta_cache.get(key)
        if found is None:
            if len(self._meta_cache) > 4096:
                self._meta_cache.clear()
            found = ti.ndarray(ti.i64, shape=(len(values),))
            found.from_numpy(np.array(values, dtype=np.int64))
            self._meta_cache[key] = found
        return found

    def exact_scalar(self, value: Any, dtype: np.dtype) -> tuple[float, int]:
        """A parameter converted on the host as ``np.full`` converts it (one element), given to
        kernels exactly: an f64 for float dtypes, an i64 for integers, bools, bfloat16 bits."""
        host = np.empty((), dtype)
        with np.errstate(all="ignore"):  # 1e30 to float16 is inf, as np.full gives
            np.copyto(host, value, casting="unsafe")
        if dtype == BFLOAT16:
            return 0.0, int(host.view(np.uint16))
        if dtype in FLOATS:
            return float(host), 0
        return 0.0, int(host)
