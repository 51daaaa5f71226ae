"""TapeWidget: watch a tape being recorded, then swept backwards (or a forward pass).

State lives in two traitlets (``mode``, ``step``); the frames come from
:func:`tfgrad.viz.trace_tape`; drawing happens in :mod:`tfgrad_widgets.svg`; the controls are
arranged by :func:`_controls`. Redraws are throttled: however fast the slider or the play
button moves, the view is redrawn at most once per ``min_interval`` seconds, and the last
step always gets drawn.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

import ipywidgets as w
import traitlets

from tfgrad.viz import Frame, TapeGraph, graph_of_tape, trace_tape

from .svg import render_svg

__all__ = ["TapeWidget"]

MODES = {"reverse": "reverse mode: record, then sweep", "forward": "forward mode: tangents"}


class TapeWidget(w.VBox):
    """The tape of ``f(*args)``, step by step.

    >>> from tfgrad_widgets import TapeWidget
    >>> widget = TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)
    >>> widget.n_steps, widget.gradients
    (7, {'a': '4', 'b': '2'})
    >>> widget.step = widget.n_steps - 1   # the end of the sweep
    >>> "ḡ = 4" in widget.view.value
    True
    """

    mode = traitlets.Enum(list(MODES), default_value="reverse")
    step = traitlets.Int(0)

    def __init__(self, f: Callable | None = None, *args: Any, graph: TapeGraph | None = None,
                 forward_input: int = 0, min_interval: float = 0.05, **kwargs):  # fmt: skip
        if graph is None:
            if f is None:
                raise TypeError("TapeWidget needs a function and its arguments, or graph=...")
            graph = trace_tape(f, *args, forward_input=forward_input)
        self.graph = graph
        self.min_interval = min_interval
        self.renders = 0  # how many times the view was redrawn (the throttle's effect)
        self._last_render = -float("inf")
        self._pending: asyncio.TimerHandle | None = None
        self._dirty = False
        self.caption = w.HTML()
        self.view = w.HTML(layout=w.Layout(overflow="auto", max_height="640px"))
        self.controls = _controls(self)
        super().__init__([self.caption, self.view, self.controls], **kwargs)
        self.add_class("tfgrad-tape-widget")
        self._draw()

    @classmethod
    def from_tape(cls, tape, target, **kwargs) -> TapeWidget:
        """A widget for a tape recorded elsewhere (sweeps ``target``: a non-persistent tape
        is used up)."""
        return cls(graph=graph_of_tape(tape, target), **kwargs)

    # ---- State ----
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
    def gradients(self) -> dict[str, str]:
        """The gradient reaching each input at the end of the sweep."""
        return dict(self.graph.gradients)

    @traitlets.validate("step")
    def _clamp_step(self, proposal):
        return max(0, min(proposal["value"], self.n_steps - 1))

    @traitlets.observe("mode")
    def _mode_changed(self, change):
        self.step = 0
        self.slider.max = max(self.n_steps, 1)
        self.play.max = self.slider.max
        self._request_draw()

    @traitlets.observe("step")
    def _step_changed(self, change):
        self._request_draw()

    # ---- Throttled drawing ----
    def _request_draw(self) -> None:
        wait = self.min_interval - (time.monotonic() - self._last_render)
        if wait <= 0:
            self._draw()
            return
        self._dirty = True
        if self._pending is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no event loop (plain Python): flush() draws the latest state
            self._pending = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        """Draw the latest state now if a throttled redraw is waiting."""
        self._pending = None
        if self._dirty:
            self._draw()

    def _draw(self) -> None:
        self._dirty = False
        self._last_render = time.monotonic()
        self.renders += 1
        frame = self.frame
        step_text = f"step {self.step + 1} of {self.n_steps}" if self.n_steps else "no steps"
        caption = frame.caption if frame is not None else ""
        self.caption.value = f"<b>{MODES[self.mode]}</b> · {step_text} · {caption}"
        self.view.value = render_svg(self.graph, frame)


def _controls(widget: TapeWidget) -> w.Box:
    """Back / play / forward, a step slider, a speed setting and the mode toggle."""
    last = max(widget.n_steps, 1)  # controls count steps from 1, as the caption does
    back = w.Button(icon="step-backward", tooltip="step back", layout=w.Layout(width="42px"))
    ahead = w.Button(icon="step-forward", tooltip="step forward", layout=w.Layout(width="42px"))
    play = w.Play(value=1, min=1, max=last, interval=700, description="play")
    slider = w.IntSlider(value=1, min=1, max=last, description="step", continuous_update=True)
    speed = w.FloatLogSlider(value=700, base=10, min=2, max=3.5, step=0.01,
                             description="ms/step", readout_format=".0f")  # fmt: skip
    mode = w.ToggleButtons(options=[("reverse", "reverse"), ("forward", "forward")],
                           value=widget.mode, tooltips=list(MODES.values()))  # fmt: skip
    back.add_class("tfgrad-step-back")
    ahead.add_class("tfgrad-step-forward")
    back.on_click(lambda _: setattr(widget, "step", widget.step - 1))
    ahead.on_click(lambda _: setattr(widget, "step", widget.step + 1))
    w.jslink((play, "value"), (slider, "value"))  # play drives the slider in the browser
    traitlets.link(
        (slider, "value"), (widget, "step"), transform=(lambda v: v - 1, lambda s: s + 1)
    )
    traitlets.dlink((speed, "value"), (play, "interval"), transform=int)
    traitlets.link((mode, "value"), (widget, "mode"))
    widget.back_button, widget.forward_button = back, ahead
    widget.play, widget.slider, widget.speed, widget.mode_toggle = play, slider, speed, mode
    return w.VBox([w.HBox([back, play, ahead, slider]), w.HBox([mode, speed])])
