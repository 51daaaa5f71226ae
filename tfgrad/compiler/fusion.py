"""Fusing a group of elementwise equations into one generated Taichi kernel.

A group (one stage, one output shape: see :mod:`tfgrad.compiler.program`) becomes one loop over the
flat output: each input is loaded once per element (broadcast inputs through an index computed
from ``i``), every op is one line calling the same ``ti.func`` the single-op kernel uses (so a
fused result equals the unfused Taichi one), and only values needed outside the group are
stored. Scalar constants (and arrays of one repeated value) become typed literals in the source.
Halves compute in float32 and round to their dtype after every op, as the eager kernels do.

Kernels are cached by their source, which holds everything that varies (shapes, dtypes,
constants); Taichi's offline cache keeps the compiled code for the next process.
"""

from __future__ import annotations

import hashlib
import linecache
import math
from typing import Any

import ml_dtypes
import numpy as np
import taichi as ti

from ..backends.taichi import codec, elementwise
from ..backends.taichi.backend import _RUNTIME
from .program import backend_call
from .trace import Eqn, Graph, Var

__all__ = ["TaichiFuser", "FusedKernel"]

F16, BF16, F32, F64, BOOL = (
    np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32),
    np.dtype(np.float64), np.dtype(np.bool_),
)  # fmt: skip
FLOATS = (F16, BF16, F32, F64)
STORAGE = {F16: "ti.f16", BF16: "ti.u16", F32: "ti.f32", F64: "ti.f64", BOOL: "ti.u8"}
STORAGE_NUMPY = {F16: F16, BF16: np.dtype(np.uint16), F32: F32, F64: F64, BOOL: np.dtype(np.uint8)}
# Rounding a float32-computed value to a half, as the eager kernels store it.
ROUND = {F16: "ti.cast(ti.cast({}, ti.f16), ti.f32)", BF16: "bf16_to_f32(f32_to_bf16({}))"}

UNARY = {
    op: f"{op}_op"
    for op in ("neg", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt", "abs")
} | {"sign": "sign_op"}
BINARY = {op: f"{op}_op" for op in ("add", "sub", "mul", "div", "maximum", "minimum")} | {
    "pow": "float_pow"
}
COMPARE = {op: f"{op}_op" for op in ("eq", "ne", "lt", "le", "gt", "ge")}
TRANSCENDENTAL = frozenset(("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "pow"))

# The cost model deciding whether a group pays for a kernel launch, in microseconds (CPU, the
# project's 2-core machine: a thin launch costs ~4.5 us plus ~2.4 per array, a NumPy call ~1).
# Per element, NumPy's vectorised loops beat Taichi's (fast_math off: LLVM does not vectorise
# them): an 11-op group of 9 arrays over 16k float64 elements took 7.4 ns an element.
LAUNCH_US, PER_ARRAY_US, NUMPY_CALL_US = 4.5, 2.4, 1.0
NUMPY_NS = {"cheap": 0.5, "transcendental": 5.0}  # per element and op
TAICHI_NS = {"cheap": 0.5, "transcendental": 4.0}
TAICHI_ARRAY_NS = 0.2  # per element and array read or written
MAX_ARRAYS = 60  # Taichi 1.7's Python launch takes at most 64 arguments (the thin one more)

_KERNELS: dict[str, Any] = {}  # source -> compiled kernel (process-wide)


def _namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {"ti": ti}
    for name in list(UNARY.values()) + list(BINARY.values()) + list(COMPARE.values()):
        ns[name] = getattr(elementwise, name)
    ns.update(bf16_to_f32=codec.bf16_to_f32, f32_to_bf16=codec.f32_to_bf16,
              f64_to_f32_odd=codec.f64_to_f32_odd)  # fmt: skip
    return ns


def _literal(value: float, dtype: np.dtype) -> str:
    return f"ti.{'f64' if dtype == F64 else 'f32'}({float(value)!r})"


def _splat(x: Any) -> float | None:
    """The one value every element of a float constant holds, if it is finite; else None."""
    if x.dtype.numpy not in FLOATS or x.size == 0:
        return None
    a = np.asarray(x.numpy(), dtype=np.float64).reshape(-1)
    v = a[0]
    if not np.isfinite(v) or not (a == v).all():
        return None
    return float(v)


class FusedKernel:
    """One generated kernel: call it with the group's input buffers; it returns new output
    buffers. ``source`` is the Taichi code; ``inputs`` the Vars and constants it reads."""

    def __init__(self, source: str, kernel: Any, inputs: list, outputs: list[Var], backend: Any,
                 n_ops: int):  # fmt: skip
        self.source, self.kernel, self.inputs, self.outputs = source, kernel, inputs, outputs
        self.n_ops = n_ops
        self.backend = backend
        self._out_specs = [(v.shape, v.dtype.numpy) for v in outputs]
        self._sizes = [math.prod(v.shape) for v in inputs] + [math.prod(v.shape) for v in outputs]
        self._thin = None if backend._device_buffers else ThinLauncher(kernel, self._sizes, [
            v.dtype.numpy for v in inputs] + [v.dtype.numpy for v in outputs])  # fmt: skip

    def __call__(self, *bufs: Any) -> tuple:
        if self._thin is not None:
            outs = [np.empty(shape, dtype) for shape, dtype in self._out_specs]
            self._thin(bufs, outs)
            return tuple(outs)
        arg, empty = self.backend._arg, self.backend._empty
        outs = [empty(shape, dtype) for shape, dtype in self._out_specs]
        self.kernel(*[arg(b) for b in bufs], *[arg(o) for o in outs])
        return tuple(outs)

    def __repr__(self) -> str:
        return f"FusedKernel({self.n_ops} ops, {len(self.inputs)} in, {len(self.outputs)} out)"


class ThinLauncher:
    """Launches a compiled kernel on NumPy buffers without Taichi's per-call Python (argument
    type dispatch, template lookup, compile-cache check): ~2 us an argument instead of ~15.

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
        self.generation = _RUNTIME["generation"]

    def __call__(self, inputs: tuple, outputs: list) -> None:
        if self.generation != _RUNTIME["generation"]:
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
    """What the program compiler asks about fusion, for one Taichi backend."""

    def __init__(self, backend: Any):
        self.backend = backend
        # With device buffers (a GPU) every op is a Taichi launch anyway, so fusing always pays;
        # so it does under taichi-only, where each op would be its own kernel.
        self.always = backend._device_buffers or not backend.policy.table
        self._users: dict[int, dict[int, int]] = {}

    def accepts(self, eqn: Eqn, op: str) -> bool:
        if math.prod(eqn.out.shape) == 0:
            return False
        dtypes = [v.dtype.numpy for v in eqn.inputs] + [eqn.out.dtype.numpy]
        if op in COMPARE:
            return all(d in FLOATS for d in dtypes[:-1])
        if op == "where":
            return dtypes[0] == BOOL and all(d in FLOATS for d in dtypes[1:])
        return all(d in FLOATS for d in dtypes)

    def _arrays(self, eqns: list[Eqn], graph: Graph) -> int:
        """How many arrays a kernel for ``eqns`` would take: the Vars it reads from outside, its
        constants other than one-valued ones (those become literals) and what it stores."""
        users = self._uses(graph)
        own = {e.out.index for e in eqns}
        inside: dict[int, int] = {}
        external = set()
        for e in eqns:
            for v in e.inputs:
                if not isinstance(v, Var):
                    if _splat(v) is None:  # one-valued constants become literals
                        external.add(("c", id(v)))
                elif v.index in own:
                    inside[v.index] = inside.get(v.index, 0) + 1
                else:
                    external.add(v.index)
        stored = sum(1 for e in eqns if users.get(e.out.index, 0) > inside.get(e.out.index, 0))
        return len(external) + stored

    def _uses(self, graph: Graph) -> dict[int, int]:
        users = self._users.get(id(graph))
        if users is None:
            users = {}
            for e in graph.eqns:
                for v in e.inputs:
                    if isinstance(v, Var):
                        users[v.index] = users.get(v.index, 0) + 1
            for v in graph.outputs:
                if isinstance(v, Var):
                    users[v.index] = users.get(v.index, 0) + 1
            self._users = {id(graph): users}
        return users

    def worth_fusing(self, eqns: list[Eqn], graph: Graph) -> bool:
        arrays = self._arrays(eqns, graph)
        if arrays > MAX_ARRAYS and self.backend._device_buffers:
            return False  # Taichi's own launch path (device buffers) refuses more arguments
        if self.always:
            return True
        if len(eqns) < 2:
            return False
        n = math.prod(eqns[0].out.shape)
        kinds = [_kind(e) for e in eqns]
        numpy_us = sum(NUMPY_CALL_US + n * NUMPY_NS[k] * 1e-3 for k in kinds)
        threads = 1 if n < self.backend.serial_below_transcendental else 2
        per_element_ns = sum(TAICHI_NS[k] for k in kinds) + TAICHI_ARRAY_NS * arrays
        taichi_us = LAUNCH_US + PER_ARRAY_US * arrays + n * per_element_ns * 1e-3 / threads
        return taichi_us < numpy_us

    def build(self, step: Any, graph: Graph) -> FusedKernel:
        eqns = step.eqns
        shape = eqns[0].out.shape
        n = math.prod(shape)
        own = {e.out.index for e in eqns}
        params, loads, inputs = [], [], []
        local: dict[Any, str] = {}  # Var index or id(constant) -> expression

        def operand(v: Any) -> str:
            key = v.index if isinstance(v, Var) else ("c", id(v))
            if key in local:
                return local[key]
            if not isinstance(v, Var):
                value = _splat(v)
                if value is not None:
                    local[key] = _literal(value, v.dtype.numpy)
                    return local[key]
            a = f"a{len(inputs)}"
            inputs.append(v)
            dtype = v.dtype.numpy
            params.append(f"{a}: ti.types.ndarray(dtype={STORAGE[dtype]}, ndim=1)")
            index = _broadcast_index(tuple(v.shape), shape)
            if dtype == BOOL:
                expr = f"ti.cast({a}[{index}] != 0, ti.i32)"
            elif dtype == BF16:
                expr = f"bf16_to_f32({a}[{index}])"
            elif dtype == F16:
                expr = f"ti.cast({a}[{index}], ti.f32)"
            else:
                expr = f"{a}[{index}]"
            name = f"x{len(inputs) - 1}"
            loads.append(f"        {name} = {expr}")
            local[key] = name
            return name

        lines = []
        transcendental = False
        for e in eqns:
            op, call_params = backend_call(e)
            transcendental |= op in TRANSCENDENTAL
            args = [operand(v) for v in e.inputs]
            expr = _expression(op, args, e, call_params)
            out_dtype = e.out.dtype.numpy
            if out_dtype in ROUND:
                expr = ROUND[out_dtype].format(expr)
            name = f"v{e.out.index}"
            lines.append(f"        {name} = {expr}")
            local[e.out.index] = name
        outputs = list(step.outputs)
        stores = []
        for k, v in enumerate(outputs):
            o = f"o{k}"
            dtype = v.dtype.numpy
            params.append(f"{o}: ti.types.ndarray(dtype={STORAGE[dtype]}, ndim=1)")
            value = local[v.index]
            if dtype == BOOL:
                stores.append(f"        {o}[i] = ti.cast({value} != 0, ti.u8)")
            elif dtype == BF16:
                stores.append(f"        {o}[i] = f32_to_bf16({value})")
            elif dtype == F16:
                stores.append(f"        {o}[i] = ti.cast({value}, ti.f16)")
            else:
                stores.append(f"        {o}[i] = {value}")
        assert all(v.index in own for v in outputs)
        serial = n < (
            self.backend.serial_below_transcendental
            if transcendental
            else self.backend.serial_below
        )
        body = (["    ti.loop_config(serialize=True)"] if serial else []) + [
            f"    for i in range({n}):"
        ]
        text = "\n".join(body + loads + lines + stores)
        digest = hashlib.sha1(("\n".join(params) + text).encode()).hexdigest()[:16]
        source = (
            f"@ti.kernel\ndef fused_{digest}(\n" + "".join(f"    {p},\n" for p in params) + "):\n"
            f"    # {len(eqns)} ops over {n} elements, shape {shape}\n" + text + "\n"
        )
        return FusedKernel(source, _compile(source, digest), inputs, outputs, self.backend,
                           len(eqns))  # fmt: skip


def _kind(eqn: Eqn) -> str:
    return "transcendental" if backend_call(eqn)[0] in TRANSCENDENTAL else "cheap"


def _broadcast_index(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> str:
    """The flat index into an input of ``in_shape`` for flat output element ``i``."""
    if in_shape == out_shape:
        return "i"
    if math.prod(in_shape) == 1:
        return "0"
    padded = (1,) * (len(out_shape) - len(in_shape)) + in_shape
    terms = []
    out_stride, in_stride = 1, 1
    for d in reversed(range(len(out_shape))):
        if padded[d] != 1:
            term = (
                f"(i // {out_stride}) % {out_shape[d]}" if out_stride > 1 else f"i % {out_shape[d]}"
            )
            terms.append(f"({term}) * {in_stride}" if in_stride > 1 else f"({term})")
        out_stride *= out_shape[d]
        in_stride *= padded[d]
    return " + ".join(reversed(terms))


def _expression(op: str, args: list[str], eqn: Eqn, params: dict) -> str:
    if op in UNARY:
        return f"{UNARY[op]}({args[0]})"
    if op in BINARY:
        return f"{BINARY[op]}({args[0]}, {args[1]})"
    if op in COMPARE:
        return f"ti.cast({COMPARE[op]}({args[0]}, {args[1]}), ti.i32)"
    if op == "where":
        return f"ti.select({args[0]} != 0, {args[1]}, {args[2]})"
    if op == "cast":
        source, target = eqn.inputs[0].dtype.numpy, np.dtype(params["dtype"])
        if target == F64:
            return f"ti.cast({args[0]}, ti.f64)"
        if source == F64 and target == F16:  # round once, as NumPy's astype
            return f"ti.cast(f64_to_f32_odd({args[0]}), ti.f32)"
        return f"ti.cast({args[0]}, ti.f32)"  # halves round afterwards (ROUND)
    raise AssertionError(f"jit fusion: no expression for op {op!r}")


def _compile(source: str, digest: str) -> Any:
    kernel = _KERNELS.get(source)
    if kernel is None:
        # Taichi reads a kernel's source with inspect, so the generated text is registered as
        # the (virtual) file it came from.
        filename = f"<tfgrad-fused-{digest}>"
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
        namespace = _namespace()
        exec(compile(source, filename, "exec", dont_inherit=True), namespace)
        kernel = _KERNELS[source] = namespace[f"fused_{digest}"]
    return kernel
