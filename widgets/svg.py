"""The drawing kit, Python side: SVG markup from plain data, the same markup the front end draws.

Every widget's picture is drawn twice: live in the browser by ``static/kit.js``, and here, as the
static snapshot that goes into the widget's MIME bundle (for GitHub, nbviewer, the docs site, a
notebook opened without a kernel) and into ``widget.save(path)``. This module is a line-by-line
mirror of ``kit.js``: the same functions (``figure_svg`` is ``figureSVG``), the same arithmetic
in the same order (IEEE doubles on both sides), the same number formatting (JavaScript's
``toFixed``/``toExponential``, which round the exact binary value half up, reproduced with
:mod:`decimal`), the same element order. ``tests/browser/test_kit_agreement.py`` runs both on the
same data in Chromium and compares the markup.

What it draws:

- a **figure**: panels side by side when the width allows (``columns``), stacked otherwise;
- **xy** panels: linear or log axes with nice ticks, layers of lines (with markers at chosen
  points), scatter points (one of them the current choice), arrows, contour paths and a
  draggable point;
- **heatmap** panels with a colour bar (diverging around zero, or sequential);
- **bars** (signed, or on a log axis), with highlighted bars;
- **timeline** panels: spans on lanes;
- the **tape graph**: nodes on a grid of columns, name scopes collapsed into one box each.

>>> svg = figure_svg({"panels": [{"id": "p", "kind": "bars", "labels": ["a", "b"],
...                               "values": [1.0, -2.0]}]}, {}, 700)
>>> svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" class="tfgrad-svg tf-figure"')
True
>>> fmt(0.000123456), fmt(123456.0), fmt(1.125, 3), fmt(-0.0)
('0.000123', '123456', '1.13', '0')
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

from .theme import PALETTE, THEME

__all__ = ["figure_svg", "graph_layout", "graph_svg", "standalone", "fmt", "num"]

STATIC = Path(__file__).resolve().parent / "static"
SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


# ---- Numbers and text -------------------------------------------------------------------
def num(v: float) -> str:
    """A coordinate: rounded to 0.1 px (half up), written as JavaScript's ``String`` would."""
    r = math.floor(v * 10 + 0.5) / 10
    return str(int(r)) if r == int(r) else repr(r)


def _fixed(v: float, decimals: int) -> str:
    """JavaScript's ``v.toFixed(decimals)``: the exact binary value, rounded half up."""
    with localcontext() as context:
        context.prec, context.rounding = 60, ROUND_HALF_UP
        return f"{Decimal(v).quantize(Decimal(1).scaleb(-decimals)):f}"


def _exponential(v: float, decimals: int) -> str:
    """JavaScript's ``v.toExponential(decimals)``, e.g. ``'1.23e+2'``."""
    with localcontext() as context:
        context.prec, context.rounding = 60, ROUND_HALF_UP
        return format(Decimal(v), f".{decimals}e")


def _trim(s: str) -> str:
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def fmt(v: float | None, digits: int = 3) -> str:
    """A number for a label: ``digits`` significant digits, plain between 1e-4 and 1e6,
    ``1.23e-7`` outside; ``''`` for a missing value."""
    if v is None or not math.isfinite(v):
        return ""
    if v == 0:
        return "0"
    mantissa, exponent = _exponential(v, digits - 1).split("e")
    e = int(exponent)
    if -4 <= e < 6:
        return _trim(_fixed(v, max(0, digits - 1 - e)))
    return _trim(mantissa) + "e" + str(e)


def esc(s: object) -> str:
    return (
        str(s)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def text_width(s: str, size: float) -> float:
    """The kit never measures text (the snapshot has no browser): it estimates."""
    return len(s) * size * THEME["char"]


def clip(s: str, width: float, size: float) -> str:
    """``s``, cut short with an ellipsis if it would be wider than ``width`` px."""
    if text_width(s, size) <= width:
        return s
    return s[: max(1, math.floor(width / (size * THEME["char"])) - 1)] + "…"


def _text(x: float, y: float, s: str, css: str, anchor: str = "") -> str:
    a = f' text-anchor="{anchor}"' if anchor else ""
    return f'<text class="{css}" x="{num(x)}" y="{num(y)}"{a}>{esc(s)}</text>'


def color(index: int | None) -> str:
    return PALETTE[(index or 0) % len(PALETTE)]


# ---- Scales and ticks -------------------------------------------------------------------
def pow10(k: int) -> float:
    # By repeated products: exact up to 1e22 and the same bits in Python and JavaScript
    # (pow() differs between the two in the last place).
    p = 1.0
    for _ in range(abs(k)):
        p *= 10
    return p if k >= 0 else 1 / p


def decade(v: float) -> int:
    """The k with 10^k <= v < 10^(k+1), for v > 0 (log10 estimates, comparisons decide)."""
    k = math.floor(math.log10(v))
    if pow10(k) > v:
        k -= 1
    elif pow10(k + 1) <= v:
        k += 1
    return k


def _finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def domain(values: list, scale: str, given=None, include_zero: bool = False) -> tuple:
    """An axis' data range: ``given``, or the values' extent (5 % margins; whole decades on a
    log axis)."""
    if given:
        return given[0], given[1]
    values = _finite(values)
    if scale == "log":
        values = [v for v in values if v > 0]
        if not values:
            return 1, 10
        lo, hi = pow10(decade(min(values))), max(values)
        k = decade(hi)
        hi = pow10(k) if pow10(k) == hi else pow10(k + 1)
        return (lo, lo * 10) if hi <= lo else (lo, hi)
    if include_zero:
        values = [*values, 0]
    if not values:
        return 0, 1
    lo, hi = min(values), max(values)
    if lo == hi:
        return lo - 1, hi + 1
    margin = (hi - lo) * 0.05
    return lo - margin, hi + margin


def scale_map(scale: str, d0: float, d1: float, r0: float, r1: float):
    """Data to pixels: linear, or linear in log10 (values <= 0 give ``None``)."""
    if scale == "log":
        l0, l1 = math.log10(d0), math.log10(d1)

        def to_pixels(v):
            return (
                None if v is None or v <= 0 else r0 + (math.log10(v) - l0) * (r1 - r0) / (l1 - l0)
            )

        return to_pixels
    return lambda v: None if v is None else r0 + (v - d0) * (r1 - r0) / (d1 - d0)


def linear_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], int]:
    """Ticks at multiples of 1, 2 or 5 times a power of ten, and that power's exponent."""
    span = hi - lo
    if not span > 0:
        return [lo], 0
    raw = span / count
    k = decade(raw)
    f = raw / pow10(k)
    m = 1 if f < 1.5 else 2 if f < 3.5 else 5 if f < 7.5 else 10
    if m == 10:
        m, k = 1, k + 1
    step = m * pow10(k) if k >= 0 else m / pow10(-k)
    first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    return [i * step for i in range(first, last + 1)], k


def tick_label(v: float, k: int) -> str:
    if abs(v) >= 1e6 or (v != 0 and k < -4):
        return fmt(v, 3)
    return _trim(_fixed(v, max(0, -k)))


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def log_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Powers of ten in [lo, hi] (every few when there are many), or 1-2-5 steps in one decade."""
    k0, k1 = decade(lo), decade(hi)
    if pow10(k0) < lo:
        k0 += 1
    powers = list(range(k0, k1 + 1))
    if len(powers) >= 2:
        every = math.ceil(len(powers) / 7)
        return [(pow10(k), _power_label(k)) for k in powers[::every]]
    ticks = []
    for k in range(decade(lo), k1 + 1):
        for m in (1, 2, 5):
            v = m * pow10(k) if k >= 0 else m / pow10(-k)
            if lo <= v <= hi:
                ticks.append((v, fmt(v, 1)))
    return ticks


def _power_label(k: int) -> str:
    return str(int(pow10(k))) if 0 <= k <= 2 else "10" + str(k).translate(SUPERSCRIPT)


def _axis_ticks(scale: str, lo: float, hi: float, count: int) -> list[tuple[float, str]]:
    if scale == "log":
        return log_ticks(lo, hi)
    values, k = linear_ticks(lo, hi, count)
    return [(v, tick_label(v, k)) for v in values]


def mix(a: str, b: str, t: float) -> str:
    """The colour a fraction ``t`` of the way from ``a`` to ``b`` (sRGB hex)."""
    channels = []
    for i in (1, 3, 5):
        ca, cb = int(a[i : i + 2], 16), int(b[i : i + 2], 16)
        channels.append(math.floor(ca + (cb - ca) * t + 0.5))
    return "#" + "".join(f"{c:02x}" for c in channels)


def heat_color(v: float | None, lo: float, hi: float, kind: str) -> str:
    if v is None:
        return THEME["fill"]["const"]
    if kind == "diverging":
        low, mid, high = THEME["diverging"]
        bound = max(abs(lo), abs(hi)) or 1
        t = max(-1, min(1, v / bound))
        return mix(mid, high, t) if t >= 0 else mix(mid, low, -t)
    low, high = THEME["sequential"]
    t = 0 if hi == lo else max(0, min(1, (v - lo) / (hi - lo)))
    return mix(low, high, t)


# ---- The figure ---------------------------------------------------------------------------
MARGIN = {"left": 58, "right": 14, "top": 26, "bottom": 40}


def figure_svg(figure: dict, view: dict, width: float) -> str:
    """Every panel of ``figure`` at ``width`` px, with the interaction state ``view``."""
    panels = figure.get("panels", [])
    gap = THEME["gap"]
    columns = max(1, min(figure.get("columns", 1), len(panels) or 1))
    if width < columns * THEME["min_panel"]:
        columns = 1
    panel_w = (width - (columns - 1) * gap) / columns
    top = 26 if figure.get("title") else 0
    parts, y = [], top
    for start in range(0, len(panels), columns):
        row = panels[start : start + columns]
        heights = [panel_height(p, panel_w) for p in row]
        for i, panel in enumerate(row):
            x = i * (panel_w + gap)
            parts.append(panel_svg(panel, view, x, y, panel_w, heights[i]))
        y += max(heights) + gap
    height = max(y - gap, top)
    head = (
        f'<svg {SVG_NS} class="tfgrad-svg tf-figure" width="{num(width)}" height="{num(height)}" '
        f'viewBox="0 0 {num(width)} {num(height)}">'
    )
    title = _text(0, 18, figure["title"], "tf-figtitle") if figure.get("title") else ""
    return head + title + "".join(parts) + "</svg>"


def panel_height(panel: dict, panel_w: float) -> float:
    """A panel's ``height`` (or the default), plus the rows of a legend drawn below its plot."""
    if panel.get("height"):
        height = panel["height"]
    elif panel.get("kind") == "timeline":
        height = MARGIN["top"] + 28 * max(1, len(panel.get("lanes", []))) + MARGIN["bottom"]
    else:
        height = THEME["panel_height"]
    return height + legend_below_height(panel, panel_w - MARGIN["left"] - MARGIN["right"])


def panel_svg(panel: dict, view: dict, x: float, y: float, w: float, h: float) -> str:
    kind = panel.get("kind", "xy")
    draw = {"xy": xy_body, "heatmap": heatmap_body, "bars": bars_body,
            "timeline": timeline_body}[kind]  # fmt: skip
    head = (
        f'<g class="tf-panel tf-{kind}" data-panel="{esc(panel.get("id", ""))}" '
        f'transform="translate({num(x)},{num(y)})">'
    )
    title = _text(0, 15, panel["title"], "tf-title") if panel.get("title") else ""
    return head + title + draw(panel, view, w, h) + "</g>"


def _plot_box(w: float, h: float, right: float = MARGIN["right"], left: float = MARGIN["left"]):
    return left, MARGIN["top"], w - left - right, h - MARGIN["top"] - MARGIN["bottom"]


def _frame(left, top, pw, ph, x_ticks, y_ticks, x_label, y_label) -> str:
    """The plot's background, grid lines at the ticks, tick labels and axis labels."""
    out = [f'<rect class="tf-plot" x="{num(left)}" y="{num(top)}" width="{num(pw)}" '
           f'height="{num(ph)}"/>']  # fmt: skip
    grid = "".join(f"M{num(px)} {num(top)}V{num(top + ph)}" for px, _ in x_ticks)
    grid += "".join(f"M{num(left)} {num(py)}H{num(left + pw)}" for py, _ in y_ticks)
    if grid:
        out.append(f'<path class="tf-grid" d="{grid}"/>')
    small = THEME["small"]
    for px, label in x_ticks:
        out.append(_text(px, top + ph + small + 4, label, "tf-tick", "middle"))
    for py, label in y_ticks:
        out.append(_text(left - 6, py + small * 0.35, label, "tf-tick", "end"))
    if x_label:
        out.append(_text(left + pw / 2, top + ph + 2 * small + 10, x_label, "tf-label", "middle"))
    if y_label:
        out.append(
            f'<text class="tf-label" transform="translate({num(12)},{num(top + ph / 2)}) '
            f'rotate(-90)" text-anchor="middle">{esc(y_label)}</text>'
        )
    return "".join(out)


def _axis_values(panel: dict, axis: str) -> list:
    values = []
    for layer in panel.get("layers", []):
        kind = layer.get("kind", "line")
        if kind in ("line", "scatter", "point", "path"):
            values += layer.get(axis, []) if kind != "point" else [layer.get(axis)]
        elif kind == "arrow":
            for arrow in layer.get("arrows", []):
                values += [arrow[axis], arrow[axis] + arrow["d" + axis]]
    return values


def xy_geometry(panel: dict, view: dict, w: float, h: float) -> dict:
    """The scales of an xy panel; the front end inverts them to turn a drag into data."""
    pid = panel.get("id", "")
    left, top, pw, ph = _plot_box(w, h)
    ph -= legend_below_height(panel, pw)  # the plot keeps its size; the legend adds the rows
    axes = {}
    for axis, r0, r1 in (("x", left, left + pw), ("y", top + ph, top)):
        spec = panel.get(axis, {})
        scale = view.get(f"{pid}.{axis}scale", spec.get("scale", "linear"))
        lo, hi = domain(_axis_values(panel, axis), scale, spec.get("domain"))
        axes[axis] = {"scale": scale, "lo": lo, "hi": hi, "r0": r0, "r1": r1,
                      "map": scale_map(scale, lo, hi, r0, r1)}  # fmt: skip
    return {"left": left, "top": top, "pw": pw, "ph": ph, **axes}


def xy_body(panel: dict, view: dict, w: float, h: float) -> str:
    pid = panel.get("id", "")
    g = xy_geometry(panel, view, w, h)
    fx, fy = g["x"]["map"], g["y"]["map"]
    x_ticks = [(fx(v), s) for v, s in _axis_ticks(g["x"]["scale"], g["x"]["lo"], g["x"]["hi"],
                                                  max(2, math.floor(g["pw"] / 80)))]  # fmt: skip
    y_ticks = [(fy(v), s) for v, s in _axis_ticks(g["y"]["scale"], g["y"]["lo"], g["y"]["hi"],
                                                  max(2, math.floor(g["ph"] / 50)))]  # fmt: skip
    xs, ys = panel.get("x", {}), panel.get("y", {})
    out = [_frame(g["left"], g["top"], g["pw"], g["ph"], x_ticks, y_ticks, xs.get("label", ""),
                  ys.get("label", ""))]  # fmt: skip
    for index, layer in enumerate(panel.get("layers", [])):
        kind = layer.get("kind", "line")
        c = layer["color"] if "color" in layer else index
        css = color(c)
        lid = esc(layer.get("id", str(index)))
        if kind in ("line", "path"):
            out.append(_clip_to_plot(g, _line(layer, fx, fy, css, lid, kind)))
        elif kind == "scatter":
            chosen = view.get(f"{pid}.{layer.get('id', str(index))}", layer.get("selected"))
            out.append(_scatter(layer, fx, fy, css, lid, chosen))
        elif kind == "arrow":
            out.append(_clip_to_plot(g, _arrows(layer, fx, fy, css, lid)))
        elif kind == "point":  # where the student dragged it, else where the data puts it
            key = f"{pid}.{layer.get('id', str(index))}"
            x, y = view[key] if key in view else (layer.get("x"), layer.get("y"))
            px, py = fx(x), fy(y)
            if px is not None and py is not None:
                out.append(f'<circle class="tf-handle" data-layer="{lid}" cx="{num(px)}" '
                           f'cy="{num(py)}" r="7" fill="{css}"/>')  # fmt: skip
    entries = legend_entries(panel)
    if panel.get("legend") == "below":
        out.append(_legend_below(legend_rows(entries, g["pw"]), g["left"],
                                 g["top"] + g["ph"] + MARGIN["bottom"]))  # fmt: skip
    else:
        out.append(_legend(entries, g["left"] + g["pw"] - 8, g["top"] + 8))
    return "".join(out)


def _clip_to_plot(g: dict, body: str) -> str:
    """``body`` cut at the plot's edges: a nested ``<svg>`` whose viewBox is the plot box, so
    the coordinates inside stay the panel's (no clipPath, whose id would have to be unique in
    the page). Lines, contours and arrows (a long Newton step) go in it; points and labels do
    not, so a point at the edge keeps its label."""
    if not body:
        return ""
    box = f'{num(g["left"])} {num(g["top"])} {num(g["pw"])} {num(g["ph"])}'
    return (f'<svg class="tf-clip" x="{num(g["left"])}" y="{num(g["top"])}" '
            f'width="{num(g["pw"])}" height="{num(g["ph"])}" viewBox="{box}" '
            f'overflow="hidden">{body}</svg>')  # fmt: skip


def legend_entries(panel: dict) -> list:
    """``(label, colour, kind)`` of each labelled layer of an xy panel, and of its markers."""
    entries = []
    for index, layer in enumerate(panel.get("layers", [])):
        kind = layer.get("kind", "line")
        css = color(layer["color"] if "color" in layer else index)
        if layer.get("label"):  # a dashed line gets a dashed key
            entries.append((layer["label"], css, "dash" if layer.get("dash") else kind))
        if kind == "line" and layer.get("markers") and layer.get("marker_label"):
            entries.append((layer["marker_label"], css, "marker"))
    return entries


def legend_rows(entries: list, width: float) -> list:
    """The entries left to right in rows no wider than ``width``: ``(x offset, entry)``."""
    size = THEME["small"]
    rows, row, x = [], [], 0.0
    for entry in entries:
        wide = 26 + text_width(entry[0], size)
        if row and x + wide > width:
            rows.append(row)
            row, x = [], 0.0
        row.append((x, entry))
        x += wide + 16
    if row:
        rows.append(row)
    return rows


def legend_below_height(panel: dict, pw: float) -> float:
    """The height a ``"legend": "below"`` takes under an xy panel's plot (0 for the others: a
    legend inside the plot takes none)."""
    if panel.get("kind", "xy") != "xy" or panel.get("legend") != "below":
        return 0
    rows = legend_rows(legend_entries(panel), pw)
    return len(rows) * (THEME["small"] + 6) + 4 if rows else 0


def _legend_below(rows: list, left: float, top: float) -> str:
    """A legend under the plot (below the x axis's label), where it covers no data."""
    if not rows:
        return ""
    size = THEME["small"]
    out = ['<g class="tf-legend tf-legend-below">']
    for r, row in enumerate(rows):
        y = top + r * (size + 6) + size * 0.5
        for offset, (label, css, kind) in row:
            x = left + offset
            if kind == "marker":
                out.append(f'<path class="tf-markers" d="{_marker_path(x + 9, y)}" '
                           f'stroke="{css}"/>')  # fmt: skip
            elif kind in ("scatter", "point"):
                out.append(f'<circle cx="{num(x + 9)}" cy="{num(y)}" r="4" fill="{css}"/>')
            else:
                dash = ' stroke-dasharray="5 4"' if kind == "dash" else ""
                out.append(f'<path class="tf-line" d="M{num(x)} {num(y)}H{num(x + 18)}" '
                           f'stroke="{css}"{dash}/>')  # fmt: skip
            out.append(_text(x + 26, y + size * 0.35, label, "tf-key"))
    return "".join(out) + "</g>"


def _points(layer: dict, fx, fy) -> list:
    return [(fx(x), fy(y)) for x, y in zip(layer.get("x", []), layer.get("y", []))]


def _polyline(points) -> str:
    d, pen = [], False
    for px, py in points:
        if px is None or py is None:
            pen = False
            continue
        d.append(("L" if pen else "M") + f"{num(px)} {num(py)}")
        pen = True
    return "".join(d)


def _line(layer: dict, fx, fy, css: str, lid: str, kind: str) -> str:
    points = _points(layer, fx, fy)
    dash = ' stroke-dasharray="5 4"' if layer.get("dash") else ""
    out = (
        f'<path class="tf-{kind}" data-layer="{lid}" d="{_polyline(points)}" stroke="{css}"{dash}/>'
    )
    marks = [points[i] for i in layer.get("markers", []) if 0 <= i < len(points)]
    d = "".join(_marker_path(px, py) for px, py in marks if px is not None and py is not None)
    if d:
        out += f'<path class="tf-markers" d="{d}" stroke="{css}"/>'
    return out


def _marker_path(px: float, py: float) -> str:
    # A cross: the mark of an event on a line (an overflow step, a restart).
    return (f"M{num(px - 5)} {num(py - 5)}L{num(px + 5)} {num(py + 5)}"
            f"M{num(px - 5)} {num(py + 5)}L{num(px + 5)} {num(py - 5)}")  # fmt: skip


def _scatter(layer: dict, fx, fy, css: str, lid: str, chosen) -> str:
    points = _points(layer, fx, fy)
    out = []
    if layer.get("connect"):
        out.append(f'<path class="tf-line tf-frontier" d="{_polyline(points)}" stroke="{css}"/>')
    labels = layer.get("labels", [])
    pick = layer.get("selectable", False)
    for i, (px, py) in enumerate(points):
        if px is None or py is None:
            continue
        extra = " tf-pick" if pick else ""
        if i == chosen:
            out.append(f'<circle class="tf-pt tf-chosen{extra}" data-layer="{lid}" data-i="{i}" '
                       f'cx="{num(px)}" cy="{num(py)}" r="7" fill="{css}"/>')  # fmt: skip
            if i < len(labels):
                out.append(_text(px + 10, py - 8, labels[i], "tf-note"))
        else:
            out.append(f'<circle class="tf-pt{extra}" data-layer="{lid}" data-i="{i}" '
                       f'cx="{num(px)}" cy="{num(py)}" r="4" fill="{css}"/>')  # fmt: skip
    return "".join(out)


def _arrows(layer: dict, fx, fy, css: str, lid: str) -> str:
    out = []
    for arrow in layer.get("arrows", []):
        x1, y1 = fx(arrow["x"]), fy(arrow["y"])
        x2, y2 = fx(arrow["x"] + arrow["dx"]), fy(arrow["y"] + arrow["dy"])
        if None in (x1, y1, x2, y2):
            continue
        shaft = f"M{num(x1)} {num(y1)}L{num(x2)} {num(y2)}"
        out.append(f'<path class="tf-arrow" data-layer="{lid}" d="{shaft}" stroke="{css}"/>')
        out.append(_tip(x1, y1, x2, y2, css))
    return "".join(out)


def _tip(x1: float, y1: float, x2: float, y2: float, css: str, size: float = 9) -> str:
    """A filled arrowhead at (x2, y2) pointing away from (x1, y1) (no trigonometry: sqrt is
    exactly rounded in both languages, sin and cos are not)."""
    dx, dy = x2 - x1, y2 - y1
    length = math.sqrt(dx * dx + dy * dy)
    if length == 0:
        return ""
    ux, uy = dx / length, dy / length
    bx, by = x2 - ux * size, y2 - uy * size
    half = size * 0.45
    return (f'<path class="tf-tip" d="M{num(x2)} {num(y2)}L{num(bx - uy * half)} '
            f'{num(by + ux * half)}L{num(bx + uy * half)} {num(by - ux * half)}Z" '
            f'fill="{css}"/>')  # fmt: skip


def _legend(entries: list, right: float, top: float) -> str:
    if not entries:
        return ""
    size = THEME["small"]
    wide = max(text_width(label, size) for label, _, _ in entries) + 36
    out = ['<g class="tf-legend">', f'<rect class="tf-key-box" x="{num(right - wide + 4)}" '
           f'y="{num(top - 4)}" width="{num(wide)}" height="{num(len(entries) * (size + 6) + 4)}" '
           'rx="3"/>']  # fmt: skip
    for i, (label, css, kind) in enumerate(entries):
        y = top + i * (size + 6) + size * 0.5
        tx = right - text_width(label, size)
        out.append(_text(right, y + size * 0.35, label, "tf-key", "end"))
        if kind == "marker":
            out.append(f'<path class="tf-markers" d="{_marker_path(tx - 14, y)}" stroke="{css}"/>')
        elif kind in ("scatter", "point"):
            out.append(f'<circle cx="{num(tx - 14)}" cy="{num(y)}" r="4" fill="{css}"/>')
        else:
            dash = ' stroke-dasharray="5 4"' if kind == "dash" else ""
            out.append(f'<path class="tf-line" d="M{num(tx - 24)} {num(y)}H{num(tx - 6)}" '
                       f'stroke="{css}"{dash}/>')  # fmt: skip
    return "".join(out) + "</g>"


def heatmap_body(panel: dict, view: dict, w: float, h: float) -> str:
    values = panel.get("values", [])
    rows, cols = len(values), max((len(r) for r in values), default=0)
    left, top, pw, ph = _plot_box(w, h, right=78, left=46)
    if not rows or not cols:
        return ""
    cell = min(pw / cols, ph / rows)
    flat = _finite(v for r in values for v in r)
    lo, hi = (min(flat), max(flat)) if flat else (0, 1)
    kind = panel.get("scale", "diverging")
    out = []
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            out.append(f'<rect class="tf-cell" x="{num(left + j * cell)}" y="{num(top + i * cell)}"'
                       f' width="{num(cell)}" height="{num(cell)}" '
                       f'fill="{heat_color(v, lo, hi, kind)}"/>')  # fmt: skip
    out.append(f'<rect class="tf-outline" x="{num(left)}" y="{num(top)}" '
               f'width="{num(cols * cell)}" height="{num(rows * cell)}"/>')  # fmt: skip
    out.append(_cell_labels(panel.get("x_labels"), cols, cell, left, top + rows * cell, "x"))
    out.append(_cell_labels(panel.get("y_labels"), rows, cell, left, top, "y"))
    # The colour bar: 32 bands from the lowest to the highest value (symmetric when diverging).
    if kind == "diverging":
        bound = max(abs(lo), abs(hi)) or 1
        lo, hi = -bound, bound
    bar_x, bar_h, bands = left + cols * cell + 18, rows * cell, 32
    for b in range(bands):
        v = hi - (hi - lo) * (b + 0.5) / bands
        out.append(f'<rect class="tf-band" x="{num(bar_x)}" y="{num(top + bar_h * b / bands)}" '
                   f'width="12" height="{num(bar_h / bands + 0.5)}" '
                   f'fill="{heat_color(v, lo, hi, kind)}"/>')  # fmt: skip
    out.append(f'<rect class="tf-outline" x="{num(bar_x)}" y="{num(top)}" width="12" '
               f'height="{num(bar_h)}"/>')  # fmt: skip
    small = THEME["small"]
    for v, py in ((hi, top), ((hi + lo) / 2, top + bar_h / 2), (lo, top + bar_h)):
        out.append(_text(bar_x + 16, py + small * 0.35, fmt(v), "tf-tick"))
    if panel.get("colorbar"):
        out.append(_text(bar_x, top - 8, panel["colorbar"], "tf-tick"))
    return "".join(out)


def _cell_labels(labels, n: int, cell: float, x0: float, y0: float, axis: str) -> str:
    """Labels along a heat map's edge, thinned so that they do not overlap."""
    if not labels:
        return ""
    size = THEME["small"]
    need = max(text_width(str(s), size) for s in labels) + 4 if axis == "x" else size + 2
    every = max(1, math.ceil(need / cell))
    out = []
    for i in range(0, min(n, len(labels)), every):
        if axis == "x":
            out.append(_text(x0 + (i + 0.5) * cell, y0 + size + 4, str(labels[i]), "tf-tick",
                             "middle"))  # fmt: skip
        else:
            out.append(_text(x0 - 6, y0 + (i + 0.5) * cell + size * 0.35, str(labels[i]),
                             "tf-tick", "end"))  # fmt: skip
    return "".join(out)


def bars_body(panel: dict, view: dict, w: float, h: float) -> str:
    pid = panel.get("id", "")
    labels, values = panel.get("labels", []), panel.get("values", [])
    left, top, pw, ph = _plot_box(w, h)
    spec = panel.get("y", {})
    scale = view.get(f"{pid}.yscale", spec.get("scale", "linear"))
    lo, hi = domain(values, scale, spec.get("domain"), include_zero=scale != "log")
    fy = scale_map(scale, lo, hi, top + ph, top)
    y_ticks = [(fy(v), s) for v, s in _axis_ticks(scale, lo, hi, max(2, math.floor(ph / 50)))]
    n = max(1, len(values))
    band = pw / n
    size = THEME["small"]
    need = max((text_width(str(s), size) for s in labels), default=0) + 6
    every = max(1, math.ceil(need / band))
    x_ticks = [(left + (i + 0.5) * band, str(labels[i])) for i in range(0, len(labels), every)]
    out = [_frame(left, top, pw, ph, [], y_ticks, panel.get("x", {}).get("label", ""),
                  spec.get("label", ""))]  # fmt: skip
    for px, label in x_ticks:
        out.append(_text(px, top + ph + size + 4, label, "tf-tick", "middle"))
    base = fy(lo) if scale == "log" else fy(0)
    chosen = set(panel.get("highlight", []))
    c = panel.get("color", 0)
    for i, v in enumerate(values):
        py = fy(v) if v is not None else None
        if py is None:
            continue
        x = left + i * band + band * 0.15
        fill = color(c + 1) if i in chosen else color(c)
        extra = " tf-hl" if i in chosen else ""
        out.append(f'<rect class="tf-bar{extra}" data-i="{i}" x="{num(x)}" '
                   f'y="{num(min(py, base))}" width="{num(band * 0.7)}" '
                   f'height="{num(abs(base - py))}" fill="{fill}"/>')  # fmt: skip
        if band >= text_width(fmt(v), size) + 4:
            ty = min(py, base) - 4 if v >= 0 or scale == "log" else max(py, base) + size
            out.append(_text(x + band * 0.35, ty, fmt(v), "tf-note", "middle"))
    return "".join(out)


def timeline_body(panel: dict, view: dict, w: float, h: float) -> str:
    lanes = panel.get("lanes", [])
    size = THEME["small"]
    left = min(140, max((text_width(s, size) for s in lanes), default=0) + 14)
    left, top, pw, ph = _plot_box(w, h, left=left)
    spans = panel.get("spans", [])
    spec = panel.get("x", {})
    lo, hi = domain([v for s in spans for v in (s["start"], s["end"])], "linear",
                    spec.get("domain"), include_zero=True)  # fmt: skip
    fx = scale_map("linear", lo, hi, left, left + pw)
    values, k = linear_ticks(lo, hi, max(2, math.floor(pw / 80)))
    out = [_frame(left, top, pw, ph, [(fx(v), tick_label(v, k)) for v in values], [],
                  spec.get("label", ""), "")]  # fmt: skip
    lane_h = ph / max(1, len(lanes))
    for i, lane in enumerate(lanes):
        out.append(_text(left - 6, top + (i + 0.5) * lane_h + size * 0.35, lane, "tf-tick", "end"))
    chosen = set(panel.get("highlight", []))
    for i, span in enumerate(spans):
        x1, x2 = fx(span["start"]), fx(span["end"])
        y = top + span.get("lane", 0) * lane_h + lane_h * 0.15
        extra = " tf-hl" if i in chosen else ""
        out.append(f'<rect class="tf-span{extra}" data-i="{i}" x="{num(x1)}" y="{num(y)}" '
                   f'width="{num(max(1, x2 - x1))}" height="{num(lane_h * 0.7)}" '
                   f'fill="{color(span.get("color", 0))}"/>')  # fmt: skip
        label = span.get("label", "")
        if label and x2 - x1 >= text_width(label, size) + 8:
            out.append(_text((x1 + x2) / 2, y + lane_h * 0.35 + size * 0.35, label, "tf-inside",
                             "middle"))  # fmt: skip
    return "".join(out)


# ---- The tape graph -------------------------------------------------------------------------
def _owner(scope: str, collapsed: set) -> str | None:
    """The outermost collapsed scope that holds ``scope`` (``a`` holds ``a`` and ``a/b``)."""
    parts = scope.split("/") if scope else []
    for i in range(1, len(parts) + 1):
        name = "/".join(parts[:i])
        if name in collapsed:
            return name
    return None


def graph_layout(graph: dict, collapsed: list) -> dict:
    """Where each node (or the box of its collapsed scope) sits.

    Columns are the graph's layers (longest path from an input), with the columns left empty by
    collapsed scopes removed. Each name scope is a band of rows; bands are stacked like a
    skyline, so that scopes that follow one another share rows and a scope's background box
    holds only its own nodes. Returns ``items`` (id -> item) in drawing order, ``owner``
    (node id -> item id) and the size.
    """
    closed = set(collapsed)
    items: dict[str, dict] = {}
    owner: dict[str, str] = {}
    for node in graph["nodes"]:
        box = _owner(node.get("scope", ""), closed)
        if box is None:
            items[node["id"]] = {"id": node["id"], "layer": node["layer"],
                                 "band": node.get("scope", ""), "node": node}  # fmt: skip
            owner[node["id"]] = node["id"]
        else:
            key = "scope:" + box
            if key not in items:
                items[key] = {"id": key, "layer": node["layer"], "band": box, "scope": box,
                              "count": 0}  # fmt: skip
            items[key]["layer"] = min(items[key]["layer"], node["layer"])
            items[key]["count"] += node["kind"] == "op"
            owner[node["id"]] = key
    column = {layer: i for i, layer in enumerate(sorted({it["layer"] for it in items.values()}))}
    bands: dict[str, dict] = {}
    for item in items.values():
        item["col"] = column[item["layer"]]
        band = bands.setdefault(item["band"], {"used": {}, "c0": item["col"], "c1": item["col"]})
        item["local"] = band["used"].get(item["col"], 0)
        band["used"][item["col"]] = item["local"] + 1
        band["c0"], band["c1"] = min(band["c0"], item["col"]), max(band["c1"], item["col"])
    skyline: dict[int, int] = {}
    for band in bands.values():
        cols = range(band["c0"], band["c1"] + 1)
        band["offset"] = max((skyline.get(c, 0) for c in cols), default=0)
        for c in cols:
            skyline[c] = band["offset"] + max(band["used"].values())
    pad, top = THEME["pad"], THEME["pad"] + 18
    pitch_x = THEME["node_w"] + THEME["col_gap"]
    pitch_y = THEME["node_h"] + THEME["row_gap"]
    for item in items.values():
        item["x"] = pad + item["col"] * pitch_x
        item["y"] = top + (bands[item["band"]]["offset"] + item["local"]) * pitch_y
    width = pad * 2 + len(column) * pitch_x - THEME["col_gap"] if column else pad * 2
    rows = max(skyline.values(), default=0)
    height = top + rows * pitch_y - THEME["row_gap"] + pad if rows else top + pad
    return {"items": items, "owner": owner, "width": width, "height": height}


def graph_svg(graph: dict, layout: dict, state: dict) -> str:
    """The tape graph in ``layout``, showing ``state``: ``visible`` node ids, the ``active``
    node, the ``edge`` a value travels along, ``values`` (node id -> text) and ``flow``
    (``"rev"`` for adjoints, ``"fwd"`` for tangents). Nodes not yet visible are drawn hidden
    (class ``tf-hidden``), so that the live view only flips classes from one step to the next.
    """
    items, owner = layout["items"], layout["owner"]
    visible = set(state.get("visible", []))
    shown = {owner[n] for n in visible if n in owner}
    active = owner.get(state.get("active") or "")
    flow = state.get("flow", "rev")
    symbol = "ṫ" if flow == "fwd" else "ḡ"
    values = state.get("values", {})
    w, h = layout["width"], layout["height"]
    out = [f'<svg {SVG_NS} class="tfgrad-svg tf-graph" width="{num(w)}" height="{num(h)}" '
           f'viewBox="0 0 {num(w)} {num(h)}">']  # fmt: skip
    out += _scope_frames(graph, items, shown)
    out += _graph_edges(graph, layout, shown, state.get("edge"), flow)
    nw, nh = THEME["node_w"], THEME["node_h"]
    for item in items.values():
        hidden = "" if item["id"] in shown else " tf-hidden"
        on = " tf-active" if item["id"] == active else ""
        move = f'transform="translate({num(item["x"])},{num(item["y"])})"'
        if "scope" in item:
            name = item["scope"].split("/")[-1]
            ops = f"{item['count']} op" + ("" if item["count"] == 1 else "s")
            out.append(
                f'<g class="tf-node tf-box{on}{hidden}" data-scope="{esc(item["scope"])}" {move}>'
                f"<title>{esc(item['scope'])}: {ops}; click to open</title>"
                f'<rect width="{nw}" height="{nh}" rx="6"/>'
                + _text(8, 17, "▸ " + name, "tf-head")
                + _text(8, 35, ops, "tf-value")
                + "</g>"
            )
            continue
        node = item["node"]
        value = values.get(node["id"], "")
        room, size = nw - 14, THEME["font"]
        # The hover text also holds this step's derivative, which the box may cut short.
        hover = node.get("title", "") + (f"; {symbol} = {value}" if value else "")
        out.append(
            f'<g class="tf-node tf-{node["kind"]}{on}{hidden}" data-id="{esc(node["id"])}" {move}>'
            f"<title>{esc(hover)}</title>"
            f'<rect width="{nw}" height="{nh}" rx="6"/>'
            + _text(8, 17, clip(node.get("head", node["label"]), room, size), "tf-head")
            + _text(8, 35, clip("= " + node.get("value", ""), room, size), "tf-value")
            + _text(
                8, 52, clip(f"{symbol} = {value}", room, size) if value else "", f"tf-adj tf-{flow}"
            )  # fmt: skip
            + "</g>"
        )
    return "".join(out) + "</svg>"


def _scope_frames(graph: dict, items: dict, shown: set) -> list[str]:
    """A labelled background box around the items of each open name scope, hidden until one of
    them is shown (its size is fixed, so the live view only flips a class as steps go by)."""
    members: dict[str, list] = {}
    for item in items.values():
        # the scope path that holds the item: a node's own scope, or the parent of a box's
        path = item["node"].get("scope", "") if "node" in item else item["scope"]
        parts = path.split("/") if path else []
        if "scope" in item:
            parts = parts[:-1]
        for i in range(1, len(parts) + 1):
            members.setdefault("/".join(parts[:i]), []).append(item)
    out = []
    nw, nh = THEME["node_w"], THEME["node_h"]
    for scope, inside in members.items():
        depth = scope.count("/")
        x0 = min(m["x"] for m in inside) - 8 + 3 * depth
        y0 = min(m["y"] for m in inside) - 20 + 3 * depth
        x1 = max(m["x"] for m in inside) + nw + 8 - 3 * depth
        y1 = max(m["y"] for m in inside) + nh + 8 - 3 * depth
        hidden = "" if any(m["id"] in shown for m in inside) else " tf-hidden"
        out.append(
            f'<g class="tf-scope{hidden}" data-scope="{esc(scope)}"><rect x="{num(x0)}" '
            f'y="{num(y0)}" width="{num(x1 - x0)}" height="{num(y1 - y0)}" rx="8"/>'
            + _text(x0 + 6, y0 + 13, "▾ " + scope.split("/")[-1], "tf-scope-name")
            + "</g>"
        )
    return out


def _graph_edges(graph: dict, layout: dict, shown: set, hot, flow: str) -> list[str]:
    """One curve per pair of drawn items that an edge joins (edges inside a collapsed scope
    vanish into its box; several edges into a box become one)."""
    items, owner = layout["items"], layout["owner"]
    hot_pair = (owner.get(hot[0]), owner.get(hot[1])) if hot else None
    slots: dict[str, int] = {}
    for _, target, slot in graph["edges"]:
        slots[target] = max(slots.get(target, 0), slot + 1)
    out, seen = [], set()
    nw, nh = THEME["node_w"], THEME["node_h"]
    for source, target, slot in graph["edges"]:
        a, b = owner[source], owner[target]
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        ia, ib = items[a], items[b]
        into_box = "scope" in ib
        x1, y1 = ia["x"] + nw, ia["y"] + nh / 2
        x2 = ib["x"]
        y2 = ib["y"] + (nh / 2 if into_box else nh * (slot + 1) / (slots[target] + 1))
        span = ib["col"] - ia["col"]
        along_a_row = abs(y2 - y1) < nh
        lift = (nh / 2 + 14) * 4 / 3 + 20 * (span - 2) if span > 1 and along_a_row else 0
        # A cubic's middle rises 3/4 of its control points' lift: stay inside the picture.
        lift = min(lift, (min(y1, y2) - 2) * 4 / 3)
        bend = max(THEME["col_gap"] * 0.8, abs(x2 - x1) * 0.25)
        c1x, c1y, c2x, c2y = x1 + bend, y1 - lift, x2 - bend, y2 - lift
        hidden = "" if a in shown and b in shown else " tf-hidden"
        hot_class = f" tf-hot tf-{flow}" if hot_pair == (a, b) else ""
        out.append(
            f'<g class="tf-edge{hot_class}{hidden}" data-edge="{esc(a)}>{esc(b)}">'
            f'<path class="tf-curve" d="M{num(x1)} {num(y1)}C{num(c1x)} {num(c1y)} {num(c2x)} '
            f'{num(c2y)} {num(x2)} {num(y2)}"/>'
            + _tip(c2x, c2y, x2, y2, "currentColor", 8)
            + "</g>"
        )
    return out


# ---- Stand-alone pictures -------------------------------------------------------------------
def stylesheet() -> str:
    """The kit's CSS: the ``--tf-*`` variables from :data:`THEME`, then ``static/kit.css``. The
    live views load it (anywidget's ``_css``) and every stand-alone picture carries it, so both
    take their colours from one place; every rule is scoped to ``.tfgrad-svg`` or
    ``.tfgrad-widget``."""
    t = THEME
    variables = {"ink": t["ink"], "muted": t["muted"], "grid": t["grid"], "frame": t["frame"],
                 "edge": t["edge"], "scope-ink": t["scope_ink"], "reverse": t["reverse"],
                 "forward": t["forward"], "font": f"{t['font']}px", "small": f"{t['small']}px",
                 "title": f"{t['title']}px", "font-family": t["font_family"],
                 **{f"fill-{k}": v for k, v in t["fill"].items()}}  # fmt: skip
    declarations = ";".join(f"--tf-{name}:{value}" for name, value in variables.items())
    kit = (STATIC / "kit.css").read_text(encoding="utf-8")
    return f".tfgrad-svg,.tfgrad-widget{{{declarations}}}\n{kit}"


def standalone(body: str, caption: str = "") -> str:
    """``body`` (one of the kit's ``<svg>`` elements) as a picture of its own: the stylesheet
    inside, an optional caption line above, a white background."""
    head_end = body.index(">") + 1
    width = float(body.split('width="', 1)[1].split('"', 1)[0])
    height = float(body.split('height="', 1)[1].split('"', 1)[0])
    top = 26 if caption else 0
    return (
        f'<svg {SVG_NS} class="tfgrad-svg tf-standalone" width="{num(width)}" '
        f'height="{num(height + top)}" viewBox="0 0 {num(width)} {num(height + top)}" '
        f'font-family="{esc(THEME["font_family"])}">'
        + "<style><![CDATA["
        + stylesheet()
        + "]]></style>"
        + f'<rect class="tf-paper" width="{num(width)}" height="{num(height + top)}"/>'
        + (_text(THEME["pad"], 18, caption, "tf-caption") if caption else "")
        + body[:head_end].replace("<svg ", f'<svg y="{num(top)}" ', 1)
        + body[head_end:]
        + "</svg>"
    )
