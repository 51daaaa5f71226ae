"""TapeWidget: watch a tape being recorded, then swept backwards (or a forward pass).

The core records the tape and replays it into frames (:func:`tfgrad.viz.trace_tape`); this
widget sends the graph and every frame to the browser **once** (frames as differences from the
step before), and after that a step is one small message: ``{"step": 7}``. The front end
(``static/tape.js``) steps, plays, zooms and pans by itself and tells the kernel where it is,
so ``widget.step`` and the snapshot follow what the student sees.

Name scopes (:func:`tfgrad.name_scope`, ``Record.scope``) are drawn as one box each until the
student clicks one open (``collapsed``), so that a network's training step reads layer by layer.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import traitlets

from tfgrad.viz import Frame, TapeGraph, graph_of_tape, trace_tape

from .base import TfgradWidget, esm_source
from .svg import graph_layout, graph_svg, standalone

__all__ = ["TapeWidget", "tape_data"]

MODES = {"reverse": "reverse mode: record, then sweep", "forward": "forward mode: tangents"}


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))  # NumPy's way: (8, 4), (6,)


def tape_data(graph: TapeGraph) -> dict:
    """The plain data the front end draws: the graph, the name scopes, and the frames of both
    modes, each frame holding only what changed since the frame before."""
    nodes = []
    for n in graph.nodes:
        label = "constant" if n.kind == "const" else n.label
        head = f"{label} {_shape(n.shape)}" if n.shape else label
        title = f"{n.label}: shape {n.shape}, {n.dtype}, value {n.value}" + (
            f", ran on {n.implementation}" if n.implementation else ""
        )
        nodes.append({"id": n.id, "kind": n.kind, "label": n.label, "head": head,
                      "value": n.value, "title": title, "layer": n.layer,
                      "scope": n.scope})  # fmt: skip
    scopes = sorted({"/".join(n.scope.split("/")[: i + 1]) for n in graph.nodes if n.scope
                     for i in range(n.scope.count("/") + 1)})  # fmt: skip
    order = {n.id: i for i, n in enumerate(graph.nodes)}
    return {
        "graph": {"nodes": nodes, "edges": [[e.source, e.target, e.slot] for e in graph.edges]},
        "scopes": scopes,
        "modes": MODES,
        "frames": {
            "reverse": _differences(graph.reverse_frames, order),
            "forward": _differences(graph.forward_frames, order),
        },
    }


def _differences(frames: list[Frame], order: dict[str, int]) -> list[dict]:
    """Each frame as the nodes it shows and the values it changes (the front end adds them up;
    within one mode nothing is ever hidden again or forgotten)."""
    out, visible, values = [], set(), {}
    for f in frames:
        assert visible <= f.visible and values.keys() <= f.values.keys(), "frames only add"
        out.append({
            "phase": f.phase, "active": f.active, "caption": f.caption,
            "edge": list(f.edge) if f.edge else None,
            "show": sorted(f.visible - visible, key=order.__getitem__),
            "values": {k: v for k, v in f.values.items() if values.get(k) != v},
        })  # fmt: skip
        visible, values = set(f.visible), dict(f.values)
    return out


class TapeWidget(TfgradWidget):
    """The tape of ``f(*args)``, step by step.

    >>> from tfgrad_widgets import TapeWidget
    >>> widget = TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)
    >>> widget.n_steps, widget.gradients
    (7, {'a': 4.0, 'b': 2.0})
    >>> widget.step = widget.n_steps - 1   # the end of the sweep: one small message
    >>> "ḡ = 4" in widget.snapshot()
    True
    """

    _esm = esm_source("tape.js")
    mode = traitlets.Enum(list(MODES), default_value="reverse").tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)
    collapsed = traitlets.List(traitlets.Unicode()).tag(sync=True)

    def __init__(self, f: Callable | None = None, *args: Any, graph: TapeGraph | None = None,
                 forward_input: int = 0, mode: str = "reverse", collapsed: list[str] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        if graph is None:
            if f is None:
                raise TypeError("TapeWidget needs a function and its arguments, or graph=...")
            graph = trace_tape(f, *args, forward_input=forward_input)
        self.graph = graph
        data = tape_data(graph)
        if collapsed is None:  # every outermost scope closed: a network reads layer by layer
            collapsed = [s for s in data["scopes"] if "/" not in s]
        super().__init__(data=data, mode=mode, collapsed=collapsed, **kwargs)

    @classmethod
    def from_tape(cls, tape, target, **kwargs: Any) -> TapeWidget:
        """A widget for a tape recorded elsewhere (sweeps ``target``: a non-persistent tape
        is used up)."""
        return cls(graph=graph_of_tape(tape, target), **kwargs)

    # ---- State ----------------------------------------------------------------------------
    @property
    def frames(self) -> list[Frame]:
        return self.graph.reverse_frames if self.mode == "reverse" else self.graph.forward_frames

    @property
    def n_steps(self) -> int:
        return len(self.frames)

    @property
    def frame(self) -> Frame | None:
        return self.frames[self.step] if self.frames else None

    @property
    def gradients(self) -> dict[str, float | np.ndarray]:
        """The gradient the sweep delivered to each input: a float, or an array for a tensor."""
        return dict(self.graph.gradients)

    @property
    def caption(self) -> str:
        frame = self.frame
        where = f"step {self.step + 1} of {self.n_steps}" if frame else "no steps"
        return f"{MODES[self.mode]} · {where}" + (f" · {frame.caption}" if frame else "")

    @traitlets.validate("step")
    def _clamp_step(self, proposal):
        return max(0, min(proposal["value"], self.n_steps - 1))

    @traitlets.validate("collapsed")
    def _known_scopes(self, proposal):
        unknown = set(proposal["value"]) - set(self.data.get("scopes", []))
        if unknown:
            raise traitlets.TraitError(
                f"TapeWidget.collapsed: no name scope {sorted(unknown)} on this tape; its scopes "
                f"are {self.data.get('scopes', [])}"
            )
        return sorted(set(proposal["value"]))

    @traitlets.observe("mode")
    def _mode_changed(self, change) -> None:
        self.step = 0

    def expand(self, scope: str) -> None:
        """Open a name scope's box (its nodes are drawn, inside a labelled frame)."""
        self.collapsed = [s for s in self.collapsed if s != scope]

    def collapse(self, scope: str) -> None:
        """Close a name scope into one box."""
        self.collapsed = [*self.collapsed, scope]

    # ---- The picture ----------------------------------------------------------------------
    def frame_state(self) -> dict:
        """What the current frame shows, in the form the kit draws (``graph_svg``)."""
        frame = self.frame
        if frame is None:
            return {"visible": [n["id"] for n in self.data["graph"]["nodes"]]}
        return {"visible": sorted(frame.visible), "active": frame.active,
                "edge": list(frame.edge) if frame.edge else None, "values": frame.values,
                "flow": "fwd" if frame.phase == "forward" else "rev"}  # fmt: skip

    def graph_svg(self) -> str:
        """The graph as the live view draws it at this step (without the caption)."""
        graph = self.data["graph"]
        return graph_svg(graph, graph_layout(graph, self.collapsed), self.frame_state())

    def snapshot(self) -> str:
        return standalone(self.graph_svg(), self.caption)

    def __repr__(self) -> str:
        n_ops = sum(1 for n in self.graph.nodes if n.kind == "op")
        return f"TapeWidget({n_ops} ops, {self.caption})"
