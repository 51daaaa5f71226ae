"""Drawing a tape graph frame as SVG: the one place where the tape's pictures are drawn.

Pure functions of :class:`tfgrad.viz.TapeGraph` data; no widget state here.
"""

from __future__ import annotations

from html import escape

from tfgrad.viz import Frame, TapeGraph

NODE_W, NODE_H = 150, 62
COL_GAP, ROW_GAP = 70, 22
PAD = 16

COLORS = {
    "input": "#dbeafe",  # watched inputs: blue
    "const": "#f3f4f6",  # constants: grey
    "op": "#ffffff",
    "active": "#fde68a",  # the node this step is about
    "reverse": "#b91c1c",  # adjoints flow back in red
    "forward": "#047857",  # tangents flow forward in green
    "edge": "#9ca3af",
    "scope": "#f5f3ff",
}


def _xy(column: int, row: int) -> tuple[int, int]:
    return PAD + column * (NODE_W + COL_GAP), PAD + 60 + row * (NODE_H + ROW_GAP)


def render_svg(graph: TapeGraph, frame: Frame | None) -> str:
    """The graph as an SVG string, showing ``frame`` (all nodes, no values when ``None``)."""
    visible = frame.visible if frame is not None else {n.id for n in graph.nodes}
    values = frame.values if frame is not None else {}
    flow = (
        COLORS["forward"] if frame is not None and frame.phase == "forward" else COLORS["reverse"]
    )
    symbol = "ṫ" if frame is not None and frame.phase == "forward" else "ḡ"
    pos = {n.id: _xy(n.layer, n.row) for n in graph.nodes}
    width = max((x for x, _ in pos.values()), default=0) + NODE_W + PAD
    height = max((y for _, y in pos.values()), default=0) + NODE_H + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tfgrad-tape" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{COLORS["edge"]}"/></marker></defs>',
    ]
    parts += _scopes(graph, pos, visible)
    n_inputs: dict[str, int] = {}
    for e in graph.edges:
        n_inputs[e.target] = max(n_inputs.get(e.target, 0), e.slot + 1)
    for e in graph.edges:
        if e.source not in visible or e.target not in visible:
            continue
        hot = frame is not None and frame.edge == (e.source, e.target)
        color, stroke = (flow, 3) if hot else (COLORS["edge"], 1.5)
        parts.append(_edge(pos[e.source], pos[e.target], e.slot, n_inputs[e.target], color,
                           stroke))  # fmt: skip
    for n in graph.nodes:
        if n.id not in visible:
            continue
        x, y = pos[n.id]
        active = frame is not None and frame.active == n.id
        fill = COLORS["active"] if active else COLORS[n.kind]
        title = escape(
            f"{n.label}: shape {n.shape}, {n.dtype}, value {n.value}"
            + (f", ran on {n.implementation}" if n.implementation else "")
        )
        parts.append(
            f'<g class="node {n.kind}" data-node="{escape(n.id)}"><title>{title}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" '
            f'stroke="{"#111827" if active else "#6b7280"}" stroke-width="{2 if active else 1}"/>'
        )
        head = n.label if n.kind != "op" else f"{n.label}  {_shape(n.shape)}"
        parts.append(_text(x + 8, y + 17, head, weight="bold"))
        parts.append(_text(x + 8, y + 35, f"= {n.value}"))
        if n.id in values:
            parts.append(_text(x + 8, y + 53, f"{symbol} = {values[n.id]}", color=flow,
                               weight="bold"))  # fmt: skip
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _edge(source, target, slot, n_slots, color, stroke) -> str:
    """A curve from the source's right side to input ``slot`` on the target's left side;
    edges that skip columns bow above the rows so they do not run through other nodes."""
    (x1, y1), (x2, y2) = source, target
    span = round((x2 - x1) / (NODE_W + COL_GAP))  # how many columns the edge crosses
    x1, y1 = x1 + NODE_W, y1 + NODE_H / 2
    y2 = y2 + NODE_H * (slot + 1) / (n_slots + 1)
    # A cubic's middle reaches 3/4 of its control points' lift: clear the row's top edge.
    lift = 0 if span <= 1 else (NODE_H / 2 + 14) * 4 / 3 + 20 * (span - 2)
    c1 = (x1 + COL_GAP * 0.8, y1 - lift)
    c2 = (x2 - COL_GAP * 0.8, y2 - lift)
    return (
        f'<path d="M {x1} {y1} C {c1[0]} {c1[1]}, {c2[0]} {c2[1]}, {x2} {y2}" fill="none" '
        f'stroke="{color}" stroke-width="{stroke}" marker-end="url(#arrow)"/>'
    )


def _scopes(graph: TapeGraph, pos, visible) -> list[str]:
    """A labelled background box around the nodes of each name scope."""
    boxes: dict[str, list[tuple[int, int]]] = {}
    for n in graph.nodes:
        if n.scope and n.id in visible:
            boxes.setdefault(n.scope, []).append(pos[n.id])
    out = []
    for scope, points in boxes.items():
        x0 = min(x for x, _ in points) - 8
        y0 = min(y for _, y in points) - 18
        x1 = max(x for x, _ in points) + NODE_W + 8
        y1 = max(y for _, y in points) + NODE_H + 8
        out.append(
            f'<g class="scope"><rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" '
            f'rx="10" fill="{COLORS["scope"]}" stroke="#c4b5fd"/>'
            + _text(x0 + 6, y0 + 13, scope, color="#6d28d9", size=11)
            + "</g>"
        )
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "" if shape == () else "×".join(str(s) for s in shape)


def _text(x, y, s, color="#111827", weight="normal", size=13) -> str:
    return (
        f'<text x="{x}" y="{y}" font-size="{size}" fill="{color}" font-weight="{weight}">'
        f"{escape(s)}</text>"
    )
