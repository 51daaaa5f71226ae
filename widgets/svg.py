"""Drawing a tape graph frame as SVG: the one place where the tape's pictures are drawn.

Pure functions of :class:`tfgrad.viz.TapeGraph` data; no widget state here.
"""

from __future__ import annotations

from html import escape

from tfgrad.viz import Frame, TapeGraph

NODE_W, NODE_H = 170, 62
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


def _stylesheet() -> str:
    # One stylesheet instead of attributes on every element keeps a 500-node frame small. It is
    # the same for every widget, since a <style> inside inline SVG applies to the whole page.
    c, t = COLORS, ".tfgrad-tape"
    rules = [
        f"{t} text{{font-size:13px;fill:#111827}}",
        f"{t} .h{{font-weight:bold}}",
        f"{t} .g{{font-weight:bold}}",
        f"{t} .g.rev{{fill:{c['reverse']}}}",
        f"{t} .g.fwd{{fill:{c['forward']}}}",
        f"{t} .node rect{{stroke:#6b7280;stroke-width:1}}",
        f"{t} .input rect{{fill:{c['input']}}}",
        f"{t} .const rect{{fill:{c['const']}}}",
        f"{t} .op rect{{fill:{c['op']}}}",
        f"{t} .active rect{{fill:{c['active']};stroke:#111827;stroke-width:2}}",
        f"{t} path.e{{fill:none;stroke:{c['edge']};stroke-width:1.5}}",
        f"{t} path.hot{{stroke-width:3}}",
        f"{t} path.hot.rev{{stroke:{c['reverse']}}}",
        f"{t} path.hot.fwd{{stroke:{c['forward']}}}",
    ]
    return "<style>" + " ".join(rules) + "</style>"


STYLESHEET = _stylesheet()


def render_svg(graph: TapeGraph, frame: Frame | None) -> str:
    """The graph as an SVG string, showing ``frame`` (all nodes, no values when ``None``)."""
    visible = frame.visible if frame is not None else {n.id for n in graph.nodes}
    values = frame.values if frame is not None else {}
    forward = frame is not None and frame.phase == "forward"
    flow = "fwd" if forward else "rev"
    symbol = "ṫ" if forward else "ḡ"
    pos = {n.id: _xy(n.layer, n.row) for n in graph.nodes}
    width = max((x for x, _ in pos.values()), default=0) + NODE_W + PAD
    height = max((y for _, y in pos.values()), default=0) + NODE_H + PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="tfgrad-tape" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">',
        STYLESHEET,
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
        parts.append(_edge(pos[e.source], pos[e.target], e.slot, n_inputs[e.target],
                           f" hot {flow}" if hot else ""))  # fmt: skip
    for n in graph.nodes:
        if n.id not in visible:
            continue
        x, y = pos[n.id]
        active = " active" if frame is not None and frame.active == n.id else ""
        title = escape(
            f"{n.label}: shape {n.shape}, {n.dtype}, value {n.value}"
            + (f", ran on {n.implementation}" if n.implementation else "")
        )
        head = f"{n.label}  {_shape(n.shape)}" if n.kind != "const" else n.label
        parts.append(
            f'<g class="node {n.kind}{active}" data-node="{escape(n.id)}"><title>{title}</title>'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            + _text(x + 8, y + 17, head, "h")
            + _text(x + 8, y + 35, f"= {n.value}")
        )
        if n.id in values:
            parts.append(_text(x + 8, y + 53, f"{symbol} = {values[n.id]}", f"g {flow}"))
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _edge(source, target, slot, n_slots, extra_class: str) -> str:
    """A curve from the source's right side to input ``slot`` on the target's left side;
    edges that skip columns bow above the rows so they do not run through other nodes."""
    (x1, y1), (x2, y2) = source, target
    span = round((x2 - x1) / (NODE_W + COL_GAP))  # how many columns the edge crosses
    x1, y1 = x1 + NODE_W, y1 + NODE_H / 2
    y2 = y2 + NODE_H * (slot + 1) / (n_slots + 1)
    # A cubic's middle reaches 3/4 of its control points' lift: clear the row's top edge.
    # Only edges along a row need it; edges between rows pass between the boxes.
    along_a_row = abs(y2 - y1) < NODE_H
    lift = (NODE_H / 2 + 14) * 4 / 3 + 20 * (span - 2) if span > 1 and along_a_row else 0
    c1 = (x1 + COL_GAP * 0.8, y1 - lift)
    c2 = (x2 - COL_GAP * 0.8, y2 - lift)
    return (
        f'<path class="e{extra_class}" d="M{x1:g} {y1:g}C{c1[0]:g} {c1[1]:g} '
        f'{c2[0]:g} {c2[1]:g} {x2:g} {y2:g}" marker-end="url(#arrow)"/>'
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
            + f'<text x="{x0 + 6}" y="{y0 + 13}" style="font-size:11px;fill:#6d28d9">'
            + escape(scope)
            + "</text>"
            + "</g>"
        )
    return out


def _shape(shape: tuple[int, ...]) -> str:
    return "" if shape == () else "×".join(str(s) for s in shape)


def _text(x, y, s, css_class: str = "") -> str:
    klass = f' class="{css_class}"' if css_class else ""
    return f'<text x="{x}" y="{y}"{klass}>{escape(s)}</text>'
