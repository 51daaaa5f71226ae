"""Fusing a group of pointwise ops into one generated Taichi kernel: the Taichi backend's fusion
hook (``TaichiBackend.fuser()``, see :class:`tfgrad.backends.base.Fuser`).

A group (:class:`~tfgrad.backends.base.FusionGroup`: ops over one output shape, which
``tfgrad.jit`` found to be one stage) becomes one loop over the flat output: each input is
loaded once per element (broadcast inputs through an index computed from ``i``), every op is one
line calling the same ``ti.func`` the op's own kernel uses (its entry in the kernel tables, so a
fused result equals the unfused Taichi one), and only the group's outputs are stored. Scalar
constants (and arrays of one repeated value) become typed literals in the source. Halves compute
in float32 and round to their dtype after every op, as the eager kernels do.

Kernels are cached by their source, which holds everything that varies (shapes, dtypes,
constants); Taichi's offline cache keeps the compiled code for the next process.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from typing import Any

import numpy as np
import taichi as ti

from .. import pool
from ..base import TRANSCENDENTAL, FusionGroup, OpInfo
from . import codec, runtime
from .buffers import BFLOAT16, BOOL, FLOAT16, FLOAT32, FLOAT64, FLOATS
from .kernels import KERNELS

__all__ = ["TaichiFuser", "FusedKernel"]

STORAGE = {
    FLOAT16: "ti.f16",
    BFLOAT16: "ti.u16",
    FLOAT32: "ti.f32",
    FLOAT64: "ti.f64",
    BOOL: "ti.u8",
}
STORAGE_NUMPY = {
    FLOAT16: FLOAT16,
    BFLOAT16: np.dtype(np.uint16),
    FLOAT32: FLOAT32,
    FLOAT64: FLOAT64,
    BOOL: np.dtype(np.uint8),
}
# Rounding a float32-computed value to a half, as the eager kernels store it.
ROUND = {FLOAT16: "ti.cast(ti.cast({}, ti.f16), ti.f32)", BFLOAT16: "bf16_to_f32(f32_to_bf16({}))"}

# The cost model deciding whether a group pays for a kernel launch, in microseconds on the CPU:
# a launch and each array it takes against a NumPy call per op, and per element NumPy's
# vectorised loops against Taichi's (fast_math off: LLVM does not vectorise them). The constants
# are measurements: benchmarks/README.md, "Fusion's cost model".
LAUNCH_US, PER_ARRAY_US, NUMPY_CALL_US = 4.5, 2.4, 1.0
NUMPY_NS = {"cheap": 0.5, "transcendental": 5.0}  # per element and op
TAICHI_NS = {"cheap": 0.5, "transcendental": 4.0}
TAICHI_ARRAY_NS = 0.2  # per element and array read or written
MAX_ARRAYS = 60  # Taichi 1.7's Python launch takes at most 64 arguments (the thin one more)
# Elements per block of the generated loop: every line of the body is written once per element
# of a block, so the block's independent chains of arithmetic (exp and tanh are arithmetic, see
# elementwise.exp_op) overlap in the CPU's pipelines and each array's address is loaded once
# per block rather than once per element (Taichi reloads it after every store).
UNROLL = 8
LANE = "__L"  # the element's suffix in generated names, replaced per element of a block

_KERNELS: dict[Any, Any] = {}  # (source, functions) -> compiled kernel (process-wide)


def _literal(value: float, dtype: np.dtype) -> str:
    return f"ti.{'f64' if dtype == FLOAT64 else 'f32'}({float(value)!r})"


def _splat(value: np.ndarray | None, dtype: np.dtype) -> float | None:
    """The one value every element of a float constant holds, if it is finite; else None."""
    if value is None or dtype not in FLOATS or value.size == 0:
        return None
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    v = a[0]
    if not np.isfinite(v) or not (a == v).all():
        return None
    return float(v)


def _kind(op: OpInfo) -> str:
    return "transcendental" if op.family == TRANSCENDENTAL else "cheap"


class FusedKernel:
    """One generated kernel: call it with the buffers of the group's inputs listed in
    ``inputs``; it returns new output buffers. ``source`` is the Taichi code."""

    implementation = "fused-taichi"

    def __init__(
        self, source: str, kernel: Any, inputs: list[int], group: FusionGroup, backend: Any
    ):
        self.source, self.kernel, self.inputs = source, kernel, inputs
        self.n_ops = len(group.ops)
        self.backend = backend
        self._out_specs = [(group.shape, group.ops[j].dtype) for j in group.outputs]
        size = math.prod(group.shape)
        sizes = [math.prod(group.inputs[k][0]) for k in inputs] + [size] * len(group.outputs)
        dtypes = [group.inputs[k][1] for k in inputs] + [d for _, d in self._out_specs]
        self._thin = None if backend.device_buffers else ThinLauncher(kernel, sizes, dtypes)

    def __call__(self, *bufs: Any) -> tuple:
        if self._thin is not None:
            outs = [pool.empty(shape, dtype) for shape, dtype in self._out_specs]
            self._thin(bufs, outs)
            return tuple(outs)
        arg, empty = self.backend.arg, self.backend.empty
        outs = [empty(shape, dtype) for shape, dtype in self._out_specs]
        self.kernel(*[arg(b) for b in bufs], *[arg(o) for o in outs])
        return tuple(outs)

    def __repr__(self) -> str:
        return f"FusedKernel({self.n_ops} ops, {len(self.inputs)} in, {len(self._out_specs)} out)"


class ThinLauncher:
    """Launches a compiled kernel on NumPy buffers without Taichi's per-call Python (argument
    type dispatch, template lookup, compile-cache check), a fraction of its cost per argument
    (benchmarks/README.md, "Fusion's cost model").

    # NOTE: this uses Taichi 1.7's internals (``Kernel.compiled_kernels``,
    # ``make_launch_context``, ``Program.compile_kernel``/``launch_kernel``), which the project
    # pins. The compiled kernel belongs to one Taichi runtime: after ``ti.init`` runs again
    # (another arch), the launcher compiles again before launching.
    """

    def __init__(self, kernel: Any, sizes: list[int], dtypes: list[np.dtype]):
        self.kernel = kernel._primal
        self.sizes = sizes
        self.samples = [np.zeros(n, STORAGE_NUMPY[d]) for n, d in zip(sizes, dtypes)]
        self.generation = -1

    def _prepare(self) -> None:
        from taichi.lang import impl

        key = self.kernel.ensure_compiled(*self.samples)
        t_kernel = self.kernel.compiled_kernels[key]
        self.prog = impl.get_runtime().prog
        self.compiled = self.prog.compile_kernel(
            self.prog.config(), self.prog.get_device_caps(), t_kernel
        )
        self.context = t_kernel.make_launch_context()
        self.generation = runtime.generation()

    def __call__(self, inputs: tuple, outputs: list) -> None:
        if self.generation != runtime.generation():
            self._prepare()
        context, sizes = self.context, self.sizes
        keep = []
        for k, a in enumerate(inputs):
            if not a.flags.c_contiguous:  # a NumPy view (transpose, broadcast_to) of the input
                a = np.ascontiguousarray(a)
                keep.append(a)
            context.set_arg_external_array_with_shape((k,), a.ctypes.data, a.nbytes, (sizes[k],), 0)
        k = len(inputs)
        for a in outputs:
            context.set_arg_external_array_with_shape((k,), a.ctypes.data, a.nbytes, (sizes[k],), 0)
            k += 1
        self.prog.launch_kernel(self.compiled, context)


class TaichiFuser:
    """The Taichi backend's answers to ``tfgrad.jit`` about fusion (a
    :class:`tfgrad.backends.base.Fuser`)."""

    def __init__(self, backend: Any):
        self.backend = backend
        # With device buffers (a GPU) every op is a Taichi launch anyway, so fusing always pays;
        # so it does under taichi-only, where each op would be its own kernel.
        self.always = backend.device_buffers or not backend.policy.table

    def accepts(self, op: OpInfo, in_dtypes: tuple, out_dtype: np.dtype, shape: tuple) -> bool:
        if math.prod(shape) == 0:
            return False
        return KERNELS.find(op)[1].fusable(tuple(in_dtypes), out_dtype)

    def _arrays(self, group: FusionGroup) -> int:
        """How many arrays a kernel for ``group`` takes: its inputs other than one-valued
        constants (those become literals) and what it stores."""
        read = sum(1 for _, dtype, value in group.inputs if _splat(value, dtype) is None)
        return read + len(group.outputs)

    def worth_fusing(self, group: FusionGroup) -> bool:
        arrays = self._arrays(group)
        if arrays > MAX_ARRAYS and self.backend.device_buffers:
            return False  # Taichi's own launch path (device buffers) refuses more arguments
        if self.always:
            return True
        if len(group.ops) < 2:
            return False
        n = math.prod(group.shape)
        kinds = [_kind(fused.op) for fused in group.ops]
        numpy_us = sum(NUMPY_CALL_US + n * NUMPY_NS[k] * 1e-3 for k in kinds)
        threads = 1 if n < self.backend.serial_below_transcendental else 2
        per_element_ns = sum(TAICHI_NS[k] for k in kinds) + TAICHI_ARRAY_NS * arrays
        taichi_us = LAUNCH_US + PER_ARRAY_US * arrays + n * per_element_ns * 1e-3 / threads
        return taichi_us < numpy_us

    def compile(self, group: FusionGroup) -> FusedKernel:
        shape = group.shape
        n = math.prod(shape)
        n_inputs = len(group.inputs)
        params, loads, used = [], [], []
        local: dict[int, str] = {}  # argument reference -> expression
        functions: dict[str, Any] = {}  # name in the source -> ti.func

        def dtype_of(ref: int) -> np.dtype:
            return group.inputs[ref][1] if ref < n_inputs else group.ops[ref - n_inputs].dtype

        def operand(ref: int) -> str:
            if ref in local:
                return local[ref]
            in_shape, dtype, value = group.inputs[ref]
            splat = _splat(value, dtype)
            if splat is not None:
                local[ref] = _literal(splat, dtype)
                return local[ref]
            a = f"a{len(used)}"
            used.append(ref)
            params.append(f"{a}: ti.types.ndarray(dtype={STORAGE[dtype]}, ndim=1)")
            index = _broadcast_index(tuple(in_shape), shape)
            if dtype == BOOL:
                expr = f"ti.cast({a}[{index}] != 0, ti.i32)"
            elif dtype == BFLOAT16:
                expr = f"bf16_to_f32({a}[{index}])"
            elif dtype == FLOAT16:
                expr = f"ti.cast({a}[{index}], ti.f32)"
            else:
                expr = f"{a}[{index}]"
            name = f"x{len(used) - 1}{LANE}"
            loads.append(f"{name} = {expr}")
            local[ref] = name
            return name

        def call_name(func: Any) -> str:
            name = func.__name__
            while functions.get(name, func) is not func:  # two ops' functions of one name
                name += "_"
            functions[name] = func
            return name

        lines = []
        transcendental = False
        for j, fused in enumerate(group.ops):
            op, entry = KERNELS.find(fused.op)
            transcendental |= op.family == TRANSCENDENTAL
            args = [operand(ref) for ref in fused.args]
            call = call_name(entry.func) if entry.func is not None else ""
            in_dtypes = [dtype_of(ref) for ref in fused.args]
            expr = entry.expression(call, args, in_dtypes, fused.params)
            if fused.dtype in ROUND:
                expr = ROUND[fused.dtype].format(expr)
            lines.append(f"v{j}{LANE} = {expr}")
            local[n_inputs + j] = f"v{j}{LANE}"
        stores = []
        for k, j in enumerate(group.outputs):
            o, dtype, value = f"o{k}", group.ops[j].dtype, f"v{j}{LANE}"
            params.append(f"{o}: ti.types.ndarray(dtype={STORAGE[dtype]}, ndim=1)")
            if dtype == BOOL:
                stores.append(f"{o}[i{LANE}] = ti.cast({value} != 0, ti.u8)")
            elif dtype == BFLOAT16:
                stores.append(f"{o}[i{LANE}] = f32_to_bf16({value})")
            elif dtype == FLOAT16:
                stores.append(f"{o}[i{LANE}] = ti.cast({value}, ti.f16)")
            else:
                stores.append(f"{o}[i{LANE}] = {value}")
        serial = self.backend.serial(n, TRANSCENDENTAL if transcendental else None)
        text = "\n".join(_loops(n, loads + lines + stores, serial))
        digest = hashlib.sha1(("\n".join(params) + text).encode()).hexdigest()[:16]
        source = (
            f"@ti.kernel\ndef fused_{digest}(\n" + "".join(f"    {p},\n" for p in params) + "):\n"
            f"    # {len(group.ops)} ops over {n} elements, shape {shape}\n" + text + "\n"
        )
        kernel = _compile(source, digest, functions)
        return FusedKernel(source, kernel, used, group, self.backend)


def _lane(line: str, lane: str) -> str:
    return "        " + line.replace(LANE, lane)


def _loops(n: int, body: list[str], serial: bool) -> list[str]:
    """The kernel's loops over ``n`` elements running ``body`` (lines naming the element
    ``i{LANE}``): blocks of :data:`UNROLL` elements, each line written once per element of the
    block (so the block's loads, then each op, then its stores), then the remaining elements
    one at a time."""
    config = ["    ti.loop_config(serialize=True)"] if serial else []
    blocks, out = n // UNROLL, []
    if blocks:
        lanes = [f"_{u}" for u in range(UNROLL)]
        out += config + [f"    for b in range({blocks}):"]
        out += [f"        i_{u} = b * {UNROLL} + {u}" for u in range(UNROLL)]
        out += [_lane(line, lane) for line in body for lane in lanes]
    if n % UNROLL:  # named as before blocks existed: a small kernel reads as one plain loop
        start = f"{blocks * UNROLL}, " if blocks else ""
        out += config + [f"    for i in range({start}{n}):"]
        out += [_lane(line, "") for line in body]
    return out


def _broadcast_index(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
    """The flat index into an input of ``in_shape`` for flat output element ``i``."""
    i = f"i{LANE}"
    if in_shape == out_shape:
        return i
    if math.prod(in_shape) == 1:
        return "0"
    padded = (1,) * (len(out_shape) - len(in_shape)) + in_shape
    terms = []
    out_stride, in_stride = 1, 1
    for d in reversed(range(len(out_shape))):
        if padded[d] != 1:
            term = (
                f"({i} // {out_stride}) % {out_shape[d]}"
                if out_stride > 1
                else f"{i} % {out_shape[d]}"
            )
            terms.append(f"({term}) * {in_stride}" if in_stride > 1 else f"({term})")
        out_stride *= out_shape[d]
        in_stride *= padded[d]
    return " + ".join(reversed(terms))


def _compile(source: str, digest: str, functions: dict[str, Any]) -> Any:
    key = (source, tuple(id(f) for f in functions.values()))
    kernel = _KERNELS.get(key)
    if kernel is None:
        # Taichi reads a kernel's source with inspect, so the generated text is registered as
        # the (virtual) file it came from.
        filename = f"<tfgrad-fused-{digest}>"
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        namespace = {"ti": ti, **functions}
        namespace.update(
            bf16_to_f32=codec.bf16_to_f32,
            f32_to_bf16=codec.f32_to_bf16,
            f64_to_f32_odd=codec.f64_to_f32_odd,
        )
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        kernel = _KERNELS[key] = namespace[f"fused_{digest}"]
    return kernel
