"""The Taichi backend: every op of tfgrad's primitives has a Taichi kernel, on the CPU or a GPU.

This module is the backend object: its options, the protocol of :mod:`tfgrad.backends.base`,
and the choice of implementation per call. The rest of the package holds one job each:

- :mod:`.runtime`: starting Taichi for an arch (one runtime per process);
- :mod:`.buffers`: buffers (NumPy arrays on the CPU, :class:`DeviceArray` on a device) and the
  flat views kernels take of them;
- :mod:`.elementwise`, :mod:`.reduce`, :mod:`.movement`, :mod:`.linalg` (and :mod:`.conv`, the
  family's convolutions), :mod:`.creation`: each family's kernels, their host adapters and the
  family's table (:mod:`.kernels` joins them);
- :mod:`.dispatch`: which implementation runs an op; :mod:`.fusion`: ``tfgrad.jit``'s fused
  kernels.

Dispatch
    Under ``dispatch="auto"`` a CPU matmul or convolution in a float dtype runs BLAS through
    NumPy (float16/bfloat16 widened to float32, the result rounded once) and a float array
    below its dtype's measured size runs the reference backend's NumPy function; under
    ``"taichi-only"`` (the default of this class; the default of ``tfgrad.init`` is ``"auto"``)
    every op runs its Taichi kernel.
    Within a kernel, Taichi's parallel loop costs a thread-pool dispatch; below a measured size
    the loop runs serially on the calling thread instead (``SERIAL_BELOW``).

Taichi runtime
    ``TaichiBackend(arch)`` calls ``ti.init`` the first time; another instance with the same arch
    and options shares it; a different arch re-initialises Taichi, and every buffer of the old
    runtime's GPU arrays (DeviceArray) becomes invalid. CPU NumPy buffers survive: a CPU backend
    used again after a switch re-initialises Taichi for itself.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ...errors import BackendError
from .. import base, pool
from ..numpy_backend import FP_IGNORE, FP_STATE, NumpyBackend, widen
from . import dispatch, runtime
from .buffers import DTYPES, STORAGE_VIEW, Buffers, DeviceArray
from .dispatch import BLAS, HALVES, NUMPY, TAICHI, Policy
from .kernels import KERNELS

FLOAT16, FLOAT32 = np.dtype(np.float16), np.dtype(np.float32)

__all__ = ["TaichiBackend", "DeviceArray", "DTYPES", "SERIAL_BELOW", "SERIAL_BELOW_TRANSCENDENTAL"]

# Loops run serially below these element counts: a parallel loop pays a thread-pool dispatch
# that costs more than a small loop (measured: benchmarks/README.md, "Serial loops").
SERIAL_BELOW = 1 << 19  # memory-bound ops: arithmetic, compares, casts, moves, reductions
SERIAL_BELOW_TRANSCENDENTAL = 1 << 16  # exp, log, sin, tanh, pow, ... and normal draws

_OPTIONS = ("dispatch", "buffers", "serial_below", "cpu_max_num_threads", "debug")


class TaichiBackend(Buffers):
    """Ops as Taichi kernels.

    ``TaichiBackend(arch="cpu")`` runs on the CPU with NumPy buffers; ``arch="gpu"`` picks CUDA,
    Vulkan or Metal (or name one: ``"cuda"``, ``"vulkan"``, ``"metal"``) and raises
    :class:`~tfgrad.errors.BackendError` where Taichi finds none. Options:

    - ``dispatch="taichi-only"`` (the default here): every op runs its Taichi kernel;
      ``dispatch="auto"`` (``tfgrad.init``'s default): the measured policy of :mod:`.dispatch`
      (BLAS for a CPU float matmul or convolution, NumPy for a small float array);
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
        self.device, self._generation = runtime.start(arch, self._ti_options)
        on_gpu = self.device != "cpu"
        self.device_buffers = on_gpu or buffers == "ndarray"
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
        self.policy = Policy(self.dispatch, "device" if self.device_buffers else "cpu")
        self._reference = NumpyBackend()  # the "numpy" and "blas" implementations
        self._last: dict[str, str] = {}
        self._plans: dict[tuple, tuple] = {}
        self._fuser: Any = None

    def __repr__(self) -> str:
        return (
            f"TaichiBackend(arch={self.arch!r}, device={self.device!r}, dispatch={self.dispatch!r})"
        )

    # ---- The Backend protocol ----
    def from_numpy(self, array: np.ndarray) -> np.ndarray | DeviceArray:
        """A buffer holding a copy of ``array`` (C-contiguous; on a GPU, on the device)."""
        array = np.asarray(array)
        self.check_dtype("from_numpy", array.dtype)
        if not self.device_buffers:
            out = self.empty(array.shape, array.dtype)
            np.copyto(out, array)
            return out
        self.check_runtime()
        flat = np.ascontiguousarray(array).reshape(-1)
        out = self.empty(array.shape, array.dtype)
        if flat.size:
            out.array.from_numpy(flat.view(STORAGE_VIEW.get(array.dtype, array.dtype)))
        return out

    def to_numpy(self, buf: np.ndarray | DeviceArray) -> np.ndarray:
        """The buffer's values (on the CPU the buffer itself: do not write to it)."""
        if isinstance(buf, np.ndarray):
            return buf
        self.check_runtime()
        flat = buf.array.to_numpy()[: buf.size]
        return flat.view(buf.dtype).reshape(buf.shape)

    def implementation(self, op: base.OpInfo | str) -> str:
        """The implementation that ran the latest ``run(op, ...)``: ``"taichi"``, ``"blas"`` or
        ``"numpy"`` (``"taichi"`` before any run, and for an op that is not a backend op)."""
        # NOTE: the tape asks right after the forward ran, so this is what ran that forward,
        # without the tape recomputing the policy's inputs (dtype, size) from its tensors. Kept
        # per op rather than one "last" so that ops run in between by an enclosing trace (a JVP
        # computing tangents) report their own runs, not the record's.
        return self._last.get(op if type(op) is str else op.name, TAICHI)

    def run(self, op: base.OpInfo | str, *bufs: Any, **params: Any) -> Any:
        """Run ``op`` (see :mod:`tfgrad.backends.base`) with the implementation the dispatch
        policy picks for its family, dtype and size."""
        if bufs and not params:
            # The hot path of small arrays: a ufunc op in a float dtype that the policy sends
            # to NumPy below `below` elements, decided once per (op, dtype) (see _plan).
            x = bufs[0]
            below, name, ufunc = self._plans.get((op, x.dtype)) or self._plan(op, x.dtype)
            if x.size < below and (
                len(bufs) == 1 or (bufs[1].dtype is x.dtype and bufs[1].size < below)
            ):
                self._last[name] = NUMPY
                token = FP_STATE.set(FP_IGNORE)  # np.errstate(all="ignore"), prebuilt
                try:
                    out = ufunc(*bufs)
                finally:
                    FP_STATE.reset(token)
                return out if type(out) is np.ndarray else np.asarray(out)
        op, entry = KERNELS.found.get(op) or KERNELS.find(op)
        chosen = self.policy.choose(op, bufs, params) if self.policy.table else TAICHI
        self._last[op.name] = chosen
        if chosen != TAICHI:  # "numpy" and "blas" both run the reference backend's function
            if chosen == BLAS and bufs[0].dtype == FLOAT16:
                return self._float16_blas(op, params, *bufs)
            out = self._reference.run(op, *bufs, **params)
            # NumPy returns a scalar for a 0-d result; buffers are always C-contiguous arrays
            return out if type(out) is np.ndarray else np.asarray(out)
        if self._generation != runtime.generation():
            self.check_runtime()
        return entry(self, op, *bufs, **params)

    def _float16_blas(self, op: base.OpInfo, params: dict, *bufs: Any) -> np.ndarray:
        """A float16 product or convolution on BLAS, as the reference backend runs it (widen to
        float32, the float32 function, round once), the two conversions on Taichi's cast
        kernel: NumPy's float16 casts take a slow path for values in float16's subnormal range
        and for overflow (67 ms for 2^20 such elements, against 1.9 ms for normal ones: the
        small gradients of a float16 sweep), the kernel (the CPU's conversion instructions)
        0.6 ms whatever the values, with the same bits."""
        if self._generation != runtime.generation():
            self.check_runtime()
        info, cast = KERNELS.find("cast")

        def convert(b: np.ndarray, dtype: np.dtype) -> np.ndarray:
            if b.size < dispatch.FLOAT16_CAST_BELOW:  # NumPy's cast: a launch costs ~35 us
                if dtype == FLOAT32:
                    return widen(b, FLOAT32)
                with np.errstate(over="ignore"):  # float16 overflows to inf, as the kernel's
                    return b.astype(dtype)
            return cast(self, info, np.ascontiguousarray(b), dtype=dtype)

        wide = [convert(b, FLOAT32) if b.dtype == FLOAT16 else b for b in bufs]
        out = self._reference.run(op, *wide, **params)
        return convert(np.asarray(out), FLOAT16)

    def _plan(self, op: base.OpInfo | str, dtype: np.dtype) -> tuple[int, str, Any]:
        """``(below, name, ufunc)``: ``op`` on ``dtype`` arrays of fewer than ``below`` elements
        is exactly the reference backend's ufunc on them (in float16/bfloat16 its function for
        the op, which wraps the ufunc in casts; what the policy would choose and run;
        ``below`` is 0 where that is not so: other dtypes, families, modes, non-ufunc ops)."""
        info, _ = KERNELS.found.get(op) or KERNELS.find(op)
        rule = (self.policy.table.get(info.family) or {}).get(dtype)
        ufunc = None
        if type(rule) is int and FP_STATE is not None:
            fn = self._reference.kernels.find(info)[1]
            if dtype in (np.float32, np.float64):
                ufunc = getattr(fn, "ufunc", None)
            elif dtype in HALVES and hasattr(fn, "ufunc"):
                ufunc = fn  # the reference's own: widened to float32, the ufunc, rounded once
        # Results of the pool's size go the reference backend's way, which allocates them
        # from the pool (a fresh 16 MB array faults in every page: elementwise_big's step).
        below = min(rule, pool.MIN_BYTES // dtype.itemsize) if ufunc is not None else 0
        plan = (below, info.name, ufunc)
        self._plans[(op, dtype)] = plan
        return plan

    def kernel_for(
        self, op: base.OpInfo | str, *bufs: Any, indices_checked: bool = False, **params: Any
    ) -> tuple[Any, str]:
        """``(fn, implementation)``: what ``run(op, *bufs, **params)`` would call, decided once
        for these shapes and dtypes, as ``fn(*bufs)``. ``tfgrad.jit`` resolves its steps so
        (``indices_checked``: its take/scatter_add indices were checked while tracing).
        A NumPy-run ``fn`` leaves ``np.errstate`` to the caller and may return a NumPy scalar."""
        op, entry = KERNELS.find(op)
        table = self.policy.table
        chosen = self.policy.choose(op, bufs, params, indices_checked) if table else TAICHI
        if chosen == BLAS and bufs and bufs[0].dtype == FLOAT16:
            return partial(self._float16_blas, op, params), chosen
        if chosen != TAICHI:
            return self._reference.kernel_for(op, *bufs, **params)[0], chosen
        return partial(entry, self, op, **params), TAICHI

    def fuser(self) -> Any:
        """The fusion hook (:class:`.fusion.TaichiFuser`): ``tfgrad.jit``'s generated kernels."""
        if self._fuser is None:
            from .fusion import TaichiFuser

            self._fuser = TaichiFuser(self)
        return self._fuser

    # ---- What the host adapters ask of the backend ----
    def serial(self, n: int, family: str | None = None) -> bool:
        """Whether a loop over ``n`` elements of an op of ``family`` runs on this thread."""
        if family == base.TRANSCENDENTAL:
            return n < self.serial_below_transcendental
        return n < self.serial_below

    def check_runtime(self) -> None:
        """Restart Taichi for this backend if another one re-initialised it (CPU buffers
        survive that; device buffers do not)."""
        if self._generation == runtime.generation():
            return
        if self.device_buffers:
            raise BackendError(
                f"{self!r}: Taichi was re-initialised for another arch, so this backend's "
                "device buffers are gone. Make the tensors again after tfgrad.init(arch=...)."
            )
        self.device, self._generation = runtime.start(self.arch, self._ti_options)
