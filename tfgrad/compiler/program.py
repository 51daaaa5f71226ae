"""From a traced :class:`~tfgrad.compiler.trace.Graph` to a runnable program.

Compiling does, once per input shapes and dtypes:

1. drop equations whose values no output needs (a tape computes adjoints nobody asked for);
2. give each equation a *stage*: elementwise ops take the latest stage of their inputs, any other
   op (a matmul, a reduction, a slice) ends its stage, so its output belongs to the next one.
   Elementwise equations of one stage and one shape never wait for each other's non-elementwise
   work, so each such group can become one fused loop (:mod:`tfgrad.compiler.fusion`) where
   that pays;
3. order the steps (fused groups and single ops) and resolve each single op once to the
   backend function its dispatch policy picks for these shapes (``Backend.kernel_for``);
4. write the whole program as one straight-line Python function over buffers: no tape, no
   ``bind``, no checks at run time (they all ran while tracing).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops._common import cast_p
from ..tensor import Tensor
from .trace import Eqn, Graph, Var

__all__ = ["Program", "compile_graph", "ELEMENTWISE"]

# Backend ops that map element i of their inputs to element i of their output (broadcasting).
ELEMENTWISE = frozenset(
    ("neg", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt", "abs", "sign")
    + ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "where", "cast")
    + ("eq", "ne", "lt", "le", "gt", "ge")
)


def backend_call(eqn: Eqn) -> tuple[str, dict] | None:
    """The backend op and parameters an equation runs, or None for a Python ``impl``."""
    prim = eqn.prim
    if prim is cast_p:
        return "cast", {"dtype": eqn.params["dtype"].numpy}
    if prim.impl == prim._run_backend:
        return prim.backend_op, eqn.params
    return None


@dataclass(eq=False)
class Step:
    """One step of a program: a fused group of equations or a single equation."""

    eqns: list[Eqn]
    fused: Any = None  # a fusion.FusedKernel, or None for one op run as eager would
    implementation: str = ""
    inputs: list = field(default_factory=list)  # Vars and constants the step reads
    outputs: list[Var] = field(default_factory=list)  # Vars later steps or the caller need


class Program:
    """A compiled function: ``run(*input_buffers)`` returns the output buffers."""

    def __init__(self, graph: Graph, steps: list[Step], source: str, run: Any):
        self.graph = graph
        self.steps = steps
        self.source = source  # the straight-line Python of run()
        self.run = run

    @property
    def kernels(self) -> list:
        return [s.fused for s in self.steps if s.fused is not None]

    def summary(self) -> str:
        """One line per step: what runs it and which primitives it covers."""
        lines = []
        for i, s in enumerate(self.steps):
            names = [e.prim.name for e in s.eqns]
            shown = ", ".join(names[:6]) + (f", ... ({len(names)} ops)" if len(names) > 6 else "")
            lines.append(f"{i:3d}  {s.implementation:<13} {shown}")
        return "\n".join(lines)


def _live_eqns(graph: Graph) -> list[Eqn]:
    needed = {v.index for v in graph.outputs if isinstance(v, Var)}
    live = []
    for eqn in reversed(graph.eqns):
        if eqn.out.index in needed:
            live.append(eqn)
            needed.update(v.index for v in eqn.inputs if isinstance(v, Var))
    live.reverse()
    return live


def _simplify(graph: Graph) -> None:
    """Drop what the derivative rules write that does nothing: ``where`` on a one-element
    constant condition, a product with a constant 1. Each is exact (x * 1 is x, NaN and -0
    included); an equation goes only when the value it forwards has its shape and dtype."""
    alias: dict[int, Any] = {}
    kept = []
    for eqn in graph.eqns:
        eqn.inputs = [alias.get(v.index, v) if isinstance(v, Var) else v for v in eqn.inputs]
        forward = _forwarded(eqn)
        if (
            forward is not None
            and tuple(forward.shape) == eqn.out.shape
            and (forward.dtype is eqn.out.dtype)
        ):
            alias[eqn.out.index] = forward
            continue
        kept.append(eqn)
    graph.eqns = kept
    graph.outputs = [alias.get(v.index, v) if isinstance(v, Var) else v for v in graph.outputs]


def _forwarded(eqn: Eqn) -> Any:
    name, inputs = eqn.prim.name, eqn.inputs
    if name == "where" and not isinstance(inputs[0], Var) and inputs[0].size == 1:
        return inputs[1] if bool(inputs[0].numpy().reshape(())) else inputs[2]
    if name == "mul":
        for a, b in ((inputs[0], inputs[1]), (inputs[1], inputs[0])):
            # a constant of ones (a seed broadcast to a shape, too) times a value of the
            # output's shape is that value
            if not isinstance(b, Var) and b.dtype.is_floating and b.size >= 1:
                if tuple(a.shape) == eqn.out.shape and (b.numpy() == 1.0).all():
                    return a
    return None


def _fusable(eqn: Eqn, fuser: Any) -> bool:
    if fuser is None:
        return False
    call = backend_call(eqn)
    return call is not None and call[0] in ELEMENTWISE and fuser.accepts(eqn, call[0])


def _plan(graph: Graph, eqns: list[Eqn], fuser: Any) -> list[Step]:
    """Group fusable equations by (stage, shape) and order all steps topologically."""
    stage: dict[int, int] = {}
    groups: dict[tuple, list[Eqn]] = {}
    units: list[tuple[list[Eqn], bool]] = []
    for eqn in eqns:
        s = max((stage.get(v.index, 0) for v in eqn.inputs if isinstance(v, Var)), default=0)
        if _fusable(eqn, fuser):
            stage[eqn.out.index] = s
            key = (s, eqn.out.shape)
            if key not in groups:
                groups[key] = []
                units.append((groups[key], True))
            groups[key].append(eqn)
        else:
            stage[eqn.out.index] = s + 1
            units.append(([eqn], False))
    # A group that does not pay for a kernel launch runs op by op, as eager would.
    split: list[tuple[list[Eqn], bool]] = []
    for unit, fusable in units:
        if fusable and fuser.worth_fusing(unit, graph):
            split.append((unit, True))
        else:
            split.extend(([e], False) for e in unit)
    return _order(graph, split)


def _order(graph: Graph, units: list[tuple[list[Eqn], bool]]) -> list[Step]:
    producer = {}
    for u, (unit, _) in enumerate(units):
        for eqn in unit:
            producer[eqn.out.index] = u
    used_outside = {v.index for v in graph.outputs if isinstance(v, Var)}
    deps: list[set[int]] = []
    for unit, _ in units:
        own = {e.out.index for e in unit}
        d = set()
        for eqn in unit:
            for v in eqn.inputs:
                if isinstance(v, Var) and v.index not in own:
                    used_outside.add(v.index)
                    if v.index in producer:
                        d.add(producer[v.index])
        deps.append(d)
    users: list[list[int]] = [[] for _ in units]
    waiting = [len(d) for d in deps]
    for u, d in enumerate(deps):
        for p in d:
            users[p].append(u)
    # Kahn's algorithm, earliest first equation first: program order where dependencies allow.
    ready = [u for u, n in enumerate(waiting) if n == 0]
    heapq.heapify(ready)
    steps = []
    while ready:
        u = heapq.heappop(ready)
        unit, fused = units[u]
        own = {e.out.index for e in unit}
        inputs, seen = [], set()
        for eqn in unit:
            for v in eqn.inputs:
                key = v.index if isinstance(v, Var) else id(v)
                if (isinstance(v, Var) and v.index in own) or key in seen:
                    continue
                seen.add(key)
                inputs.append(v)
        outputs = [e.out for e in unit if e.out.index in used_outside]
        steps.append(Step(unit, fused=fused, inputs=inputs, outputs=outputs))
        for w in users[u]:
            waiting[w] -= 1
            if waiting[w] == 0:
                heapq.heappush(ready, w)
    assert len(steps) == len(units), "jit: the step graph has a cycle (a bug in the planner)"
    return steps


def _as_array(fn: Any) -> Any:
    def call(*bufs: Any) -> Any:
        out = fn(*bufs)
        return out if type(out) is np.ndarray else np.asarray(out)

    return call


def _python_impl(eqn: Eqn, backend: Any) -> Any:
    """A step for a primitive whose forward is Python (``tfgrad.extend``): wrap, call, unwrap."""
    prim, params = eqn.prim, eqn.params
    dtypes = [v.dtype for v in eqn.inputs]

    def call(*bufs: Any) -> Any:
        args = [Tensor(b, tuple(b.shape), d, backend) for b, d in zip(bufs, dtypes)]
        return prim.impl(*args, **params)._data

    return call


def compile_graph(graph: Graph, backend: Any, fuser: Any = None) -> Program:
    """A :class:`Program` running ``graph`` on ``backend``; ``fuser`` fuses elementwise groups."""
    _simplify(graph)
    steps = _plan(graph, _live_eqns(graph), fuser)
    namespace: dict[str, Any] = {"_errstate": np.errstate}
    names = {v.index: f"i{i}" for i, v in enumerate(graph.inputs)}
    consts: dict[int, str] = {}
    kept = []  # the constants, alive while compiling so that id() stays unique

    def ref(x: Any) -> str:
        if isinstance(x, Var):
            return names[x.index]
        name = consts.get(id(x))
        if name is None:
            name = consts[id(x)] = f"c{len(consts)}"
            kept.append(x)
            # a constant made on another backend is moved over once
            namespace[name] = x._data if x._backend is backend else backend.from_numpy(x.numpy())
        return name

    def sample(x: Any) -> Any:  # a buffer of x's shape and dtype, for dispatch decisions
        return graph.values[x.index]._data if isinstance(x, Var) else x._data

    body = []
    for n, step in enumerate(steps):
        if step.fused:
            step.fused = fuser.build(step, graph)
            step.implementation = "fused-taichi"
            namespace[f"k{n}"] = step.fused
            args = ", ".join(ref(v) for v in step.fused.inputs)
            outs = [f"b{v.index}" for v in step.outputs]
            names.update((v.index, f"b{v.index}") for v in step.outputs)
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
            names_ops = ", ".join(sorted({e.prim.name for e in step.eqns}))
            body.append(f"    {target} = k{n}({args})  # {len(step.eqns)} ops: {names_ops}")
            continue
        step.fused = None
        eqn = step.eqns[0]
        call = backend_call(eqn)
        if call is None:
            fn, impl = _python_impl(eqn, backend), "python"
        else:
            op, params = call
            samples = [sample(v) for v in eqn.inputs]  # indices ran (and were checked) in tracing
            fn, impl = backend.kernel_for(op, *samples, indices_checked=True, **params)
            if impl != "taichi" and not eqn.out.shape:
                fn = _as_array(fn)
        step.implementation = impl
        namespace[f"s{n}"] = fn
        names[eqn.out.index] = f"b{eqn.out.index}"
        args = ", ".join(ref(v) for v in eqn.inputs)
        body.append(f"    b{eqn.out.index} = s{n}({args})  # {eqn.prim.name}")
    outs = ", ".join(ref(v) for v in graph.outputs)
    params = ", ".join(f"i{i}" for i in range(len(graph.inputs)))
    source = "\n".join(
        [f"def run({params}):", "    with _errstate(all='ignore'):"]
        + ["    " + line for line in body]
        + [f"        return ({outs}{',' if len(graph.outputs) == 1 else ''})"]
    )
    exec(compile(source, "<tfgrad.jit program>", "exec"), namespace)
    graph.values.clear()
    return Program(graph, steps, source, namespace["run"])
