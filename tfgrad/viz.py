"""Plain data for pictures of a tape: its graph, laid out in layers, and the frames of its
recording, its reverse sweep and a forward pass. Widgets draw this; nothing here imports a
widget or plotting library.

>>> import tfgrad as tg
>>> from tfgrad.viz import trace_tape
>>> graph = trace_tape(lambda a, b: a * b + a, 2.0, 3.0)
>>> [n.label for n in graph.nodes]
['a', 'b', 'mul', 'add']
>>> graph.reverse_frames[-1].values["a"]
'4'
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .primitive import full_lower
from .replay import push_tangents
from .tape import GradientTape, NotSaved, Record, TapeEvent
from .tensor import Tensor, tensor

__all__ = ["GraphNode", "GraphEdge", "Frame", "TapeGraph", "trace_tape", "graph_of"]


def format_value(x: Any, max_elements: int = 3) -> str:
    """A short rendering of a value: a number, a few elements, or a tensor's mean; ``"not
    kept"`` for a value a tape recorded without (see :class:`~tfgrad.tape.NotSaved`)."""
    if isinstance(x, NotSaved):
        return "not kept"
    a = np.asarray(full_lower(x).numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
    a = a + 0.0  # -0.0 prints as 0
    if a.ndim == 0:
        return f"{a.item():.4g}"
    if a.size <= max_elements:
        return "[" + ", ".join(f"{v:.3g}" for v in a.ravel()) + "]"
    return f"mean {a.mean():.3g}"


def _number(x: Any, shape: tuple[int, ...]) -> float | np.ndarray:
    """A value as a number (0-d) or a NumPy array; ``None`` (no adjoint arrived) as zeros."""
    a = np.zeros(shape) if x is None else np.asarray(full_lower(x).numpy())
    return float(a) if a.ndim == 0 else a


@dataclass(frozen=True)
class GraphNode:
    """A value in the graph: a watched input, a constant, or an op's result."""

    id: str
    kind: str  # "input", "const" or "op"
    label: str  # what to draw inside the node
    op: str | None
    shape: tuple[int, ...]
    dtype: str
    value: str
    layer: int  # column: the longest path from an input
    row: int  # position within the column
    scope: str = ""
    record: int | None = None  # the tape record that made it
    implementation: str | None = None


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    slot: int  # which input of the target op


@dataclass(frozen=True)
class Frame:
    """One step of an animation: what is visible, what is highlighted, and what each node
    carries (its adjoint in reverse mode, its tangent in forward mode)."""

    phase: str  # "record", "sweep" or "forward"
    visible: frozenset[str]
    active: str | None
    edge: tuple[str, str] | None  # the edge a value travels along in this step
    values: dict[str, str]  # node id -> adjoint or tangent, as text
    caption: str


@dataclass
class TapeGraph:
    """A recorded function as a graph, with its reverse-mode and forward-mode frames."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    output: str
    reverse_frames: list[Frame] = field(default_factory=list)
    forward_frames: list[Frame] = field(default_factory=list)
    # input id -> the gradient the sweep delivered: a float for a scalar input, else an array
    gradients: dict[str, float | np.ndarray] = field(default_factory=dict)
    forward_input: str | None = None  # the input forward mode differentiates with respect to

    def node(self, node_id: str) -> GraphNode:
        return next(n for n in self.nodes if n.id == node_id)


def graph_of(
    tape: GradientTape,
    target: Tensor,
    events: list[TapeEvent],
    names: list[str] | None = None,
    forward_input: int = 0,
) -> TapeGraph:
    """Build the graph and frames of ``tape`` from the events an observer collected while it
    recorded and swept ``target``."""
    names = names or [f"x{i}" for i in range(len(tape.leaves))]
    leaf_ids = {leaf.variable: names[i] for i, leaf in enumerate(tape.leaves)}
    # Variable ids in the records are tape variables; map them to node ids.
    var_to_id = dict(leaf_ids)
    var_to_id.update({r.output: f"r{r.index}" for r in tape.records})

    const_inputs = {}
    for record in tape.records:
        for slot, variable in enumerate(record.inputs):
            node_id = _input_id_from(record, slot, var_to_id)
            if variable is None and node_id is not None:
                const_inputs[node_id] = (record, slot)
    position = _layout_ids(tape.records, var_to_id, leaf_ids, const_inputs)

    nodes = []
    for i, leaf in enumerate(tape.leaves):
        node_id = leaf_ids[leaf.variable]
        column, row = position[node_id]
        nodes.append(
            GraphNode(
                node_id,
                "input",
                names[i],
                None,
                leaf.shape,
                leaf.dtype,
                format_value(leaf.value),
                column,
                row,
            )
        )
    for node_id, (record, slot) in const_inputs.items():
        column, row = position[node_id]
        value = record.primals[slot]
        nodes.append(
            GraphNode(
                node_id,
                "const",
                format_value(value),
                None,
                record.input_shapes[slot],
                record.input_dtypes[slot],
                format_value(value),
                column,
                row,
                record.scope,
            )
        )
    edges = []
    for record in tape.records:
        node_id = f"r{record.index}"
        column, row = position[node_id]
        nodes.append(
            GraphNode(
                node_id,
                "op",
                record.op,
                record.op,
                record.shape,
                record.dtype,
                format_value(record.ans),
                column,
                row,
                record.scope,
                record.index,
                record.implementation,
            )
        )
        for slot in range(len(record.inputs)):
            source = _input_id_from(record, slot, var_to_id)
            if source is not None:
                edges.append(GraphEdge(source, node_id, slot))

    output = var_to_id.get(getattr(target, "variable", None), nodes[-1].id)
    graph = TapeGraph(nodes, edges, output)
    graph.reverse_frames = _reverse_frames(graph, events, var_to_id)
    graph.forward_input = names[forward_input] if tape.leaves else None
    graph.forward_frames = _forward_frames(graph, tape, forward_input, var_to_id)
    return graph


def _input_id_from(record: Record, slot: int, var_to_id: dict[int, str]) -> str | None:
    variable = record.inputs[slot]
    if variable is None:
        shape = record.input_shapes[slot]
        return f"c{record.index}.{slot}" if int(np.prod(shape)) <= 4 else None
    return var_to_id[variable]


def _layout_ids(records, var_to_id, leaf_ids, const_inputs) -> dict[str, tuple[int, int]]:
    """Columns by longest path from the inputs; rows in horizontal bands, one per name scope
    (in order of first appearance), so that each scope's box holds only its own nodes."""
    layer: dict[str, int] = {node_id: 0 for node_id in leaf_ids.values()}
    scope: dict[str, str] = {node_id: "" for node_id in leaf_ids.values()}
    for record in records:
        parents = [_input_id_from(record, s, var_to_id) for s in range(len(record.inputs))]
        layer[f"r{record.index}"] = 1 + max((layer.get(p, 0) for p in parents if p), default=0)
        scope[f"r{record.index}"] = record.scope
    # Constants sit one column left of the op that uses them, in that op's scope.
    for node_id, (record, _) in const_inputs.items():
        layer[node_id] = max(0, layer[f"r{record.index}"] - 1)
        scope[node_id] = record.scope
    bands: dict[str, dict[int, int]] = {}  # scope -> column -> rows used
    local: dict[str, int] = {}
    for node_id in sorted(layer, key=lambda n: list(scope).index(n)):
        used = bands.setdefault(scope[node_id], {})
        local[node_id] = used.get(layer[node_id], 0)
        used[layer[node_id]] = local[node_id] + 1
    start, offset = 0, {}
    for name, used in bands.items():
        offset[name] = start
        start += max(used.values())
    return {n: (layer[n], offset[scope[n]] + local[n]) for n in layer}


def _reverse_frames(graph: TapeGraph, events, var_to_id) -> list[Frame]:
    frames: list[Frame] = []
    visible: set[str] = {n.id for n in graph.nodes if n.kind == "input"}
    op_inputs = {}
    for e in graph.edges:
        op_inputs.setdefault(e.target, []).append(e.source)
    values: dict[str, str] = {}
    totals: dict[str, Any] = {}
    for event in events:
        if event.kind == "record":
            node_id = f"r{event.record.index}"
            visible.update(op_inputs.get(node_id, []))
            visible.add(node_id)
            node = graph.node(node_id)
            frames.append(
                Frame(
                    "record",
                    frozenset(visible),
                    node_id,
                    None,
                    {},
                    f"record {event.record.index}: {node.op} → {node.value}",
                )
            )
        elif event.kind == "sweep_start":
            values = {graph.output: "1"}
            frames.append(
                Frame(
                    "sweep",
                    frozenset(visible),
                    graph.output,
                    None,
                    dict(values),
                    "the sweep starts: the output's adjoint is 1",
                )
            )
        elif event.kind == "accumulate":
            target = f"r{event.record.index}"
            source = var_to_id[event.variable]
            values[source] = format_value(event.total)
            totals[source] = event.total
            shared = sum(1 for e in graph.edges if e.source == source) > 1
            caption = (
                f"{event.record.op}'s rule sends {format_value(event.contribution)} "
                f"to {graph.node(source).label}" + (" (fan-out: adjoints add up)" if shared else "")
            )
            frames.append(
                Frame("sweep", frozenset(visible), source, (source, target), dict(values), caption)
            )
    graph.gradients = {n.id: _number(totals.get(n.id), n.shape) for n in graph.nodes
                       if n.kind == "input"}  # fmt: skip
    return frames


def _forward_frames(graph: TapeGraph, tape: GradientTape, which: int, var_to_id) -> list[Frame]:
    if not tape.leaves:
        return []
    seed_leaf = tape.leaves[which]
    seeds = {leaf.variable: (1.0 if leaf is seed_leaf else 0.0) for leaf in tape.leaves}
    tangents = push_tangents(
        tape,
        {v: tensor(np.full(leaf.shape, s)) for (v, s), leaf in zip(seeds.items(), tape.leaves)},
    )
    visible = frozenset(n.id for n in graph.nodes)
    values = {
        var_to_id[leaf.variable]: format_value(tangents[leaf.variable]) for leaf in tape.leaves
    }
    name = var_to_id[seed_leaf.variable]
    frames = [Frame("forward", visible, name, None, dict(values),
                    f"forward mode: {name} gets tangent 1, every other input 0")]  # fmt: skip
    for record in tape.records:
        node_id = f"r{record.index}"
        values[node_id] = (
            format_value(tangents[record.output]) if record.output in tangents else "0"
        )
        frames.append(
            Frame(
                "forward",
                visible,
                node_id,
                None,
                dict(values),
                f"{record.op}'s JVP rule: tangent {values[node_id]}",
            )
        )
    return frames


def trace_tape(f: Callable, *args: Any, forward_input: int = 0) -> TapeGraph:
    """Record ``f(*args)`` on a tape, sweep it, and return the graph with its frames.

    ``args`` are watched inputs (named after ``f``'s parameters); ``f`` returns one number.
    """
    try:
        names = list(inspect.signature(f).parameters)[: len(args)]
    except (TypeError, ValueError):
        names = []
    if len(names) != len(args):
        names = [f"x{i}" for i in range(len(args))]
    events: list[TapeEvent] = []
    tape = GradientTape(persistent=True)
    tape.observe(events.append)
    with tape:
        watched = [tape.watch(tensor(a) if not isinstance(a, (int, float)) else float(a))
                   for a in args]  # fmt: skip
        out = f(*watched)
    tape.gradient(out, watched)
    return graph_of(tape, out, events, names, forward_input)


def graph_of_tape(tape: GradientTape, target: Tensor, forward_input: int = 0) -> TapeGraph:
    """The graph of a tape recorded elsewhere: sweeps ``target`` back to the watched inputs
    (so a non-persistent tape is used up) while collecting the sweep's events. Values the
    tape did not keep show as ``"not kept"``: record with ``GradientTape(keep_values=True)``
    to show them all."""
    events = [TapeEvent("record", tape.id, record=r) for r in tape.records]
    stop = tape.observe(events.append)
    try:
        tape.gradient(target, tape.sources())
    finally:
        stop()
    return graph_of(tape, target, events, None, forward_input)
