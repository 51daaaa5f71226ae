"""Tracing a function into a graph of primitives (what ``tfgrad.jit`` compiles).

:class:`JitTrace` is one more trace of :mod:`tfgrad.primitive`'s kind, activated *before*
anything inside the function, so it has the lowest level: every op of the function, and every
op that a ``grad``, ``hessian`` or tape inside it runs (their VJP and JVP rules are tfgrad ops
too), reaches it through ``bind``. It runs each op on the trace-time values (so shapes, dtypes
and the values of constants are known without abstract rules) and records an :class:`Eqn`.

Values that do not depend on the inputs (``tg.ones(3)``, a tape's seed, a basis vector) never
reach the trace: ``bind`` computes them directly, so they enter the graph as constants, already
folded. Reading a traced value in Python (``if``, ``float()``, ``.numpy()``) raises
:class:`~tfgrad.errors.TracingError`: a compiled function cannot take a branch that depends on
its inputs' values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..dtypes import DType
from ..errors import TracingError
from ..primitive import Primitive, Trace, Tracer, bind
from ..tensor import Tensor

__all__ = ["Var", "Eqn", "Graph", "JitTrace", "JitTracer"]


@dataclass(frozen=True, eq=False)
class Var:
    """One value of the graph: its index in the program's environment, shape and dtype."""

    index: int
    shape: tuple[int, ...]
    dtype: DType

    def __repr__(self) -> str:
        return f"v{self.index}"


@dataclass(eq=False)
class Eqn:
    """``out = prim(*inputs, **params)``; an input is a :class:`Var` or a constant Tensor."""

    prim: Primitive
    inputs: list
    params: dict
    out: Var


@dataclass(eq=False)
class Graph:
    """A traced function: inputs, equations in program order, outputs (Vars or constants)."""

    inputs: list[Var]
    eqns: list[Eqn] = field(default_factory=list)
    outputs: list = field(default_factory=list)
    # Trace-time values by Var index: the compiler's samples for dispatch decisions (dropped
    # once compiled, so a program does not hold its first call's intermediates).
    values: dict[int, Tensor] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        def name(x: Any) -> str:
            return repr(x) if isinstance(x, Var) else f"const{x.shape}"

        lines = [f"inputs: {', '.join(f'{v}: {v.dtype.name}{list(v.shape)}' for v in self.inputs)}"]
        for e in self.eqns:
            params = "".join(f", {k}={v!r}" for k, v in e.params.items())
            args = ", ".join(name(x) for x in e.inputs)
            lines.append(
                f"{e.out}: {e.out.dtype.name}{list(e.out.shape)} = {e.prim.name}({args}{params})"
            )
        lines.append(f"outputs: {', '.join(name(x) for x in self.outputs)}")
        return "\n".join(lines)


class TracedBuffer:
    """The buffer of a traced value: it has a shape and a dtype but no values to read."""

    __slots__ = ("shape", "dtype", "_what")

    def __init__(self, shape: tuple[int, ...], dtype: Any, what: str):
        self.shape, self.dtype, self._what = shape, dtype, what

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _refuse(self, *args: Any, **kwargs: Any):
        raise TracingError(
            f"jit: the function reads the value of a traced tensor ({self._what}) in Python "
            "(an `if` or `while` on it, bool(), float(), .item(), .numpy(), printing). A compiled "
            "function cannot branch on its inputs' values: use tg.where for an elementwise "
            "choice, pass the deciding value as a static argument (tg.jit(f, static_argnums=...)),"
            " or call the function without jit."
        )

    __array__ = reshape = item = tolist = _refuse

    @property
    def array(self):  # what the Taichi backend reads from a device buffer
        self._refuse()


class JitTracer(Tracer):
    """A value of a :class:`JitTrace`: the trace-time value plus its :class:`Var`."""

    __slots__ = ("var",)

    def __init__(self, trace: JitTrace, value: Tensor, var: Var):
        super().__init__(trace, value)
        self.var = var
        what = f"shape {value.shape}, {value.dtype.name}, {var}"
        self._data = TracedBuffer(value.shape, value._data.dtype, what)

    def __repr__(self) -> str:
        return f"JitTracer(shape={self._shape}, dtype={self._dtype.name}, {self.var})"


class JitTrace(Trace):
    """Records every op that reaches it as an :class:`Eqn` of :attr:`graph`."""

    carries_derivatives = False  # stop_gradient must not lower through it

    def __init__(self):
        super().__init__()
        self.graph = Graph(inputs=[])
        self._count = 0

    def new_var(self, shape: tuple[int, ...], dtype: DType) -> Var:
        var = Var(self._count, shape, dtype)
        self._count += 1
        return var

    def input(self, value: Tensor) -> JitTracer:
        var = self.new_var(value.shape, value.dtype)
        self.graph.inputs.append(var)
        self.graph.values[var.index] = value
        return JitTracer(self, value, var)

    def process(self, prim: Primitive, args: list, params: dict) -> Tensor:
        inputs, values = [], []
        for a in args:
            if isinstance(a, JitTracer) and a._trace is self:
                inputs.append(a.var)
                values.append(a.primal)
            else:  # a constant: jit runs only on concrete arguments, so nothing lower is active
                inputs.append(a)
                values.append(a)
        value = bind(prim, *values, **params)
        out = self.new_var(value.shape, value.dtype)
        self.graph.eqns.append(Eqn(prim, inputs, dict(params), out))
        self.graph.values[out.index] = value
        return JitTracer(self, value, out)
