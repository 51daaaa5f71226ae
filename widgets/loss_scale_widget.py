"""LossScaleWidget: dynamic loss scaling, live or replayed, on the ChartWidget's panels (no
JavaScript of its own).

Two panels: the loss scale on a log axis, a cross at each step whose gradients overflowed
(``found_inf``: the step was skipped and the scale backed off), and the loss beside it, a cross
at each skipped step. The figure's title counts the overflows, the skipped steps and the growth
events, with the current scale. Three ways to feed it:

- **live**: ``widget.update(step, scale=..., found_inf=..., loss=...)`` once a step, or the
  widget itself as a training loop's callback ``widget(step, info)`` (``nn.fit``'s signature,
  ``info`` holding ``"loss"``, ``"scale"``, ``"found_inf"``): each step is a few small
  patches (throttled), never the whole series again;
- **a run it restarts**: ``LossScaleWidget(run=fn)`` shows sliders for the scaler's config
  (``initial_scale``, ``growth_interval``, ``growth_factor``, ``backoff_factor``, as PyTorch's
  ``GradScaler`` names them) and a *run again* button; a change clears the panels and calls
  ``fn(config, widget)``, which trains and feeds the widget as above;
- **a replay**: ``LossScaleWidget.replay(metrics, losses)`` draws a recorded
  ``stability_metrics()`` (a dict or the amp module's dataclass: ``current_scale``,
  ``overflow_count``, ``skipped_steps``, ``growth_events``, ``scale_history`` of per-step
  ``{"step", "scale", "found_inf", "skipped"}``) without training.

This module never imports ``tfgrad.amp``: it draws plain numbers, whoever produced them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from .chart_widget import ChartWidget
from .svg import fmt

__all__ = ["LossScaleWidget", "DEFAULT_CONFIG"]

# PyTorch GradScaler's defaults, except the growth interval (2000 steps is longer than a demo).
DEFAULT_CONFIG = {"initial_scale": 2.0**16, "growth_interval": 50, "growth_factor": 2.0,
                  "backoff_factor": 0.5}  # fmt: skip
CONFIG_KEYS = tuple(DEFAULT_CONFIG)
METRIC_KEYS = ("current_scale", "overflow_count", "skipped_steps", "growth_events",
               "scale_history")  # fmt: skip


def _field(record: Any, name: str) -> Any:
    """``record[name]`` for a dict, ``record.name`` for a dataclass (the amp module's)."""
    return record[name] if isinstance(record, Mapping) else getattr(record, name)


def _log2(value: float) -> float:
    return round(math.log2(value), 6)


class LossScaleWidget(ChartWidget):
    """The loss scale of a mixed-precision run (log axis, overflows marked), the loss beside it.

    ``run(config, widget)``, if given, (re)starts a run with ``config`` (the keys of
    :data:`DEFAULT_CONFIG`) and feeds ``widget``; the controls change ``config`` and call it
    again; ``start=False`` waits for the first control change instead of running at once.

    >>> from tfgrad_widgets import LossScaleWidget
    >>> w = LossScaleWidget()
    >>> for step, (scale, inf) in enumerate([(8.0, False), (8.0, True), (4.0, False)]):
    ...     w.update(step, scale=scale, found_inf=inf, loss=1.0 / (step + 1))
    >>> w.counts
    {'steps': 3, 'overflows': 1, 'skipped': 1, 'growths': 0}
    >>> w.layer("scale", "scale")["markers"]   # the cross at the overflow step
    [1]
    """

    def __init__(
        self,
        run: Callable[[dict, LossScaleWidget], Any] | None = None,
        *,
        config: Mapping | None = None,
        start: bool = True,
        title: str = "Dynamic loss scaling",
        **kwargs: Any,
    ) -> None:
        unknown = set(config or {}) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"LossScaleWidget: config takes {list(CONFIG_KEYS)}; got unknown "
                             f"{sorted(unknown)}")  # fmt: skip
        self.run = run
        self.config = {**DEFAULT_CONFIG, **(config or {})}
        self.heading = title
        self.metrics: dict | None = None  # a replay's recorded totals
        self._reset_counts()
        figure = {
            "title": self._title(),
            "columns": 2,
            "controls": self._controls(),
            "panels": [
                {"id": "scale", "kind": "xy", "title": "loss scale (× an overflow)",
                 "legend": "below", "x": {"label": "step"},
                 "y": {"label": "scale", "scale": "log"},
                 "layers": [{"id": "scale", "x": [], "y": [], "color": 0, "label": "loss scale",
                             "markers": [], "marker_label": "overflow (skipped)"}]},
                {"id": "loss", "kind": "xy", "title": "loss (× a skipped step)",
                 "legend": "below", "x": {"label": "step"}, "y": {"label": "loss"},
                 "layers": [{"id": "loss", "x": [], "y": [], "color": 1, "label": "loss",
                             "markers": [], "marker_label": "skipped"}]},
            ],
        }  # fmt: skip
        super().__init__(figure, **kwargs)
        if run is not None:
            for key in ("initial_scale_log2", *CONFIG_KEYS[1:]):
                self.on_view(key, self._control_changed)
            self.on_view("restart", lambda _clicks: self.restart())
            if start:
                self.restart()

    # ---- The figure ---------------------------------------------------------------------
    def _controls(self) -> list:
        toggle = {"id": "logloss", "kind": "toggle", "label": "log loss", "key": "loss.yscale",
                  "values": ["linear", "log"]}  # fmt: skip
        if self.run is None:
            return [toggle]
        c = self.config
        return [
            {"id": "initial_scale_log2", "kind": "slider", "label": "initial scale log₂",
             "min": 0, "max": 24, "step": 1, "value": _log2(c["initial_scale"])},
            {"id": "growth_interval", "kind": "slider", "label": "growth interval", "min": 1,
             "max": max(200, c["growth_interval"]), "step": 1, "value": c["growth_interval"]},
            {"id": "growth_factor", "kind": "slider", "label": "growth factor", "min": 1.25,
             "max": 4, "step": 0.25, "value": c["growth_factor"]},
            {"id": "backoff_factor", "kind": "slider", "label": "backoff factor", "min": 0.1,
             "max": 0.9, "step": 0.05, "value": c["backoff_factor"]},
            {"id": "restart", "kind": "button", "label": "run again"},
            toggle,
        ]  # fmt: skip

    def _title(self) -> str:
        c = self.counts
        if not c["steps"]:
            return f"{self.heading}: no steps yet"
        return (f"{self.heading}: scale {fmt(self.current_scale)} at step {fmt(self.last_step)}"
                f" · {c['overflows']} overflows · {c['skipped']} skipped · "
                f"{c['growths']} growths")  # fmt: skip

    def _reset_counts(self) -> None:
        self.counts = {"steps": 0, "overflows": 0, "skipped": 0, "growths": 0}
        self.current_scale: float | None = None
        self.last_step: float | None = None

    # ---- Live -----------------------------------------------------------------------------
    def update(
        self,
        step: float,
        *,
        scale: float,
        found_inf: bool = False,
        loss: float | None = None,
        skipped: bool | None = None,
    ) -> None:
        """One training step: the scale it used, whether its gradients overflowed (``skipped``
        defaults to ``found_inf``, as GradScaler skips exactly those steps), and its loss.
        A scale above the last one counts as a growth event. A few small patches."""
        scale = float(scale)
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"LossScaleWidget.update: the scale must be a positive finite "
                             f"number (got {scale!r} at step {step!r})")  # fmt: skip
        found_inf = bool(found_inf)
        skipped = found_inf if skipped is None else bool(skipped)
        c = self.counts
        if self.current_scale is not None and scale > self.current_scale:
            c["growths"] += 1
        index = c["steps"]
        c["steps"] += 1
        c["overflows"] += found_inf
        c["skipped"] += skipped
        self.current_scale, self.last_step = scale, step
        # one step, one message: every patch of it goes to patch() at once
        patches = self._extend("scale", x=[step], y=[scale])
        if found_inf:
            patches += self._extend("scale", markers=[index])
        if loss is not None:
            if skipped:
                patches += self._extend("loss", markers=[len(self.layer("loss", "loss")["x"])])
            # a non-finite loss (the overflow can be in the loss itself) is drawn as a gap
            patches += self._extend("loss", x=[step], y=[float(loss)])
        self.patch(*patches, {"op": "set", "path": ["title"], "value": self._title()})

    def _extend(self, panel: str, **columns: list) -> list:
        """The patches appending to the one layer of ``panel`` (it shares the panel's id)."""
        path = ["panels", self._panel_index(panel), "layers", 0]
        return [{"op": "extend", "path": [*path, key], "values": values}
                for key, values in columns.items()]  # fmt: skip

    def callback(self, step: float, info: Mapping) -> None:
        """A training loop's callback, ``(step, info)`` with ``info["scale"]``,
        ``info["found_inf"]`` and ``info["loss"]`` (``nn.fit``'s signature). ``fit``'s call at
        the end of an epoch (``info["end_of_epoch"]``) repeats its last step: not drawn again."""
        if info.get("end_of_epoch", False):
            return
        self.update(step, scale=info["scale"], found_inf=info.get("found_inf", False),
                    loss=info.get("loss"), skipped=info.get("skipped"))  # fmt: skip

    __call__ = callback

    def clear(self) -> None:
        """Empty both panels and the counts (a few small patches)."""
        self._reset_counts()
        self.set_layer("scale", "scale", x=[], y=[], markers=[])
        self.set_layer("loss", "loss", x=[], y=[], markers=[])
        self.patch({"op": "set", "path": ["title"], "value": self._title()})

    # ---- A run it restarts ------------------------------------------------------------------
    def restart(self, **config: Any) -> None:
        """Clear the panels, update ``config`` with ``config``, and call ``run(config, self)``."""
        if self.run is None:
            raise ValueError(
                "LossScaleWidget.restart needs a run: LossScaleWidget(run=fn), "
                "with fn(config, widget) training and calling widget.update"
            )
        unknown = set(config) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"LossScaleWidget.restart takes {list(CONFIG_KEYS)}; got "
                             f"{sorted(unknown)}")  # fmt: skip
        self.config.update(config)
        self.clear()
        self.run(dict(self.config), self)
        self.flush()

    def _control_changed(self, _value: Any) -> None:
        view = self.view
        config = {key: view[key] for key in CONFIG_KEYS[1:] if key in view}
        if "initial_scale_log2" in view:
            config["initial_scale"] = 2.0 ** view["initial_scale_log2"]
        if "growth_interval" in config:
            config["growth_interval"] = int(config["growth_interval"])
        self.restart(**config)

    # ---- A replay --------------------------------------------------------------------------
    @classmethod
    def replay(cls, metrics: Any, losses: Sequence | Mapping | None = None,
               **kwargs: Any) -> LossScaleWidget:  # fmt: skip
        """A widget drawing a recorded ``stability_metrics()`` (no training, no controls but the
        log-loss toggle). ``losses`` is one loss per entry of ``scale_history``, or a dict from
        step to loss. The title's counts are the metrics' own (the history may be shorter);
        ``widget.metrics`` keeps them, ``current_scale`` (the scale the next step would use)
        included."""
        has = metrics.__contains__ if isinstance(metrics, Mapping) else (
            lambda key: hasattr(metrics, key))  # fmt: skip
        missing = [key for key in METRIC_KEYS if not has(key)]
        if missing:
            raise ValueError(f"LossScaleWidget.replay: metrics lack {missing}; pass what "
                             "stability_metrics() returns")  # fmt: skip
        history = list(_field(metrics, "scale_history"))
        if isinstance(losses, Mapping):
            by_step = losses
        elif losses is not None:
            if len(losses) != len(history):
                raise ValueError(f"LossScaleWidget.replay: {len(losses)} losses for "
                                 f"{len(history)} steps of scale_history; pass one a step, or a "
                                 "dict from step to loss")  # fmt: skip
            by_step = {_field(r, "step"): loss for r, loss in zip(history, losses)}
        else:
            by_step = {}
        widget = cls(**kwargs)
        widget.metrics = {k: _field(metrics, k) for k in METRIC_KEYS if k != "scale_history"}
        for record in history:
            step = _field(record, "step")
            widget.update(step, scale=_field(record, "scale"),
                          found_inf=_field(record, "found_inf"),
                          skipped=_field(record, "skipped"), loss=by_step.get(step))  # fmt: skip
        widget.counts.update(overflows=int(_field(metrics, "overflow_count")),
                             skipped=int(_field(metrics, "skipped_steps")),
                             growths=int(_field(metrics, "growth_events")))  # fmt: skip
        widget.patch({"op": "set", "path": ["title"], "value": widget._title()})
        widget.flush()
        return widget

    def __repr__(self) -> str:
        c = self.counts
        return f"LossScaleWidget(steps={c['steps']}, overflows={c['overflows']})"
