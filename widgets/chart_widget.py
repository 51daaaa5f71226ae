"""ChartWidget: the drawing kit's panels, live, from plain data.

A figure is a dict of panels that the kit draws (:mod:`tfgrad_widgets.svg`, ``static/kit.js``),
side by side when the column is wide enough (``columns``), stacked when it is not:

``{"title": ..., "columns": 2, "panels": [...], "controls": [...]}``

- ``{"id", "kind": "xy", "title", "x": axis, "y": axis, "layers": [...], "legend"}`` (the
  legend of labelled layers: inside the plot's upper right, or ``"below"`` it, in rows that
  cover no data and add to the panel's height) with an axis
  ``{"label", "scale": "linear" | "log", "domain": [lo, hi]}`` and layers
  ``{"id", "kind": "line", "x": [...], "y": [...], "label", "markers": [indices],
  "marker_label", "dash", "color"}`` (markers: crosses at chosen points, e.g. overflow steps),
  ``{"kind": "scatter", ..., "labels", "selectable", "selected", "connect"}`` (a frontier with
  the current choice), ``{"kind": "arrow", "arrows": [{"x", "y", "dx", "dy"}]}``,
  ``{"kind": "path", "x", "y"}`` (contours: ``None`` separates pieces) and
  ``{"kind": "point", "x", "y"}`` (a point the student drags);
- ``{"id", "kind": "heatmap", "values": [[...]], "scale": "diverging" | "sequential",
  "x_labels", "y_labels", "colorbar"}``;
- ``{"id", "kind": "bars", "labels", "values", "y": axis, "highlight": [indices]}``;
- ``{"id", "kind": "timeline", "lanes": [...], "spans": [{"lane", "start", "end", "label",
  "color"}], "x": axis, "highlight": [indices]}``.

Controls write to ``view``, a small dict the front end and the kernel share: ``"toggle"``
(``{"id", "label", "key", "values": [a, b]}``, e.g. ``key="loss.yscale"``), ``"button"`` (counts
clicks under its id), ``"slider"`` (``{"id", "label", "min", "max", "step", "value"}``). The
kit itself keeps ``"<panel>.<layer>"`` there: the index of the chosen point of a selectable
scatter, the ``[x, y]`` of a dragged point; and ``"<panel>.xscale"``/``"<panel>.yscale"``.
:meth:`ChartWidget.on_view` calls back when a key changes; :meth:`ChartWidget.extend` streams
new points, :meth:`ChartWidget.set_layer` replaces a layer's fields: small patches, throttled.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import traitlets

from .base import TfgradWidget, esm_source, plain
from .svg import figure_svg, standalone

__all__ = ["ChartWidget", "contour_layer"]

PANEL_KINDS = ("xy", "heatmap", "bars", "timeline")
LAYER_KINDS = ("line", "scatter", "arrow", "path", "point")
CONTROL_KINDS = ("toggle", "button", "slider")


def _check(figure: dict) -> dict:
    """The figure as plain data, with its ids checked (a typo should fail here, not draw
    nothing in the browser)."""
    figure = plain(figure)
    seen = set()
    for panel in figure.get("panels", []):
        kind, pid = panel.get("kind", "xy"), panel.get("id")
        if kind not in PANEL_KINDS or not pid or pid in seen:
            raise ValueError(f"ChartWidget: each panel needs a unique id and a kind in "
                             f"{PANEL_KINDS}; got id={pid!r}, kind={kind!r}")  # fmt: skip
        seen.add(pid)
        layers = set()
        for layer in panel.get("layers", []):
            lid = layer.get("id")
            if layer.get("kind", "line") not in LAYER_KINDS or not lid or lid in layers:
                raise ValueError(f"ChartWidget: panel {pid!r}: each layer needs a unique id "
                                 f"and a kind in {LAYER_KINDS}; got {lid!r}")  # fmt: skip
            layers.add(lid)
        for key in ("labels", "x_labels", "y_labels", "lanes"):
            if key in panel:
                panel[key] = [str(s) for s in panel[key]]
    for control in figure.get("controls", []):
        if control.get("kind") not in CONTROL_KINDS or not control.get("id"):
            raise ValueError(f"ChartWidget: a control needs an id and a kind in "
                             f"{CONTROL_KINDS}; got {control!r}")  # fmt: skip
    return figure


class ChartWidget(TfgradWidget):
    """Panels of lines, points, arrows, heat maps, bars and timelines, drawn from plain data.

    >>> from tfgrad_widgets import ChartWidget
    >>> chart = ChartWidget({"panels": [{"id": "loss", "kind": "xy", "y": {"scale": "log"},
    ...     "layers": [{"id": "train", "x": [0, 1, 2], "y": [1.0, 0.5, 0.2]}]}]})
    >>> chart.extend("loss", "train", x=[3], y=[0.1])   # one small message, throttled
    >>> chart.layer("loss", "train")["y"]
    [1.0, 0.5, 0.2, 0.1]
    >>> "tf-line" in chart.snapshot()
    True
    """

    _esm = esm_source("chart.js")
    view = traitlets.Dict().tag(sync=True)

    def __init__(self, figure: dict, *, view: dict | None = None, **kwargs: Any) -> None:
        self._view_callbacks: dict[str, list[Callable]] = {}
        initial = {c["id"]: c["value"] for c in figure.get("controls", []) if "value" in c}
        super().__init__(data=_check(figure), view={**initial, **(view or {})}, **kwargs)

    # ---- Reading ------------------------------------------------------------------------
    def panel(self, panel: str) -> dict:
        for p in self.data["panels"]:
            if p["id"] == panel:
                return p
        raise KeyError(
            f"ChartWidget has no panel {panel!r}: {[p['id'] for p in self.data['panels']]}"
        )

    def layer(self, panel: str, layer: str) -> dict:
        return self.data["panels"][self._panel_index(panel)]["layers"][
            self._layer_index(panel, layer)
        ]

    def _panel_index(self, panel: str) -> int:
        return self.data["panels"].index(self.panel(panel))

    def _layer_index(self, panel: str, layer: str) -> int:
        for i, candidate in enumerate(self.panel(panel).get("layers", [])):
            if candidate["id"] == layer:
                return i
        raise KeyError(f"ChartWidget: panel {panel!r} has no layer {layer!r}")

    # ---- Small updates ------------------------------------------------------------------
    def extend(self, panel: str, layer: str, **columns: list) -> None:
        """Append points to a layer's columns (``x=[...]``, ``y=[...]``): live lines."""
        path = ["panels", self._panel_index(panel), "layers", self._layer_index(panel, layer)]
        self.patch(*({"op": "extend", "path": [*path, key], "values": list(values)}
                     for key, values in columns.items()))  # fmt: skip

    def set_layer(self, panel: str, layer: str, **fields: Any) -> None:
        """Replace some fields of a layer (its points, its arrows, its markers)."""
        path = ["panels", self._panel_index(panel), "layers", self._layer_index(panel, layer)]
        self.patch(*({"op": "set", "path": [*path, key], "value": value}
                     for key, value in fields.items()))  # fmt: skip

    def set_panel(self, panel: str, **fields: Any) -> None:
        """Replace some fields of a panel (a heat map's values, bars, spans, highlights)."""
        if "layers" in fields or "id" in fields or "kind" in fields:
            raise ValueError("ChartWidget.set_panel changes data, not a panel's id, kind or "
                             "layers (use set_layer for those)")  # fmt: skip
        path = ["panels", self._panel_index(panel)]
        self.patch(*({"op": "set", "path": [*path, key], "value": value}
                     for key, value in fields.items()))  # fmt: skip

    def set_view(self, **items: Any) -> None:
        """Change the shared view state (``set_view(**{"loss.yscale": "log"})``)."""
        self.view = {**self.view, **plain(items)}

    def on_view(self, key: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(value)`` whenever ``view[key]`` changes (a drag, a click, a slider)."""
        self._view_callbacks.setdefault(key, []).append(callback)

    @traitlets.observe("view")
    def _view_changed(self, change) -> None:
        old, new = change["old"] or {}, change["new"] or {}
        for key, callbacks in list(self._view_callbacks.items()):
            if key in new and old.get(key) != new[key]:
                for callback in callbacks:
                    callback(new[key])

    # ---- The picture ----------------------------------------------------------------------
    def snapshot(self) -> str:
        return standalone(figure_svg(self.data, self.view, self.width))

    def __repr__(self) -> str:
        names = ", ".join(p.get("title") or p["id"] for p in self.data.get("panels", []))
        return f"ChartWidget({names})"


def contour_layer(x: np.ndarray, y: np.ndarray, z: np.ndarray, levels, **style: Any) -> dict:
    """Contour lines of ``z`` (``z[i, j]`` at ``x[j], y[i]``) at ``levels``, as a ``path`` layer:
    marching squares, each crossing linearly interpolated along the cell's edge."""
    xs: list = []
    ys: list = []
    z = np.asarray(z, dtype=float)
    for level in levels:
        above = z >= level
        for i in range(z.shape[0] - 1):
            for j in range(z.shape[1] - 1):
                corners = ((i, j), (i, j + 1), (i + 1, j + 1), (i + 1, j))
                inside = [above[c] for c in corners]
                if all(inside) or not any(inside):
                    continue
                crossings = []
                for k in range(4):
                    (a, b), (c, d) = corners[k], corners[(k + 1) % 4]
                    if above[a, b] != above[c, d]:
                        t = (level - z[a, b]) / (z[c, d] - z[a, b])
                        crossings.append((x[b] + t * (x[d] - x[b]), y[a] + t * (y[c] - y[a])))
                # two crossings: one segment; four (a saddle): two segments
                for start in range(0, len(crossings) - 1, 2):
                    (x0, y0), (x1, y1) = crossings[start], crossings[start + 1]
                    xs += [float(x0), float(x1), None]
                    ys += [float(y0), float(y1), None]
    return {"kind": "path", "x": xs, "y": ys, **style}
