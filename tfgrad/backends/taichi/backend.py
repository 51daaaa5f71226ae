"""The Taichi backend: every backend op has a Taichi kernel, on the CPU or a GPU.

Buffers
    On the CPU a buffer is a C-contiguous NumPy array with the logical shape; kernels take it
    zero-copy, flattened (``a.reshape(-1)`` is a view), so each kernel compiles once per dtype,
    not once per rank. Shapes and strides become small host-side metadata. On a GPU a buffer is a
    :class:`DeviceArray` (a flat ``ti.ndarray`` on the device), and ops never copy between host
    and device; only :meth:`TaichiBackend.from_numpy` and :meth:`TaichiBackend.to_numpy` move data.

Storage
    bool is stored as uint8 and bfloat16 as its uint16 bits (Taichi has neither); kernels decode
    them (see :mod:`.codec`). float16 and bfloat16 compute in float32, rounding once on store.

Dispatch
    Which implementation runs an op is the policy of :mod:`.dispatch`: under ``dispatch="auto"``
    a CPU matmul in float32/float64 runs BLAS through NumPy and a tiny float array runs the
    reference backend's NumPy function; under ``"taichi-only"`` (the default of this class; the
    default of ``tfgrad.init`` is ``"auto"``) every op runs its Taichi kernel. Within a kernel,
    Taichi's parallel loop costs a thread-pool dispatch; below a measured size the loop runs
    serially on the calling thread instead (``SERIAL_BELOW``).

Taichi runtime
    One per process. ``TaichiBackend(arch)`` calls ``ti.init`` the first time; another instance
    with the same arch and options shares it; a different arch re-initialises Taichi, and every
    buffer of the old runtime's GPU arrays (DeviceArray) becomes invalid. CPU NumPy buffers
    survive: a CPU backend used again after a switch re-initialises Taichi for itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import math
import os
import warnings
from functools import partial
from typing import Any

import ml_dtypes
import numpy as np
import taichi as ti

from ...errors import BackendError, DtypeError, MissingKernelError, ShapeError
from ..base import BACKEND_OPS, BINARY_OPS, COMPARE_OPS
from ..numpy_backend import NumpyBackend
from ..rng import MANTISSA_BITS
from . import creation, elementwise, linalg, movement, reduce
from .dispatch import TAICHI, Policy

__all__ = ["TaichiBackend", "DeviceArray", "SERIAL_BELOW", "SERIAL_BELOW_TRANSCENDENTAL"]

# Serialised loops below these element counts. Measured through run() on the 2-core dev machine
# (Taichi 1.7.4, float64, NumPy buffers; min/median us of 60-400 calls): a parallel loop pays a
# thread-pool dispatch of 50-100 us, and the second core is not always free (medians vary).
#   add, serial vs parallel: 1e5 131/134 vs 187/198; 3e5 295/303 vs 329/349; 1e6 879/996 vs 551/974
#   exp, serial vs parallel: 3e4 155/160 vs 209/225; 1e5 454/467 vs 336/523; 3e5 1278 vs 681 (min)
SERIAL_BELOW = 1 << 19  # memory-bound ops: arithmetic, compares, casts, moves, reductions
SERIAL_BELOW_TRANSCENDENTAL = 1 << 16  # exp, log, sin, tanh, pow, ... and normal draws

# Reductions combine fixed blocks of this many elements first when few outputs each reduce many
# elements (a full sum), so both cores work; the block size never depends on the thread count.
REDUCE_BLOCK = 4096
SPLIT_BELOW_OUTPUTS = 64

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
_STORAGE_VIEW = {BOOL: np.dtype(np.uint8), BFLOAT16: np.dtype(np.uint16)}
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
_ACCUMULATOR = {
    BOOL: INT64,
    INT32: INT64,
    INT64: INT64,
    FLOAT16: FLOAT32,
    BFLOAT16: FLOAT32,
    FLOAT32: FLOAT32,
    FLOAT64: FLOAT64,
}

# kernel, transcendental (serial threshold), dtypes besides the floats
_UNARY = {
    "neg": (elementwise.neg_kernel, False, INTEGERS),
    "exp": (elementwise.exp_kernel, True, ()),
    "log": (elementwise.log_kernel, True, ()),
    "log1p": (elementwise.log1p_kernel, True, ()),
    "expm1": (elementwise.expm1_kernel, True, ()),
    "sin": (elementwise.sin_kernel, True, ()),
    "cos": (elementwise.cos_kernel, True, ()),
    "tan": (elementwise.tan_kernel, True, ()),
    "tanh": (elementwise.tanh_kernel, True, ()),
    "sqrt": (elementwise.sqrt_kernel, False, ()),
    "abs": (elementwise.abs_kernel, False, INTEGERS + (BOOL,)),
    "sign": (elementwise.sign_kernel, False, INTEGERS),
}
_BINARY = {
    "add": elementwise.add_kernel,
    "sub": elementwise.sub_kernel,
    "mul": elementwise.mul_kernel,
    "div": elementwise.div_kernel,
    "pow": elementwise.pow_kernel,
    "maximum": elementwise.maximum_kernel,
    "minimum": elementwise.minimum_kernel,
    "eq": elementwise.eq_kernel,
    "ne": elementwise.ne_kernel,
    "lt": elementwise.lt_kernel,
    "le": elementwise.le_kernel,
    "gt": elementwise.gt_kernel,
    "ge": elementwise.ge_kernel,
}
# NumPy's logical or/and on bools (pow: x or not y); sub and div refuse or leave bool
_BOOL_ARITHMETIC = ("add", "mul", "maximum", "minimum", "pow")
_REDUCTIONS = ("sum", "max", "prod")

_ARCHS = {
    "cpu": ("cpu",),
    "gpu": ("cuda", "vulkan", "metal"),
    "cuda": ("cuda",),
    "vulkan": ("vulkan",),
    "metal": ("metal",),
}
_OPTIONS = ("dispatch", "buffers", "serial_below", "cpu_max_num_threads", "debug")

# The process's one Taichi runtime: which arch and options it was started with, and a
# generation that grows with every ti.init (buffers of older generations on a GPU are gone).
_RUNTIME: dict[str, Any] = {"key": None, "generation": 0}


class DeviceArray:
    """A buffer on the device: a flat ``ti.ndarray`` in the storage dtype (bool as u8, bfloat16
    as u16 bits), its logical ``shape`` and NumPy ``dtype``. Taichi has no empty ndarrays, so an
    empty buffer holds one unused element."""

    __slots__ = ("array", "shape", "dtype")

    def __init__(self, array: Any, shape: tuple[int, ...], dtype: np.dtype):
        self.array = array
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def reshape(self, shape: tuple[int, ...]) -> DeviceArray:
        return DeviceArray(self.array, shape, self.dtype)

    def __repr__(self) -> str:
        return f"DeviceArray(shape={self.shape}, dtype={self.dtype})"


# ---- The Taichi runtime ----
def _arch_available(name: str) -> bool:
    from taichi.lang.misc import is_arch_supported  # Taichi 1.7's own probe (no ti.init)

    ti.set_logging_level(ti.ERROR)  # the probe warns about every missing driver library
    try:
        return bool(is_arch_supported(getattr(ti, name)))
    finally:
        ti.set_logging_level(ti.WARN)


def _fp_environment():
    """Save the calling thread's floating-point environment; returns a restore function."""
    # NOTE: ti.init sets flush-to-zero/denormals-are-zero on the calling thread (seen with
    # Taichi 1.7.4 on x86-64): afterwards NumPy in this process turns 1e-310 into 0. Restoring
    # the environment keeps NumPy (and serial kernels, which run on this thread) IEEE-exact.
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        saved = ctypes.create_string_buffer(512)  # larger than any platform's fenv_t
        if libm.fegetenv(saved) != 0:
            return lambda: None
    except (OSError, AttributeError):
        return lambda: None
    return lambda: libm.fesetenv(saved)


def _init_options(ti_options: dict[str, Any]) -> dict[str, Any]:
    options = {
        "offline_cache": True,  # compiled kernels persist between sessions (~/.cache/taichi)
        "log_level": ti.WARN,  # no info lines in notebooks
    }
    # What the user set in the environment (TI_OFFLINE_CACHE=0, TI_LOG_LEVEL=info) wins.
    options = {k: v for k, v in options.items() if f"TI_{k.upper()}" not in os.environ}
    # Always IEEE semantics: NaN and inf as NumPy has them, no contraction, exact constants.
    return {**options, **ti_options, "fast_math": False}


def _start_taichi(arch: str, ti_options: dict[str, Any]) -> tuple[str, int]:
    """Initialise Taichi for ``arch`` unless it already runs there; return the arch Taichi
    runs on and the runtime's generation."""
    if arch not in _ARCHS:
        raise BackendError(
            f"TaichiBackend: unknown arch {arch!r}; use one of {sorted(_ARCHS)} "
            "('gpu' picks CUDA, Vulkan or Metal, whichever Taichi finds)."
        )
    chosen = next((a for a in _ARCHS[arch] if a == "cpu" or _arch_available(a)), None)
    if chosen is None:
        tried = ", ".join(_ARCHS[arch])
        raise BackendError(
            f"TaichiBackend(arch={arch!r}): Taichi found no GPU on this machine (tried {tried}). "
            "Use arch='cpu' (tfgrad.init(arch='cpu')), or install a driver Taichi supports."
        )
    key = (chosen, tuple(sorted(ti_options.items())))
    runtime = ti.lang.impl.get_runtime()
    if _RUNTIME["key"] == key and runtime.prog is not None:
        return chosen, _RUNTIME["generation"]
    restore = _fp_environment()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # Quiet: "[Taichi] Starting on arch=..." and a DeprecationWarning from Taichi's internals
        warnings.simplefilter("ignore", DeprecationWarning)
        ti.init(arch=getattr(ti, chosen), **_init_options(ti_options))
    restore()
    _RUNTIME["generation"] += 1
    actual = ti.lang.impl.current_cfg().arch
    if actual != getattr(ti, chosen):  # Taichi fell back to the CPU, with a warning only
        _RUNTIME["key"] = ("cpu", key[1])
        raise BackendError(
            f"TaichiBackend(arch={arch!r}): Taichi could not start on {chosen} and fell back to "
            "the CPU; no GPU was found. Use arch='cpu' (tfgrad.init(arch='cpu'))."
        )
    _RUNTIME["key"] = key
    return chosen, _RUNTIME["generation"]


# ---- Host-side shape helpers ----
def _normalize_axis(op: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ShapeError(
            f"{op}: axis {axis} is out of range for an array with {ndim} dimensions; "
            f"use an axis in [{-ndim}, {ndim - 1}]."
        )
    return axis % ndim


def _contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    strides, step = [], 1
    for s in reversed(shape):
        strides.append(step)
        step *= s
    return strides[::-1]


def _gather_meta(shape: tuple[int, ...], strides: list[int]) -> list[int]:
    """``(div, shape, stride)`` per dimension after dropping length-1 dimensions and merging
    dimensions that are contiguous in the input."""
    dims: list[tuple[int, int]] = []
    for s, st in zip(shape, strides):
        if s == 1:
            continue
        if dims and dims[-1][1] == st * s:
            dims[-1] = (dims[-1][0] * s, st)
        else:
            dims.append((s, st))
    if not dims:
        dims = [(1, 0)]
    meta, div = [], 1
    for s, st in reversed(dims):
        meta[:0] = [div, s, st]
        div *= s
    return meta


class TaichiBackend:
    """Backend ops as Taichi kernels.

    ``TaichiBackend(arch="cpu")`` runs on the CPU with NumPy buffers; ``arch="gpu"`` picks CUDA,
    Vulkan or Metal (or name one: ``"cuda"``, ``"vulkan"``, ``"metal"``) and raises
    :class:`~tfgrad.errors.BackendError` where Taichi finds none. Options:

    - ``dispatch="taichi-only"`` (the default here): every op runs its Taichi kernel;
      ``dispatch="auto"`` (``tfgrad.init``'s default): the measured policy of :mod:`.dispatch`
      (BLAS for a CPU float matmul, NumPy for a tiny float array);
    - ``buffers="ndarray"``: keep buffers in Taichi ndarrays (:class:`DeviceArray`) on the CPU
      too, as on a GPU (for testing that path without one);
    - ``serial_below=n``: run loops serially below ``n`` elements (default: the measured
      ``SERIAL_BELOW`` thresholds on the CPU, 0 on a GPU);
    - ``cpu_max_num_threads``, ``debug``: passed to ``ti.init`` (a different value re-inits).

    >>> import numpy as np
    >>> b = TaichiBackend("cpu")
    >>> x = b.from_numpy(np.array([1.0, 2.0]))
    >>> b.to_numpy(b.run("add", x, x))
    array([2., 4.])
    """

    name = "taichi"

    def __init__(self, arch: str = "cpu", **options: Any):
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise BackendError(
                f"TaichiBackend: unknown option(s) {unknown}; the options are {list(_OPTIONS)}."
            )
        buffers = options.get("buffers", "numpy")
        if buffers not in ("numpy", "ndarray"):
            raise BackendError(
                f"TaichiBackend: buffers must be 'numpy' or 'ndarray', not {buffers!r}."
            )
        self.options = options
        self._ti_options = {k: options[k] for k in ("cpu_max_num_threads", "debug") if k in options}
        self.arch = arch  # as asked: "cpu", "gpu", "cuda", "vulkan" or "metal"
        self.device, self._generation = _start_taichi(arch, self._ti_options)
        on_gpu = self.device != "cpu"
        self._device_buffers = on_gpu or buffers == "ndarray"
        if on_gpu and buffers == "numpy" and "buffers" in options:
            raise BackendError("TaichiBackend: buffers='numpy' works on the CPU only.")
        # A GPU launches many threads at the cost of one: never serialise there.
        default = (0, 0) if on_gpu else (SERIAL_BELOW, SERIAL_BELOW_TRANSCENDENTAL)
        below = options.get("serial_below")
        self.serial_below, self.serial_below_transcendental = (
            default if below is None else (below, below)
        )
        self._meta_cache: dict[tuple[int, ...], Any] = {}
        self.dispatch = options.get("dispatch", "taichi-only")
        # Device buffers (a GPU, or buffers="ndarray") stay on the device: Taichi for everything.
        self.policy = Policy(self.dispatch, "device" if self._device_buffers else "cpu")
        self._reference = NumpyBackend()  # the "numpy" and "blas" implementations: its _OPS
        self._last: dict[str, str] = {}
        self._ops = {op: partial(self._unary, op) for op in _UNARY}
        self._ops.update({op: partial(self._binary, op) for op in _BINARY})
        self._ops.update({op: partial(self._reduction, op) for op in _REDUCTIONS})
        self._ops.update(
            where=self._where,
            cast=self._cast,
            cumsum=self._cumsum,
            reshape=self._reshape,
            transpose=self._transpose,
            broadcast_to=self._broadcast_to,
            slice=self._slice,
            concatenate=self._concatenate,
            take=self._take,
            scatter_add=self._scatter_add,
            matmul=self._matmul,
            full=self._full,
            arange=self._arange,
            eye=self._eye,
            random_uniform=self._random_uniform,
            random_normal=self._random_normal,
        )
        assert set(self._ops) == set(BACKEND_OPS), set(BACKEND_OPS) ^ set(self._ops)

    def __repr__(self) -> str:
        return (
            f"TaichiBackend(arch={self.arch!r}, device={self.device!r}, dispatch={self.dispatch!r})"
        )

    # ---- The Backend protocol ----
    def from_numpy(self, array: np.ndarray) -> np.ndarray | DeviceArray:
        """A buffer holding a copy of ``array`` (C-contiguous; on a GPU, on the device)."""
        array = np.asarray(array)
        self._check_dtype("from_numpy", array.dtype)
        if not self._device_buffers:
            return np.array(array, copy=True, order="C")
        self._check_runtime()
        flat = np.ascontiguousarray(array).reshape(-1)
        out = self._empty(array.shape, array.dtype)
        if flat.size:
            out.array.from_numpy(flat.view(_STORAGE_VIEW.get(array.dtype, array.dtype)))
        return out

    def to_numpy(self, buf: np.ndarray | DeviceArray) -> np.ndarray:
        """The buffer's values (on the CPU the buffer itself: do not write to it)."""
        if isinstance(buf, np.ndarray):
            return buf
        self._check_runtime()
        flat = buf.array.to_numpy()[: buf.size]
        return flat.view(buf.dtype).reshape(buf.shape)

    def implementation(self, op: str) -> str:
        """The implementation that ran the latest ``run(op, ...)``: ``"taichi"``, ``"blas"`` or
        ``"numpy"`` (``"taichi"`` before any run, and for an op that is not a backend op)."""
        # NOTE: the tape asks right after the forward ran, so this is what ran that forward,
        # without the tape recomputing the policy's inputs (dtype, size) from its tensors. Kept
        # per op rather than one "last" so that ops run in between by an enclosing trace (a JVP
        # computing tangents) report their own runs, not the record's.
        return self._last.get(op, TAICHI)

    def run(self, op: str, *bufs: Any, **params: Any) -> Any:
        """Run backend op ``op`` (see :mod:`tfgrad.backends.base`) with the implementation the
        dispatch policy picks for its dtype and size."""
        fn = self._ops.get(op)
        if fn is None:
            raise MissingKernelError(
                f"The taichi backend has no kernel for op {op!r}; its ops are {sorted(self._ops)}."
            )
        chosen = self.policy.choose(op, bufs, params) if self.policy.table else TAICHI
        self._last[op] = chosen
        if chosen != TAICHI:  # "numpy" and "blas" both run the reference backend's function
            out = self._reference.run(op, *bufs, **params)
            # NumPy returns a scalar for a 0-d result; buffers are always C-contiguous arrays
            return out if type(out) is np.ndarray else np.asarray(out)
        if self._generation != _RUNTIME["generation"]:
            self._check_runtime()
        return fn(*bufs, **params)

    def kernel_for(
        self, op: str, *bufs: Any, indices_checked: bool = False, **params: Any
    ) -> tuple[Any, str]:
        """``(fn, implementation)``: what ``run(op, *bufs, **params)`` would call, decided once
        for these shapes and dtypes, as ``fn(*bufs)``. ``tfgrad.jit`` resolves its steps so
        (``indices_checked``: its take/scatter_add indices were checked while tracing).
        A NumPy-run ``fn`` leaves ``np.errstate`` to the caller and may return a NumPy scalar."""
        fn = self._ops.get(op)
        if fn is None:
            raise MissingKernelError(
                f"The taichi backend has no kernel for op {op!r}; its ops are {sorted(self._ops)}."
            )
        table = self.policy.table
        chosen = self.policy.choose(op, bufs, params, indices_checked) if table else TAICHI
        if chosen != TAICHI:
            return self._reference.kernel_for(op, *bufs, **params)[0], chosen
        return (partial(fn, **params) if params else fn), TAICHI

    # ---- Buffers and kernel arguments ----
    def _check_runtime(self) -> None:
        if self._generation == _RUNTIME["generation"]:
            return
        if self._device_buffers:
            raise BackendError(
                f"{self!r}: Taichi was re-initialised for another arch, so this backend's "
                "device buffers are gone. Make the tensors again after tfgrad.init(arch=...)."
            )
        self.device, self._generation = _start_taichi(self.arch, self._ti_options)

    def _check_dtype(self, op: str, dtype: np.dtype) -> None:
        if dtype not in DTYPES:
            names = ", ".join(str(d) for d in DTYPES)
            raise DtypeError(f"{op}: the taichi backend has no dtype {dtype}; use one of {names}.")

    def _empty(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray | DeviceArray:
        shape = tuple(shape)
        if not self._device_buffers:
            return np.empty(shape, dtype)
        storage = ti.ndarray(_TAICHI_STORAGE[dtype], shape=(max(math.prod(shape), 1),))
        return DeviceArray(storage, shape, dtype)

    def _arg(self, buf: np.ndarray | DeviceArray) -> Any:
        """A computing kernel's argument: flat, in the storage dtype."""
        if isinstance(buf, DeviceArray):
            return buf.array
        view = _STORAGE_VIEW.get(buf.dtype)
        return buf.reshape(-1) if view is None else buf.reshape(-1).view(view)

    def _raw(self, buf: np.ndarray | DeviceArray) -> Any:
        """A moving kernel's argument: flat; on the CPU an unsigned view of the same width."""
        if isinstance(buf, DeviceArray):
            return buf.array
        return buf.reshape(-1).view(_RAW_VIEW[buf.dtype.itemsize])

    def _meta(self, values: list[int]) -> Any:
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

    def _serial(self, n: int, transcendental: bool = False) -> bool:
        return n < (self.serial_below_transcendental if transcendental else self.serial_below)

    def _exact_scalar(self, value: Any, dtype: np.dtype) -> tuple[float, int]:
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

    # ---- Elementwise ----
    def _unary(self, op: str, x):
        kernel, transcendental, other_dtypes = _UNARY[op]
        if x.dtype not in FLOATS and x.dtype not in other_dtypes:
            kinds = ", ".join(str(d) for d in FLOATS + other_dtypes)
            raise DtypeError(
                f"{op}: takes {kinds} arrays, got {x.dtype} of shape {x.shape}; cast it first "
                "(x.astype('float64'))."
            )
        out = self._empty(x.shape, x.dtype)
        if out.size:
            kernel(self._arg(x), self._arg(out), self._serial(out.size, transcendental))
        return out

    def _broadcast_shape(self, op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
        try:
            return tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            listed = " and ".join(str(s) for s in shapes)
            raise ShapeError(f"{op}: shapes {listed} do not broadcast.") from None

    def _operand(self, buf, shape: tuple[int, ...], raw: bool = False) -> tuple[Any, int]:
        """A kernel argument and stride for an input of a broadcasting op: stride 1 when it
        has the output's shape, 0 for a single element, else the broadcast, materialised."""
        arg = self._raw if raw else self._arg
        if tuple(buf.shape) == shape:
            return arg(buf), 1
        if buf.size == 1:
            return arg(buf), 0
        return arg(self._broadcast_to(buf, shape)), 1

    def _binary(self, op: str, x, y):
        if x.dtype != y.dtype:
            raise DtypeError(f"{op}: inputs have dtypes {x.dtype} and {y.dtype}; cast to one.")
        self._check_dtype(op, x.dtype)
        if x.dtype == BOOL and op in BINARY_OPS and op not in _BOOL_ARITHMETIC:
            raise DtypeError(f"{op}: bool arrays cannot be used here (as in NumPy); cast first.")
        shape = x.shape if x.shape == y.shape else self._broadcast_shape(op, x.shape, y.shape)
        out = self._empty(shape, BOOL if op in COMPARE_OPS else x.dtype)
        if not out.size:
            return out
        (xa, sx), (ya, sy) = self._operand(x, shape), self._operand(y, shape)
        serial = self._serial(out.size, transcendental=op == "pow")
        negative = _BINARY[op](xa, ya, self._arg(out), sx, sy, sx != 1 or sy != 1, serial)
        if negative:
            raise DtypeError(
                f"pow: integers to negative integer powers are not allowed ({x.dtype}, shapes "
                f"{x.shape} and {y.shape}); cast to a float dtype first."
            )
        return out

    def _where(self, condition, x, y):
        if condition.dtype != BOOL:
            raise DtypeError(f"where: the condition must be bool, got {condition.dtype}.")
        if x.dtype != y.dtype:
            raise DtypeError(f"where: x and y have dtypes {x.dtype} and {y.dtype}; cast to one.")
        shape = self._broadcast_shape("where", condition.shape, x.shape, y.shape)
        out = self._empty(shape, x.dtype)
        if not out.size:
            return out
        ca, sc = self._operand(condition, shape)
        (xa, sx), (ya, sy) = self._operand(x, shape, raw=True), self._operand(y, shape, raw=True)
        strided = sc != 1 or sx != 1 or sy != 1
        elementwise.where_kernel(
            ca, xa, ya, self._raw(out), sc, sx, sy, strided, self._serial(out.size)
        )
        return out

    def _cast(self, x, dtype):
        dtype = np.dtype(dtype)
        self._check_dtype("cast", dtype)
        if dtype == x.dtype:
            return x  # buffers are immutable: the same values may be shared
        out = self._empty(x.shape, dtype)
        if out.size:
            elementwise.cast_kernel(self._arg(x), self._arg(out), self._serial(out.size))
        return out

    # ---- Reductions ----
    def _axes(self, op: str, axes, ndim: int) -> tuple[int, ...]:
        if axes is None:
            return tuple(range(ndim))
        if isinstance(axes, (int, np.integer)):
            axes = (axes,)
        out = tuple(sorted(_normalize_axis(op, int(a), ndim) for a in axes))
        if len(set(out)) != len(out):
            raise ShapeError(f"{op}: repeated axis in {axes}.")
        return out

    def _reduction(self, op: str, x, axes=None, keepdims: bool = False):
        axes = self._axes(op, axes, x.ndim)
        kept = [k for k in range(x.ndim) if k not in axes]
        if keepdims:
            out_shape = tuple(1 if k in axes else s for k, s in enumerate(x.shape))
        else:
            out_shape = tuple(x.shape[k] for k in kept)
        size = math.prod(x.shape[k] for k in axes)
        if op == "max" and size == 0:
            raise ShapeError(
                f"max: no elements to take the maximum of (shape {x.shape}, axes {axes}); "
                "the maximum of an empty set is undefined. Reduce over non-empty axes."
            )
        n_out = math.prod(out_shape)
        if n_out == 0:
            return self._empty(out_shape, x.dtype)
        if size == 0:  # the empty sum is 0, the empty product 1
            return self._full(out_shape, 0 if op == "sum" else 1, x.dtype)
        if size == 1:  # one element per output: the values themselves
            return self._reshape(x, out_shape)
        source, inner = self._reduction_layout(x, axes, kept)
        partial_dtype = x.dtype if op == "max" else _ACCUMULATOR[x.dtype]
        out = self._empty(out_shape, x.dtype)
        serial = self._serial(x.size)
        if n_out < SPLIT_BELOW_OUTPUTS and size > 2 * REDUCE_BLOCK:
            n_blocks = -(-size // REDUCE_BLOCK)
            partials = self._empty((n_out * n_blocks,), partial_dtype)
            reduce.reduce_kernel(
                self._arg(source), self._arg(partials), size, inner, REDUCE_BLOCK, serial, op
            )
            reduce.reduce_kernel(self._arg(partials), self._arg(out), n_blocks, inner, n_blocks,
                                 True, op)  # fmt: skip
        else:
            reduce.reduce_kernel(self._arg(source), self._arg(out), size, inner, size, serial, op)
        return out

    def _reduction_layout(self, x, axes: tuple[int, ...], kept: list[int]):
        """``x`` (transposed if needed) and ``inner`` such that it reads as (outer, size,
        inner) with the reduced elements in the middle."""
        # Length-1 dimensions do not matter: are the other reduced ones adjacent?
        dims = [(s, k in axes) for k, s in enumerate(x.shape) if s != 1]
        flags = [reduced for _, reduced in dims]
        first = flags.index(True)
        last = len(flags) - 1 - flags[::-1].index(True)
        if all(flags[first : last + 1]):
            return x, math.prod(s for s, _ in dims[last + 1 :])
        return self._transpose(x, tuple(kept) + axes), 1

    def _cumsum(self, x, axis: int, reverse: bool = False):
        if x.ndim == 0:  # NumPy treats a 0-d array as one element along axis 0
            _normalize_axis("cumsum", axis, 1)
            x = self._reshape(x, (1,))
        axis = _normalize_axis("cumsum", axis, x.ndim)
        out = self._empty(x.shape, x.dtype)
        if out.size:
            size = x.shape[axis]
            inner = math.prod(x.shape[axis + 1 :])
            reduce.cumsum_kernel(
                self._arg(x),
                self._arg(out),
                x.size // size,
                size,
                inner,
                int(bool(reverse)),
                self._serial(x.size),
            )
        return out

    # ---- Movement ----
    def _reshape(self, x, shape):
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            if shape.count(-1) > 1 or known == 0 or x.size % known:
                raise ShapeError(f"reshape: cannot reshape {x.shape} into {shape}.")
            shape = tuple(x.size // known if s == -1 else s for s in shape)
        if math.prod(shape) != x.size:
            raise ShapeError(
                f"reshape: cannot reshape an array of shape {x.shape} ({x.size} elements) into "
                f"{shape} ({math.prod(shape)} elements)."
            )
        return x.reshape(shape)  # a view: buffers are C-contiguous

    def _gather(self, x, shape: tuple[int, ...], offset: int, strides: list[int]):
        """``out[i] = x[offset + sum_k index_k(i) * strides[k]]`` for ``out`` of ``shape``."""
        out_size = math.prod(shape)
        meta = _gather_meta(shape, strides)
        if offset == 0 and meta == [1, x.size, 1] and out_size == x.size:
            return self._reshape(x, shape)  # the elements in their order: share the buffer
        out = self._empty(shape, x.dtype)
        if out_size:
            movement.gather_kernel(
                self._raw(x), self._raw(out), self._meta(meta), offset, self._serial(out_size)
            )
        return out

    def _transpose(self, x, axes):
        axes = tuple(int(a) for a in axes)
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ShapeError(f"transpose: axes {axes} are not a permutation of {x.ndim} axes.")
        axes = tuple(a % x.ndim for a in axes)
        strides = _contiguous_strides(x.shape)
        return self._gather(x, tuple(x.shape[a] for a in axes), 0, [strides[a] for a in axes])

    def _broadcast_to(self, x, shape):
        shape = tuple(int(s) for s in shape)
        lead = len(shape) - x.ndim
        if lead < 0 or any(s not in (1, t) for s, t in zip(x.shape, shape[lead:])):
            raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}.")
        in_strides = _contiguous_strides(x.shape)
        strides = [0] * lead + [
            st if s == t else 0 for s, t, st in zip(x.shape, shape[lead:], in_strides)
        ]
        return self._gather(x, shape, 0, strides)

    def _slice(self, x, index):
        index = tuple(tuple(int(v) for v in triple) for triple in index)
        if len(index) != x.ndim:
            raise ShapeError(f"slice: {len(index)} (start, stop, step) triples for {x.ndim} axes.")
        in_strides = _contiguous_strides(x.shape)
        shape, strides, offset = [], [], 0
        for (start, stop, step), n, st in zip(index, x.shape, in_strides):
            if step == 0:
                raise ShapeError("slice: step cannot be 0.")
            length = len(range(start, stop, step))  # stop < 0 with step < 0: past the front
            if length and not (0 <= start < n and 0 <= start + (length - 1) * step < n):
                raise ShapeError(f"slice: {(start, stop, step)} is out of range for length {n}.")
            shape.append(length)
            strides.append(step * st)
            offset += start * st if length else 0
        if 0 in shape:
            return self._empty(tuple(shape), x.dtype)
        return self._gather(x, tuple(shape), offset, strides)

    def _concatenate(self, *xs, axis: int = 0):
        if not xs:
            raise ShapeError("concatenate: needs at least one array.")
        first = xs[0]
        if first.ndim == 0:
            raise ShapeError("concatenate: 0-d arrays cannot be concatenated; reshape to (1,).")
        axis = _normalize_axis("concatenate", axis, first.ndim)
        for x in xs:
            if x.dtype != first.dtype:
                raise DtypeError(f"concatenate: dtypes {first.dtype} and {x.dtype}; cast to one.")
            if x.ndim != first.ndim or any(
                s != t for k, (s, t) in enumerate(zip(x.shape, first.shape)) if k != axis
            ):
                raise ShapeError(
                    f"concatenate: shapes {first.shape} and {x.shape} differ off axis {axis}."
                )
        total = sum(x.shape[axis] for x in xs)
        shape = first.shape[:axis] + (total,) + first.shape[axis + 1 :]
        out = self._empty(shape, first.dtype)
        if not out.size:
            return out
        inner = math.prod(first.shape[axis + 1 :])
        offset, serial = 0, self._serial(out.size)
        for x in xs:
            row = x.shape[axis] * inner
            if x.size:
                movement.concatenate_kernel(
                    self._raw(x), self._raw(out), row, total * inner, offset, serial
                )
            offset += row
        return out

    def _index_args(self, op: str, x, indices, axis: int) -> tuple[int, int]:
        if indices.dtype not in INTEGERS:
            raise DtypeError(f"{op}: indices must be int32 or int64, got {indices.dtype}.")
        if x.ndim == 0:
            raise ShapeError(f"{op}: needs an array with at least one dimension, got shape ().")
        return _normalize_axis(op, axis, x.ndim), indices.size

    def _take(self, x, indices, axis: int = 0):
        axis, n_indices = self._index_args("take", x, indices, axis)
        shape = x.shape[:axis] + tuple(indices.shape) + x.shape[axis + 1 :]
        out = self._empty(shape, x.dtype)
        if out.size:
            size, inner = x.shape[axis], math.prod(x.shape[axis + 1 :])
            bad = movement.take_kernel(
                self._raw(x),
                self._arg(indices),
                self._raw(out),
                size,
                n_indices,
                inner,
                self._serial(out.size),
            )
            if bad:
                raise ShapeError(
                    f"take: {bad} indices out of range for axis {axis} of size {size} "
                    f"(shape {x.shape}); indices must lie in [-{size}, {size})."
                )
        return out

    def _scatter_add(self, operand, indices, updates, axis: int = 0):
        axis, n_indices = self._index_args("scatter_add", operand, indices, axis)
        if updates.dtype != operand.dtype:
            raise DtypeError(
                f"scatter_add: operand is {operand.dtype}, updates are {updates.dtype}; cast."
            )
        expected = operand.shape[:axis] + tuple(indices.shape) + operand.shape[axis + 1 :]
        if tuple(updates.shape) != expected:
            raise ShapeError(
                f"scatter_add: updates have shape {updates.shape}; operand {operand.shape} with "
                f"indices {indices.shape} along axis {axis} needs {expected}."
            )
        out = self._empty(operand.shape, operand.dtype)
        if out.size:
            size, inner = operand.shape[axis], math.prod(operand.shape[axis + 1 :])
            bad = movement.scatter_add_kernel(
                self._arg(operand),
                self._arg(indices),
                self._arg(updates),
                self._arg(out),
                operand.size // size,
                size,
                n_indices,
                inner,
                self._serial(operand.size + updates.size),
            )
            if bad:
                raise ShapeError(
                    f"scatter_add: indices out of range for axis {axis} of size {size} "
                    f"(shape {operand.shape}); indices must lie in [-{size}, {size})."
                )
        return out

    # ---- Matrix product ----
    def _matmul(self, a, b):
        if a.dtype != b.dtype:
            raise DtypeError(f"matmul: dtypes {a.dtype} and {b.dtype}; cast to one.")
        self._check_dtype("matmul", a.dtype)
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: shapes {a.shape} and {b.shape}; 0-d arrays have no rows.")
        vector_a, vector_b = a.ndim == 1, b.ndim == 1
        a2 = self._reshape(a, (1,) + a.shape) if vector_a else a
        b2 = self._reshape(b, b.shape + (1,)) if vector_b else b
        batch = a2.shape[:-2]
        (m, k), (k2, n) = a2.shape[-2:], b2.shape[-2:]
        if k != k2 or (batch != b2.shape[:-2] and not (vector_a or vector_b)):
            raise ShapeError(
                f"matmul: shapes {a.shape} and {b.shape} do not fit; need (..., m, k) @ "
                "(..., k, n) with equal batch dimensions."
            )
        if vector_b and a2.ndim > 2:
            b2 = self._broadcast_to(b2, batch + b2.shape)
        if vector_a and b2.ndim > 2:
            batch = b2.shape[:-2]
            a2 = self._broadcast_to(a2, batch + a2.shape)
        out = self._empty(batch + (m, n), a.dtype)
        if out.size:
            # compute dtype: the scratch's (packed operands, see linalg; NumPy on the CPU)
            compute = {BOOL: INT32, FLOAT16: FLOAT32, BFLOAT16: FLOAT32}.get(a.dtype, a.dtype)
            count = math.prod(batch)
            plan = linalg.plan(m, k, n, count, compute.itemsize, compute == a.dtype, self.device)
            if max(plan.scratch, a2.size, b2.size, out.size) >= linalg.INDEX_LIMIT:
                raise ShapeError(
                    f"matmul: shapes {a.shape} and {b.shape} are too large for the Taichi "
                    f"kernel's 32-bit indexing (limit {linalg.INDEX_LIMIT} elements)."
                )
            # a vectorised multiply-add costs ~1/64 of an element of a memory-bound op, and a
            # parallel loop ~150 us of thread wake-up in the measured VM (benchmarks/README.md)
            serial_pack = self._serial(plan.scratch)
            serial = self._serial(out.size * max(k, 1) // 64)
            linalg.matmul_kernel(
                self._arg(a2),
                self._arg(b2),
                self._arg(self._empty((max(plan.scratch, 1),), compute)),
                self._arg(out),
                count,
                m,
                k,
                n,
                plan.G,
                0 if serial_pack else plan.pack_spread,
                0 if serial else plan.product_spread,
                plan.MR,
                plan.NR,
                plan.KB,
                plan.pack_b,
                plan.edges,
                serial_pack,
                serial,
            )
        shape = batch + ((m,) if not vector_a else ()) + ((n,) if not vector_b else ())
        return self._reshape(out, shape)

    # ---- Creation ----
    def _creation_shape(self, shape) -> tuple[int, ...]:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise ShapeError(f"Shapes cannot have negative sizes: {shape}.")
        return shape

    def _full(self, shape, value, dtype):
        dtype = np.dtype(dtype)
        self._check_dtype("full", dtype)
        out = self._empty(self._creation_shape(shape), dtype)
        if out.size:
            value_float, value_int = self._exact_scalar(value, dtype)
            creation.full_kernel(self._arg(out), value_float, value_int, self._serial(out.size))
        return out

    def _arange(self, start, step, n, dtype):
        dtype = np.dtype(dtype)
        self._check_dtype("arange", dtype)
        out = self._empty(self._creation_shape(n), dtype)
        if out.size:
            creation.arange_kernel(
                self._arg(out), float(start), float(step), self._serial(out.size)
            )
        return out

    def _eye(self, n, m=None, k=0, dtype=FLOAT64):
        dtype = np.dtype(dtype)
        self._check_dtype("eye", dtype)
        m = n if m is None else m
        out = self._empty(self._creation_shape((n, m)), dtype)
        if out.size:
            one_float, one_int = self._exact_scalar(1, dtype)
            creation.eye_kernel(
                self._arg(out), int(m), int(k), one_float, one_int, self._serial(out.size)
            )
        return out

    def _random_dtype(self, op: str, dtype) -> np.dtype:
        dtype = np.dtype(dtype)
        if dtype not in FLOATS:
            raise DtypeError(f"{op}: draws are floats; got dtype {dtype}, use a float dtype.")
        return dtype

    def _random_uniform(self, shape, seed, counter, dtype):
        dtype = self._random_dtype("random_uniform", dtype)
        out = self._empty(self._creation_shape(shape), dtype)
        if out.size:
            bits_kept = MANTISSA_BITS[dtype.name]
            creation.random_uniform_kernel(
                self._arg(out),
                int(seed) % 2**64,
                int(counter) % 2**64,
                bits_kept,
                2.0**-bits_kept,
                self._serial(out.size),
            )
        return out

    def _random_normal(self, shape, seed, counter, dtype):
        dtype = self._random_dtype("random_normal", dtype)
        out = self._empty(self._creation_shape(shape), dtype)
        if out.size:
            creation.random_normal_kernel(
                self._arg(out),
                int(seed) % 2**64,
                int(counter) % 2**64,
                self._serial(out.size, transcendental=True),
            )
        return out
