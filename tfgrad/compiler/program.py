"""From a traced :class:`~tfgrad.compiler.trace.Graph` to a runnable program.

Compiling does, once per input shapes and dtypes:

1. drop equations whose values no output needs (a tape computes adjoints nobody asked for);
2. give each equation a *stage*: elementwise ops take the latest stage of their inputs, any other
   op (a matmul, a reduction, a slice) ends its stage, so its output belongs to the next one.
   Elementwise equations of one stage and one shape never wait for each other's non-elementwise
   work, so each such group can become one fused loop where that pays: the backend's fusion
   hook (``Backend.fuser()``, a :class:`tfgrad.backends.base.Fuser`) is offered it as a plain
   :class:`~tfgrad.backends.base.FusionGroup` and writes the kernel;
3. order the steps (fused groups and single ops) and resolve each single op once to the
   backend function its dispatch policy picks for these shapes (``Backend.kernel_for``);
4. write the whole program as one straight-line Python function over buffers: no tape, no
   ``bind``, no checks at run time (they all ran while tracing).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import POINTWISE, FusedOp, FusionGroup
from ..tensor import Tensor
from .trace import Eqn, Graph, Var

__all__ = ["Program", "compile_graph"]


@dataclass(eq=False)
class Step:
    """One step of a program: a fused group of equations or a single equation."""

    eqns: list[Eqn]
    group: FusionGroup | None = None  # what the backend's fuser compiles, for a fused step
    fused: Any = None  # the fused kernel, or None for one op run as eager would
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
    """Drop what the derivative rules write that does nothing, as each primitive's simplify
    rule says (``where`` on a one-element constant condition, a product with a constant 1).
    Each is exact; an equation goes only when the value it forwards has its shape and dtype."""
    alias: dict[int, Any] = {}
    kept = []
    for eqn in graph.eqns:
        eqn.inputs = [alias.get(v.index, v) if isinstance(v, Var) else v for v in eqn.inputs]
        rule = eqn.prim.simplify
        k = None if rule is None else rule(eqn.out, *eqn.inputs, **eqn.params)
        forward = None if k is None else eqn.inputs[k]
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


def _fusable(eqn: Eqn, fuser: Any) -> bool:
    prim = eqn.prim
    if fuser is None or not prim.on_backend or prim.family not in POINTWISE:
        return False
    in_dtypes = tuple(v.dtype.numpy for v in eqn.inputs)
    return fuser.accepts(prim.op, in_dtypes, eqn.out.dtype.numpy, eqn.out.shape)


def _uses(graph: Graph, eqns: list[Eqn]) -> Counter:
    """How often each Var is read by ``eqns`` or returned."""
    uses = Counter(v.index for e in eqns for v in e.inputs if isinstance(v, Var))
    uses.update(v.index for v in graph.outputs if isinstance(v, Var))
    return uses


def _group(eqns: list[Eqn], uses: Counter) -> tuple[FusionGroup, list, list[Var]]:
    """The plain description of a group for the backend's fuser, with the Vars and constants
    its inputs are and the Vars its outputs are."""
    own = {e.out.index: j for j, e in enumerate(eqns)}
    inputs, position = [], {}
    for e in eqns:
        for v in e.inputs:
            key = v.index if isinstance(v, Var) else id(v)
            if (isinstance(v, Var) and v.index in own) or key in position:
                continue
            position[key] = len(inputs)
            inputs.append(v)
    ops, inside = [], Counter()
    for e in eqns:
        args = []
        for v in e.inputs:
            if isinstance(v, Var) and v.index in own:
                args.append(len(inputs) + own[v.index])
                inside[v.index] += 1
            else:
                args.append(position[v.index if isinstance(v, Var) else id(v)])
        ops.append(FusedOp(e.prim.op, tuple(args), dict(e.params), e.out.dtype.numpy))
    outputs = tuple(j for j, e in enumerate(eqns) if uses[e.out.index] > inside[e.out.index])
    described = tuple(
        (tuple(v.shape), v.dtype.numpy, None if isinstance(v, Var) else v.numpy()) for v in inputs
    )
    group = FusionGroup(eqns[0].out.shape, described, tuple(ops), outputs)
    return group, inputs, [eqns[j].out for j in outputs]


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
    uses = _uses(graph, eqns)
    split: list[tuple[list[Eqn], Any]] = []
    for unit, fusable in units:
        described = _group(unit, uses) if fusable else None
        if described is not None and fuser.worth_fusing(described[0]):
            split.append((unit, described))
        else:
            split.extend(([e], None) for e in unit)
    return _order(split)


def _order(units: list[tuple[list[Eqn], Any]]) -> list[Step]:
    producer = {}
    for u, (unit, _) in enumerate(units):
        for eqn in unit:
            producer[eqn.out.index] = u
    deps: list[set[int]] = []
    for unit, _ in units:
        own = {e.out.index for e in unit}
        d = set()
        for eqn in unit:
            for v in eqn.inputs:
                if isinstance(v, Var) and v.index not in own and v.index in producer:
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
        unit, described = units[u]
        if described is not None:
            group, inputs, outputs = described
            steps.append(Step(unit, group=group, inputs=inputs, outputs=outputs))
        else:
            (eqn,) = unit
            inputs = list({id(v): v for v in eqn.inputs}.values())
            steps.append(Step(unit, inputs=inputs, outputs=[eqn.out]))
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
    """A :class:`Program` running ``graph`` on ``backend``; ``fuser`` (the backend's fusion
    hook, :class:`tfgrad.backends.base.Fuser`) fuses pointwise groups."""
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
        if step.group is not None:
            step.fused = fuser.compile(step.group)
            step.implementation = step.fused.implementation
            namespace[f"k{n}"] = step.fused
            args = ", ".join(ref(step.inputs[k]) for k in step.fused.inputs)
            outs = [f"b{v.index}" for v in step.outputs]
            names.update((v.index, f"b{v.index}") for v in step.outputs)
            target = ", ".join(outs) + ("," if len(outs) == 1 else "")
            names_ops = ", ".join(sorted({e.prim.name for e in step.eqns}))
            body.append(f"    {target} = k{n}({args})  # {len(step.eqns)} ops: {names_ops}")
            continue
        eqn = step.eqns[0]
        if not eqn.prim.on_backend:
            fn, impl = _python_impl(eqn, backend), "python"
        else:
            samples = [sample(v) for v in eqn.inputs]  # indices ran (and were checked) in tracing
            fn, impl = backend.kernel_for(eqn.prim.op, *samples, indices_checked=True, **eqn.params)
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
