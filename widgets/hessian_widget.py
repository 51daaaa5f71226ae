"""HessianWidget: exact curvature, drawn with the ChartWidget's panels (no JavaScript of its own).

- **Two variables** (``HessianWidget(f, x0, bounds=...)``): contours of ``f``, the contours of
  its quadratic model at a point the student drags, the Hessian's eigenvectors (each scaled by
  its eigenvalue) from that point, the Newton step ``-H⁻¹g`` and a gradient step ``-rate·g``;
  beside it, the eigenvalues as bars (their values on them), the two step lengths in that
  panel's title. A drag writes
  the point into ``view`` (the kit's draggable handle); the kernel recomputes everything with
  ``tfgrad.grad`` and ``tfgrad.hessian`` (exact, never finite differences) and answers with a
  few ``set`` patches.
- **n variables** (``HessianWidget(f, x)`` with 2 < n <= ``max_heatmap``): the exact Hessian,
  all of it, as a heat map beside its eigenvalue spectrum as bars (for n above ``max_bars``, a
  histogram of the exact eigenvalues).
- **Many variables** (n > ``max_heatmap``): the Hessian is never formed (n² numbers, n HVPs);
  the picture is its eigenvalue density by stochastic Lanczos quadrature
  (:func:`tfgrad.second_order.hessian_density`: ``probes × lanczos_steps`` HVPs), with the
  largest Ritz value marked and the trace estimate in the title. The titles say which of the
  two pictures it is, and why.
- **Training**: ``widget.track(step, {"top_eigenvalue": ..., "trace": ...})`` appends a point to
  each series of a line panel (added by the first call): one small patch per call.

``widget.data["local"]`` holds the plain numbers drawn: the point, f, the gradient, the exact
Hessian, its eigenvalues and eigenvectors (columns), and for two variables both steps and
their lengths; past ``max_heatmap``, the density's summary (largest and smallest Ritz values,
the trace estimate and its standard error, the HVPs spent). ``widget.exact`` keeps, in the
kernel, everything computed at the current point.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

import tfgrad as tg
from tfgrad.second_order import hessian_density

from .chart_widget import ChartWidget, contour_layer
from .svg import fmt

__all__ = ["HessianWidget"]

TRACKED = {"top_eigenvalue": "top eigenvalue", "trace": "trace"}


class HessianWidget(ChartWidget):
    """The exact Hessian of a scalar ``f`` of a flat vector, at a point the student moves.

    ``f`` takes one 1-D tensor of n variables and returns a scalar. For n = 2 the figure is the
    landscape (``bounds=((x_lo, x_hi), (y_lo, y_hi))``, default ``x0 ± 2``; contour ``levels``
    default to quantiles of f on the grid) with the local picture at ``x0``; ``rate`` is the
    gradient step's step size. For 2 < n <= ``max_heatmap`` it is the exact Hessian at ``x0``
    and its spectrum; past ``max_heatmap`` the eigenvalue density by stochastic Lanczos
    quadrature (``probes`` Rademacher probes of ``lanczos_steps`` steps each, ``seed``), for
    which H is never formed.

    >>> import tfgrad as tg
    >>> from tfgrad_widgets import HessianWidget
    >>> w = HessianWidget(lambda v: v[0] ** 2 + 3 * v[1] ** 2, [1.0, 1.0])
    >>> w.data["local"]["eigenvalues"]
    [2.0, 6.0]
    >>> w.set_view(**{"landscape.point": [0.5, 0.5]})   # what a drag does
    >>> w.data["local"]["newton_step"]   # lands on the minimum of a quadratic
    [-0.5, -0.5]
    """

    def __init__(
        self,
        f: Callable,
        x0: Any,
        bounds: Any = None,
        *,
        levels: Any = None,
        rate: float = 0.1,
        grid: int = 41,
        max_bars: int = 32,
        max_heatmap: int = 48,
        probes: int = 10,
        lanczos_steps: int = 80,
        seed: int = 0,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.f = f
        x0 = np.asarray(x0.numpy() if hasattr(x0, "numpy") else x0, dtype=float)
        if x0.ndim != 1 or x0.size < 2:
            raise ValueError(f"HessianWidget: x0 must be a flat vector of at least 2 variables "
                             f"(got shape {x0.shape}); ravel a parameter array first")  # fmt: skip
        self.n = x0.size
        self.rate = float(rate)
        self.max_bars = int(max_bars)
        self.max_heatmap = int(max_heatmap)
        self.slq = {"num_probes": int(probes), "lanczos_steps": int(lanczos_steps),
                    "seed": seed, "grid_size": 256}  # fmt: skip
        # Two variables and small n: the exact Hessian; past max_heatmap: its density only.
        self.exact_hessian = self.n == 2 or self.n <= self.max_heatmap
        if self.n == 2:
            figure = self._landscape_figure(x0, bounds, levels, grid, title)
        elif self.exact_hessian:
            figure = self._matrix_figure(x0, title)
        else:
            figure = self._density_figure(x0, title)
        super().__init__(figure, **kwargs)
        if self.n == 2:
            self.on_view("landscape.point", self.move_to)

    # ---- Exact numbers at a point ---------------------------------------------------------
    def local(self, point: Any) -> dict:
        """f, its gradient, exact Hessian and eigen-decomposition at ``point``; for two
        variables also the Newton step (``None`` where H is singular) and the gradient step."""
        p = tg.tensor(np.asarray(point, dtype=float))
        value = float(self.f(p))
        g = tg.grad(self.f)(p).numpy()
        hess = tg.hessian(self.f)(p).numpy()
        eigenvalues, vectors = np.linalg.eigh(hess)
        out = {"point": p.numpy(), "value": value, "gradient": g, "hessian": hess,
               "eigenvalues": eigenvalues, "eigenvectors": vectors}  # fmt: skip
        if self.n == 2:
            scale = max(np.abs(eigenvalues).max(), 1e-300)
            singular = np.abs(eigenvalues).min() <= 1e-12 * scale
            newton = None if singular else -np.linalg.solve(hess, g)
            step = -self.rate * g
            out.update(newton_step=newton, gradient_step=step,
                       newton_length=None if newton is None else float(np.linalg.norm(newton)),
                       gradient_length=float(np.linalg.norm(step)))  # fmt: skip
        return out

    # ---- Two variables ----------------------------------------------------------------------
    def _landscape_figure(self, x0, bounds, levels, grid, title) -> dict:
        if bounds is None:
            bounds = ((x0[0] - 2, x0[0] + 2), (x0[1] - 2, x0[1] + 2))
        (x_lo, x_hi), (y_lo, y_hi) = bounds
        self.xs, self.ys = np.linspace(x_lo, x_hi, grid), np.linspace(y_lo, y_hi, grid)
        self.span = min(x_hi - x_lo, y_hi - y_lo)
        z = self._grid_values()
        if levels is None:
            finite = z[np.isfinite(z)]
            levels = np.unique(np.quantile(finite, [0.02, 0.06, 0.15, 0.3, 0.5, 0.7, 0.9]))
        self.levels = [float(v) for v in levels]
        local = self.local(x0)
        layers = self._local_layers(local)
        self.exact = local
        return {
            "title": title or "The exact Hessian: curvature, the quadratic model, Newton's step",
            "columns": 2,
            "panels": [
                {"id": "landscape", "kind": "xy", "title": "f: drag the point", "height": 340,
                 "legend": "below",  # inside, it would cover the landscape's upper right
                 "x": {"label": "x₀", "domain": [x_lo, x_hi]},
                 "y": {"label": "x₁", "domain": [y_lo, y_hi]},
                 "layers": [
                     contour_layer(self.xs, self.ys, z, self.levels, id="f", color=7, label="f"),
                     {"id": "model", "color": 0, "dash": True, "label": "quadratic model",
                      **layers["model"]},
                     {"id": "eigenvectors", "kind": "arrow", "color": 3,
                      "label": "eigenvectors × λ", "arrows": layers["eigenvectors"]},
                     {"id": "negative", "kind": "arrow", "color": 5,
                      "label": "negative curvature × |λ|", "arrows": layers["negative"]},
                     {"id": "gradient", "kind": "arrow", "color": 2,
                      "label": f"gradient step ({fmt(self.rate)}·g)",
                      "arrows": layers["gradient"]},
                     {"id": "newton", "kind": "arrow", "color": 1, "label": "Newton step",
                      "arrows": layers["newton"]},
                     {"id": "point", "kind": "point", "x": x0[0], "y": x0[1], "color": 1},
                 ]},
                {"id": "curvature", "kind": "bars", "title": self._numbers_title(local),
                 "height": 340, "labels": ["λ₁", "λ₂"], "values": local["eigenvalues"],
                 "y": {"label": "eigenvalue of the Hessian"}},
            ],
            "local": local,
        }  # fmt: skip

    def _grid_values(self) -> np.ndarray:
        """f on the grid: in one call on a (2, N) tensor where f is elementwise in v[0], v[1]
        (checked against single calls), else point by point."""
        gx, gy = np.meshgrid(self.xs, self.ys)
        flat = np.stack([gx.ravel(), gy.ravel()])
        single = lambda i: float(self.f(tg.tensor(flat[:, i])))  # noqa: E731
        try:
            z = np.asarray(self.f(tg.tensor(flat)).numpy(), dtype=float)
            probe = [0, flat.shape[1] // 3, flat.shape[1] - 1]
            if z.shape == (flat.shape[1],) and np.allclose(z[probe], [single(i) for i in probe]):
                return z.reshape(gx.shape)
        except Exception:  # noqa: BLE001 - f need not accept a batch; fall back to one by one
            pass
        return np.array([single(i) for i in range(flat.shape[1])]).reshape(gx.shape)

    def _local_layers(self, local: dict) -> dict:
        px, py = (float(v) for v in local["point"])
        g, hess = local["gradient"], local["hessian"]
        dx, dy = np.meshgrid(self.xs - px, self.ys - py)
        model = local["value"] + g[0] * dx + g[1] * dy + 0.5 * (
            hess[0, 0] * dx * dx + 2 * hess[0, 1] * dx * dy + hess[1, 1] * dy * dy)  # fmt: skip
        # the model's contours at f's levels (to compare) and the one through the point
        levels = sorted({*self.levels, local["value"]})
        biggest = max(np.abs(local["eigenvalues"]).max(), 1e-300)
        arrows: dict[str, list] = {"eigenvectors": [], "negative": []}
        for lam, v in zip(local["eigenvalues"], local["eigenvectors"].T):
            # the larger curvature's arrow is a quarter of the view; the other in proportion
            length = 0.25 * self.span * abs(lam) / biggest
            for sign in (1, -1):
                arrows["eigenvectors" if lam >= 0 else "negative"].append(
                    {"x": px, "y": py, "dx": sign * length * v[0], "dy": sign * length * v[1]})
        newton = local["newton_step"]
        step = local["gradient_step"]
        return {
            "model": contour_layer(self.xs, self.ys, model, levels),
            **arrows,
            "gradient": [{"x": px, "y": py, "dx": step[0], "dy": step[1]}],
            "newton": [] if newton is None else [{"x": px, "y": py, "dx": newton[0],
                                                  "dy": newton[1]}],  # fmt: skip
        }

    @staticmethod
    def _numbers_title(local: dict) -> str:
        # the step lengths (the eigenvalues are on their bars): short enough for half a column
        newton = local["newton_length"]
        return (f"|Newton| {'undefined (H singular)' if newton is None else fmt(newton)} · "
                f"|gradient| {fmt(local['gradient_length'])}")  # fmt: skip

    def move_to(self, point: Any) -> None:
        """Recompute at ``point`` (what a drag does) and send the new layers as patches."""
        point = np.asarray(point, dtype=float).ravel()
        if not self.exact_hessian:
            self._move_density(point)
            return
        local = self.local(point)
        if self.n == 2:
            layers = self._local_layers(local)
            self.set_layer("landscape", "model", x=layers["model"]["x"], y=layers["model"]["y"])
            for name in ("eigenvectors", "negative", "gradient", "newton"):
                self.set_layer("landscape", name, arrows=layers[name])
            self.set_panel("curvature", values=local["eigenvalues"],
                           title=self._numbers_title(local))  # fmt: skip
        else:
            self.set_panel("hessian", **self._matrix_fields(local))
            self.set_panel("spectrum", **self._spectrum_fields(local))
        self.patch({"op": "set", "path": ["local"], "value": self._shipped(local)})

    def _move_density(self, point: np.ndarray) -> None:
        fields = self._density_fields(point)
        self.set_panel("density", title=fields["title"])
        for layer in ("density", "top"):
            self.set_layer("density", layer, x=fields[layer]["x"], y=fields[layer]["y"],
                           label=fields[layer]["label"])  # fmt: skip
        self.patch({"op": "set", "path": ["local"], "value": fields["local"]})

    # ---- n variables ------------------------------------------------------------------------
    def _matrix_figure(self, x0, title) -> dict:
        local = self.local(x0)
        return {
            "title": title or (f"The exact Hessian of f at a point: {self.n} variables "
                               f"(n ≤ {self.max_heatmap}: formed in full)"),  # fmt: skip
            "columns": 2,
            "panels": [
                {"id": "hessian", "kind": "heatmap", "height": 340, "colorbar": "∂²f/∂xᵢ∂xⱼ",
                 **self._matrix_fields(local)},
                {"id": "spectrum", "kind": "bars", "height": 340,
                 **self._spectrum_fields(local)},
            ],
            "local": self._shipped(local),
        }  # fmt: skip

    def _shipped(self, local: dict) -> dict:
        """What ``data["local"]`` holds (everything: n is at most ``max_heatmap`` here);
        ``widget.exact`` keeps the same numbers in the kernel."""
        self.exact = local
        return local

    def _matrix_fields(self, local: dict) -> dict:
        labels = [str(i) for i in range(self.n)]
        return {"values": local["hessian"], "x_labels": labels, "y_labels": labels,
                "title": f"exact Hessian, all {self.n} × {self.n}"}  # fmt: skip

    def _spectrum_fields(self, local: dict) -> dict:
        lam = local["eigenvalues"]
        if self.n <= self.max_bars:
            return {"title": f"its eigenvalues: {fmt(lam[0])} to {fmt(lam[-1])}",
                    "labels": [f"λ{i + 1}" for i in range(self.n)], "values": lam,
                    "highlight": [self.n - 1], "y": {"label": "eigenvalue"}}  # fmt: skip
        # many eigenvalues: their density, as a histogram
        counts, edges = np.histogram(lam, bins=24)
        return {"title": f"eigenvalue density: {fmt(lam[0])} to {fmt(lam[-1])}",
                "labels": [fmt((a + b) / 2) for a, b in zip(edges[:-1], edges[1:])],
                "values": counts, "highlight": [],
                "y": {"label": "eigenvalues per bin"}}  # fmt: skip

    # ---- Many variables: the density, H never formed ----------------------------------------
    def _density_figure(self, x0, title) -> dict:
        fields = self._density_fields(x0)
        return {
            "title": title or (f"The Hessian's eigenvalue density: {self.n} variables "
                               f"(n > {self.max_heatmap}: H is never formed)"),
            "panels": [
                {"id": "density", "kind": "xy", "title": fields["title"], "height": 300,
                 "legend": "below", "x": {"label": "eigenvalue"},
                 "y": {"label": "density of eigenvalues"},
                 "layers": [{"id": "density", "color": 0, **fields["density"]},
                            {"id": "top", "color": 5, "dash": True, **fields["top"]}]},
            ],
            "local": fields["local"],
        }  # fmt: skip

    def _density_fields(self, point: np.ndarray) -> dict:
        """The SLQ density at ``point`` as a line, its largest Ritz value as a dashed marker
        line, the numbers in the title; ``self.exact`` keeps the whole result."""
        point = np.asarray(point, dtype=float)
        result = hessian_density(self.f, point, **self.slq)
        value = float(self.f(tg.tensor(point)))
        top, bottom = float(result.nodes.max()), float(result.nodes.min())
        summary = {"value": value, "top_ritz": top, "bottom_ritz": bottom,
                   "trace": result.trace, "trace_std_error": result.trace_std_error,
                   "hvps": result.hvps, "method": "stochastic Lanczos quadrature"}  # fmt: skip
        self.exact = {"point": point, **summary, "density": result}
        probes, steps = self.slq["num_probes"], result.nodes.shape[1]
        return {
            "title": (f"eigenvalue density (SLQ, {result.hvps} HVPs) · trace ≈ "
                      f"{fmt(result.trace)} ± {fmt(2 * result.trace_std_error)}"),
            "density": {"x": result.grid, "y": result.density,
                        "label": f"stochastic Lanczos quadrature: {probes} probes × {steps} steps"},
            "top": {"x": [top, top], "y": [0.0, float(result.density.max())],
                    "label": f"largest Ritz value {fmt(top)} ≈ λmax"},
            "local": summary,
        }  # fmt: skip

    # ---- Training ---------------------------------------------------------------------------
    def track(self, step: float, values: dict | None = None, *, x: Any = None) -> None:
        """Append ``values["top_eigenvalue"]`` and/or ``values["trace"]`` at ``step`` to the
        training panel (added by the first call): one small patch each time. With ``x`` (the
        current parameters, a flat vector) instead, the widget computes both from the exact
        Hessian of its ``f`` there (past ``max_heatmap``: the largest Ritz value and the trace
        estimate of the density) and moves its picture to ``x``: a training loop's callback."""
        if x is not None:
            x = np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=float).ravel()
            if self.n == 2:  # the drawn point follows too (the view holds it)
                self.set_view(**{"landscape.point": x})
                if not np.allclose(self.exact["point"], x):
                    self.move_to(x)
            else:
                self.move_to(x)
            if self.exact_hessian:
                computed = {"top_eigenvalue": float(self.exact["eigenvalues"][-1]),
                            "trace": float(np.trace(self.exact["hessian"]))}  # fmt: skip
            else:  # estimates: the largest Ritz value and SLQ's trace
                computed = {"top_eigenvalue": self.exact["top_ritz"],
                            "trace": self.exact["trace"]}  # fmt: skip
            values = {**computed, **(values or {})}
        values = values or {}
        unknown = set(values) - set(TRACKED)
        if unknown or not values:
            raise ValueError(f"HessianWidget.track: values takes {sorted(TRACKED)}; "
                             f"got {sorted(values)}")  # fmt: skip
        if not any(p["id"] == "training" for p in self.data["panels"]):
            panel = {"id": "training", "kind": "xy", "title": "during training",
                     "x": {"label": "step"}, "y": {"label": "value"},
                     "layers": [{"id": key, "x": [], "y": [], "label": label, "color": i}
                                for i, (key, label) in enumerate(TRACKED.items())]}  # fmt: skip
            self.patch({"op": "extend", "path": ["panels"], "values": [panel]})
        for key, value in values.items():
            self.extend("training", key, x=[step], y=[float(value)])

    def __repr__(self) -> str:
        return f"HessianWidget(n={self.n})"
