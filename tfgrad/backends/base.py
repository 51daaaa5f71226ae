"""The narrow interface between tfgrad and where numbers live.

A backend stores arrays in its own buffers and runs ops on them. It never sees a Tensor, a tape
or a rule: the core asks ``backend.run(op, buf)`` and gets a buffer back, where ``op`` is an
:class:`OpInfo`, the plain description a primitive carries (its name, arity and family), or
just the op's name (``backend.run("exp", buf)``). Buffers are immutable by contract: an op
always returns a new buffer (or an alias of an input that nobody writes to). Backends are
registered by name and imported lazily.

A backend keeps its kernels in one table per family (:data:`FAMILIES`), so adding an op to a
backend is one entry in its family's table. The ops of tfgrad's primitives and their parameters
(the NumPy backend is the executable spec of each; ``tfgrad.ops.BACKEND_OPS`` lists them):

=================  ===========================================================================
elementwise        neg abs sign sqrt (float inputs; neg/abs/sign take ints too), add sub mul
                   div maximum minimum (inputs share one dtype and broadcast as in NumPy),
                   where(cond, x, y), broadcasting. float16/bfloat16 compute in float32.
transcendental     exp log log1p expm1 sin cos tan tanh (float inputs), pow (binary)
comparison         eq ne lt le gt ge (-> bool), binary
cast               cast(x, dtype=np.dtype)
reduction          sum/max/prod(x, axes=tuple, keepdims=bool); float16/bfloat16 accumulate in
                   float32. cumsum(x, axis=int, reverse=bool), cumprod(x, axis=int,
                   reverse=bool, exclusive=bool), linear_recurrence(a, b, axis=int,
                   reverse=bool): h[0] = 0, h[t] = a[t-1] h[t-1] + b[t-1] (floats of one
                   dtype; a has b's shape, or that of b's trailing axes, the axis among them)
movement           reshape(x, shape), transpose(x, axes), broadcast_to(x, shape),
                   slice(x, index=((start, stop, step), ...)) one triple per axis, normalised,
                   ``concatenate(*xs, axis)``
indexing           take(x, indices, axis) with int64 indices; scatter_add(operand, indices,
                   updates, axis): operand with updates added at indices along axis
linalg             matmul(a, b): a (..., m, k), b (..., k, n), equal batch dims, same dtype;
                   conv2d(x, w, stride, padding, dilation): x (N, C, H, W), w (O, C, KH, KW)
                   -> (N, O, OH, OW), each parameter a pair (rows, columns), zero padding;
                   its transposes conv2d_input_grad(g, w, input_size=(H, W), ...) -> x's
                   shape and conv2d_weight_grad(x, g, kernel_size=(KH, KW), ...) -> w's
                   (the math: tfgrad.ops.conv); floats of one dtype
creation           full(shape, value, dtype), arange(start, step, n, dtype),
                   eye(n, m, k, dtype), random_uniform(shape, seed, counter, dtype),
                   random_normal(shape, seed, counter, dtype)
=================  ===========================================================================

The front end validates every input before an op reaches a backend (shapes that broadcast,
axes in range, one dtype for the inputs of an arithmetic op); a backend checks only what its
kernels alone can see, such as an index out of range.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import BackendError, MissingKernelError

__all__ = [
    "Backend", "Fuser", "OpInfo", "KernelTables", "FusionGroup", "FusedOp", "register_backend",
    "get_backend_class", "FAMILIES", "POINTWISE", "ELEMENTWISE", "TRANSCENDENTAL", "COMPARISON",
    "CAST", "REDUCTION", "MOVEMENT", "INDEXING", "LINALG", "CREATION", "set_fixed_order",
    "fixed_order",
]  # fmt: skip

# ---- Families: what an op does with the elements of its inputs (a closed set) ----
ELEMENTWISE = "elementwise"  # out[i] from in[i], broadcasting: arithmetic, abs, sign, where
TRANSCENDENTAL = "transcendental"  # elementwise through libm, costly per element: exp, sin, pow
COMPARISON = "comparison"  # elementwise with a bool result: eq, lt, ...
CAST = "cast"  # elementwise dtype conversion
REDUCTION = "reduction"  # over axes: sum, max, prod; scans: cumsum, cumprod, linear_recurrence
MOVEMENT = "movement"  # elements moved, not computed: reshape, transpose, slice, ...
INDEXING = "indexing"  # moved by an index array: take, scatter_add
LINALG = "linalg"  # matmul, conv2d and its transposes
CREATION = "creation"  # no inputs: full, arange, eye, random draws
FAMILIES = (
    ELEMENTWISE,
    TRANSCENDENTAL,
    COMPARISON,
    CAST,
    REDUCTION,
    MOVEMENT,
    INDEXING,
    LINALG,
    CREATION,
)
# Families whose output element i depends on element i of each input alone (after
# broadcasting): what fuses into one loop and what batches by aligning axes on the right.
POINTWISE = frozenset((ELEMENTWISE, TRANSCENDENTAL, COMPARISON, CAST))


class OpInfo:
    """What a backend is told about an op: its name, how many inputs it takes (``None``: any
    number) and its family (one of :data:`FAMILIES`, or ``None`` for an op no backend runs).

    A primitive carries one (``tfgrad.Primitive.op``) and passes it to :meth:`Backend.run`; a
    backend keys its kernels and its dispatch decisions by it (the object itself, which hashes
    by identity, so a lookup costs one dict access). ``scalar`` is set for a pointwise op defined
    outside the backends (:mod:`tfgrad.extend`): the math of one element, a Python function of
    scalars using only arithmetic operators and ``abs``, so that it means the same on a NumPy
    array and inside a compiled kernel; every backend runs such an op from it.
    """

    __slots__ = ("name", "arity", "family", "scalar")

    def __init__(
        self, name: str, arity: int | None, family: str | None, scalar: Callable | None = None
    ):
        if family is not None and family not in FAMILIES:
            raise BackendError(
                f"op {name!r}: unknown family {family!r}; use one of {list(FAMILIES)}."
            )
        if scalar is not None and family not in POINTWISE:
            raise BackendError(
                f"op {name!r}: only a pointwise op ({sorted(POINTWISE)}) is defined by its "
                f"scalar math, not a {family!r} one."
            )
        self.name = name
        self.arity = arity
        self.family = family
        self.scalar = scalar

    def __repr__(self) -> str:
        return f"OpInfo({self.name!r}, arity={self.arity}, family={self.family!r})"


class KernelTables:
    """A backend's kernels, one table per family: ``{family: {op name: entry}}``.

    :meth:`find` answers an :class:`OpInfo` by the table of its family (so an op declared in
    one family is not run by another family's kernel of the same name), an op defined by its
    scalar math by ``scalar_entry(op)``, and a bare name (or an :class:`OpInfo` without a
    family) by whichever table holds it; it returns the entry with the op's :class:`OpInfo`
    (made from its table for a bare name).
    Answers are cached in :attr:`found` (keyed by :class:`OpInfo` or name): a hot path reads
    ``found.get(op)`` first, one dict lookup, and calls :meth:`find` only on a miss.
    """

    def __init__(
        self,
        backend: str,
        tables: dict[str, dict[str, Any]],
        scalar_entry: Callable[[OpInfo], Any] | None = None,
    ):
        self.backend = backend
        self.tables = tables
        self._scalar_entry = scalar_entry
        self.found: dict[Any, tuple[OpInfo, Any]] = {}
        for family, table in tables.items():
            for name, entry in table.items():
                self.found[name] = (OpInfo(name, None, family), entry)

    def find(self, op: OpInfo | str) -> tuple[OpInfo, Any]:
        found = self.found.get(op)
        if found is not None:
            return found
        if isinstance(op, OpInfo):
            if op.family is None:  # declared by name only: whichever table holds the name
                found = self.found.get(op.name)
            elif op.scalar is not None and self._scalar_entry is not None:
                found = (op, self._scalar_entry(op))
            else:
                entry = self.tables.get(op.family, {}).get(op.name)
                found = None if entry is None else (op, entry)
            if found is not None:
                self.found[op] = found
                return found
        name = op.name if isinstance(op, OpInfo) else op
        family = op.family if isinstance(op, OpInfo) else None
        known = sorted(n for table in self.tables.values() for n in table)
        fix = (
            f"add one to its {family!r} table"
            if family is not None
            else "give the primitive a Python forward (def_impl), or a family and a kernel"
        )
        raise MissingKernelError(
            f"The {self.backend} backend has no kernel for op {name!r}"
            + (f" of family {family!r}" if family is not None else "")
            + f"; its ops are {known}. To run it, {fix}."
        )


@dataclass(frozen=True)
class FusedOp:
    """One op of a :class:`FusionGroup`: ``args[k]`` names its k-th input, an index into the
    group's ``inputs`` below ``len(inputs)``, else ``len(inputs) + j`` for the result of op
    ``j`` of the group (an earlier one)."""

    op: OpInfo
    args: tuple[int, ...]
    params: dict
    dtype: np.dtype  # of the result; every op of a group has the group's shape


@dataclass(frozen=True)
class FusionGroup:
    """Pointwise ops over one output shape that a compiler wants run as one loop.

    ``inputs`` are ``(shape, dtype, value)`` per array the group reads: ``value`` is the NumPy
    value of a constant (a backend may write it into the kernel) and ``None`` for an array known
    only at run time. ``outputs`` are the ops whose results leave the group, in the order the
    fused kernel returns them.
    """

    shape: tuple[int, ...]
    inputs: tuple[tuple[tuple[int, ...], np.dtype, np.ndarray | None], ...]
    ops: tuple[FusedOp, ...]
    outputs: tuple[int, ...]


class Backend(Protocol):
    """What the core needs from a backend."""

    name: str  # "numpy", "taichi"
    device: str  # "cpu", "cuda", "vulkan", "metal": buffers move freely between equal devices

    def from_numpy(self, array: np.ndarray) -> Any:
        """A buffer holding a copy of ``array`` (already in the storage dtype)."""

    def to_numpy(self, buf: Any) -> np.ndarray:
        """The buffer's values as a NumPy array (may alias the buffer on CPU: do not write)."""

    def run(self, op: OpInfo | str, *bufs: Any, **params: Any) -> Any:
        """Run ``op`` on buffers; return the new buffer. An op the backend has no kernel for
        raises :class:`~tfgrad.errors.MissingKernelError`."""

    def kernel_for(
        self, op: OpInfo | str, *bufs: Any, indices_checked: bool = False, **params: Any
    ) -> tuple[Any, str]:
        """``(fn, implementation)``: what ``run`` would call for these buffers' shapes and
        dtypes, decided once, as ``fn(*bufs)`` (``tfgrad.jit`` compiles its steps to these;
        ``indices_checked``: take/scatter_add indices are known to be in range)."""

    def implementation(self, op: OpInfo | str) -> str:
        """Which implementation ran the latest ``run(op, ...)`` (shown on tape records), e.g.
        ``"taichi"``, or ``"numpy"``/``"blas"`` where a backend's dispatch policy chose them."""

    def fuser(self) -> Fuser | None:
        """Optional: what compiles a :class:`FusionGroup` into one kernel (``tfgrad.jit`` asks;
        a backend without this method, or returning ``None``, runs each op alone)."""


class Fuser(Protocol):
    """A backend's fusion hook: ``tfgrad.jit`` offers it groups of pointwise ops."""

    def accepts(
        self,
        op: OpInfo,
        in_dtypes: tuple[np.dtype, ...],
        out_dtype: np.dtype,
        shape: tuple[int, ...],
    ) -> bool:
        """Whether this op, with these dtypes and output shape, can be part of a fused loop."""

    def worth_fusing(self, group: FusionGroup) -> bool:
        """Whether one kernel for ``group`` pays, against running its ops one by one."""

    def compile(self, group: FusionGroup) -> Any:
        """A callable on the buffers of ``group.inputs[k]`` for ``k in callable.inputs`` (the
        inputs it reads: a constant may be written into the kernel instead) that returns the
        buffers of ``group.outputs``; ``callable.source`` shows the generated code."""


# ---- Fixed order: the determinism switch's bit, which every backend reads ----
# tfgrad.config.set_deterministic sets it (backends cannot import the core, so the bit lives
# here, as OpInfo does). While it is set, a backend computes every sum in an order that depends
# on the shapes alone, never on threads or a library's blocking: no BLAS matmul, whose
# OpenBLAS/MKL partitions the sum along k by thread count (measured: tfgrad/determinism.py).
_FIXED_ORDER = [False]


def set_fixed_order(enabled: bool) -> None:
    """Make every backend compute sums and products in a fixed order (``tfgrad.config`` calls
    this; users call ``tfgrad.config.set_deterministic`` or ``tfgrad.determinism``)."""
    _FIXED_ORDER[0] = bool(enabled)


def fixed_order() -> bool:
    """Whether backends must compute in a fixed order (see :func:`set_fixed_order`)."""
    return _FIXED_ORDER[0]


_REGISTRY: dict[str, str] = {
    "numpy": "tfgrad.backends.numpy_backend:NumpyBackend",
    "taichi": "tfgrad.backends.taichi.backend:TaichiBackend",
}


def register_backend(name: str, path: str) -> None:
    """Register a backend class by ``"module:Class"`` path, imported on first use."""
    _REGISTRY[name] = path


def get_backend_class(name: str) -> type:
    if name not in _REGISTRY:
        raise BackendError(
            f"Unknown backend {name!r}; registered backends are {sorted(_REGISTRY)}. "
            "Call tfgrad.init(backend='taichi') or tfgrad.init(backend='numpy')."
        )
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
