"""The base every tfgrad widget stands on.

A widget is an anywidget: its front end is an ES module shipped inside this package
(``static/kit.js``, the drawing kit, followed by the widget's own view module), sent to the
browser with the widget's state, so it runs offline in JupyterLab, Notebook 7, VS Code and on
Binder, with no CDN and no Node at install time. What the base gives every widget:

- **data once, small updates after.** ``data`` holds the plain data the core produced (a tape's
  graph and frames, a figure's panels); it is sent when the widget is shown. After that a widget
  changes small traits (a step index, the view state) or sends *patches* (``extend`` a series
  with a few new points, ``set`` one field), applied to ``data`` in place on both sides, so the
  kernel's copy, the browser's copy and every later view agree.
- **one throttle.** Every message to the browser goes through :meth:`TfgradWidget.send_state`
  and :meth:`TfgradWidget.patch`: at most one message per ``min_interval`` seconds, carrying the
  latest value of every changed trait and every patch queued since the last one; the last change
  always arrives (on the event loop in a kernel, or at :meth:`TfgradWidget.flush`). The front
  end's one throttle (``throttle`` in kit.js, ``THEME["throttle_ms"]``) does the same in the
  other direction while the student drags.
- **a picture everywhere.** :meth:`TfgradWidget.snapshot` draws the current state as SVG with
  :mod:`tfgrad_widgets.svg`, the kit's Python side; the MIME bundle carries it beside the widget
  view, so GitHub, nbviewer, the docs site and a notebook opened without a kernel show the
  picture; :meth:`TfgradWidget.save` writes it to a file.
- **testable without a browser**: the state is plain data (``get_state()``), the snapshot is
  a string, and the messages can be counted on ipywidgets' dummy comm.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import html
import json
import math
import time
from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from .svg import STATIC, stylesheet
from .theme import THEME

__all__ = ["TfgradWidget", "esm_source", "plain"]


@cache
def esm_source(view: str) -> str:
    """The front end of a widget: ``THEME``, the kit (``static/kit.js``), then the view module
    ``static/<view>`` (which exports the anywidget ``render``)."""
    kit = (STATIC / "kit.js").read_text(encoding="utf-8")
    module = (STATIC / view).read_text(encoding="utf-8")
    return f"const THEME = {json.dumps(THEME)};\n{kit}\n{module}"


def plain(value: Any) -> Any:
    """``value`` as JSON data: arrays and NumPy numbers become lists and floats, tuples lists,
    NaN and infinities ``None`` (JSON has none; the kit draws ``None`` as a gap)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"widget data must be JSON-like (dicts, lists, numbers, text): got {value!r}")


class TfgradWidget(anywidget.AnyWidget):
    """The base: plain ``data`` sent once, patches and small traits after, one throttle, and a
    static SVG snapshot of the current state in the MIME bundle.

    Subclasses set ``_esm = esm_source("<view>.js")`` and implement :meth:`snapshot`.
    """

    _css = stylesheet()
    data = traitlets.Dict().tag(sync=True)
    # The width the front end draws at, reported by it (and kept when it changes), so that
    # the snapshot is drawn at the size the student saw.
    width = traitlets.Int(THEME["width"]).tag(sync=True)

    def __init__(self, *, min_interval: float = 0.05, **kwargs: Any) -> None:
        # Set before anywidget's __init__, which already sends state (its own traits).
        self.min_interval = min_interval
        self._last_send = -math.inf
        self._pending_keys: set[str] = set()
        self._pending_patches: list[dict] = []
        self._timer: asyncio.TimerHandle | None = None
        super().__init__(**kwargs)
        # Opening the comm sent the whole state: nothing queued while constructing is news.
        self._cancel_timer()
        self._pending_keys.clear()
        self._pending_patches.clear()
        self._last_send = -math.inf

    # ---- The picture --------------------------------------------------------------------------
    def snapshot(self) -> str:
        """The current state as a stand-alone SVG document (the kit's Python side)."""
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write :meth:`snapshot` to ``path`` (an ``.svg`` file) and return the path."""
        path = Path(path)
        path.write_text(self.snapshot(), encoding="utf-8")
        return path

    def _repr_mimebundle_(self, **kwargs: Any):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        # Renderers that run the widget show the widget; the others fall back to the picture:
        # as SVG (GitHub, nbviewer, the docs site), and as an <img> of that SVG in HTML, for
        # JupyterLab showing a notebook it does not trust (one just cloned, not yet run): it
        # renders neither widgets nor SVG then, only sanitised HTML, and an image cannot run
        # anything.
        picture = self.snapshot()
        return {
            **data,
            "text/plain": repr(self),
            "image/svg+xml": picture,
            "text/html": picture_html(picture, repr(self)),
        }, metadata

    # ---- The throttle: every message to the browser passes here -------------------------------
    def send_state(self, key: str | list[str] | None = None) -> None:
        if key is None:  # the whole state (a view asked for it): it holds every patch too
            self._cancel_timer()
            self._pending_keys.clear()
            self._pending_patches.clear()
            self._send_now(super().send_state)
            return
        self._pending_keys.update([key] if isinstance(key, str) else key)
        self._schedule()

    def patch(self, *patches: dict) -> None:
        """Apply patches to ``data`` here and, throttled, in the browser.

        A patch is ``{"op": "extend", "path": [...], "values": [...]}`` (append to the list at
        ``path``) or ``{"op": "set", "path": [...], "value": ...}``; a path is a list of keys and
        indices into ``data``.
        """
        for p in patches:
            p = plain(p)
            # data gets its own copy: a list that a "set" put there and a later "extend" grows
            # must not grow the queued patch too (the browser would get the points twice)
            apply_patch(self.data, copy.deepcopy(p))
            self._pending_patches.append(p)
        self._schedule()

    def flush(self) -> None:
        """Send what the throttle is holding back, now."""
        self._cancel_timer()
        keys, patches = sorted(self._pending_keys), self._pending_patches
        self._pending_keys, self._pending_patches = set(), []
        if keys:
            self._send_now(super().send_state, keys)
        if patches:
            self._send_now(self.send, {"patches": patches})

    def _send_now(self, send, *args) -> None:
        self._last_send = time.monotonic()
        send(*args)

    def _schedule(self) -> None:
        wait = self.min_interval - (time.monotonic() - self._last_send)
        if wait <= 0:
            self.flush()
            return
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no event loop (plain Python): flush() sends what is held back
            self._timer = loop.call_later(wait, self.flush)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def picture_html(svg: str, alt: str) -> str:
    """An ``<img>`` showing ``svg`` (a data URI), never wider than the page."""
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img src="{uri}" alt="{html.escape(alt)}" style="max-width: 100%; height: auto">'


def apply_patch(data: Any, patch: dict) -> None:
    """One patch (see :meth:`TfgradWidget.patch`) applied to ``data`` in place; the front end's
    ``applyPatch`` does the same."""
    *path, last = patch["path"]
    target = data
    for key in path:
        target = target[key]
    if patch["op"] == "extend":
        target[last].extend(patch["values"])
    elif patch["op"] == "set":
        target[last] = patch["value"]
    else:
        raise ValueError(f"unknown patch op {patch['op']!r}: use 'extend' or 'set'")
