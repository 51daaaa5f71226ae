"""A blank Chromium page holding a widget's front end, for tests without JupyterLab: the module
exactly as the widget ships it (``esm_source``), its stylesheet, and a stand-in for the
anywidget model (get/set/on/save_changes, as anywidget gives a view), so a view can be rendered
and driven, and the kit's functions called, from Python."""

from __future__ import annotations

import json

from tfgrad_widgets.base import TfgradWidget

FAKE_MODEL_JS = """
window.fakeModel = (state) => {
  const handlers = {};
  return {
    saves: 0,
    get: (key) => state[key],
    set(key, value) { state[key] = value; for (const f of handlers["change:" + key] || []) f(); },
    on(event, f) { (handlers[event] ||= []).push(f); },
    off() {},
    save_changes() { this.saves += 1; },
    send() {},
    receive(msg) { for (const f of handlers["msg:custom"] || []) f(msg); },
  };
};
// canonical form of an SVG tree: tag, attributes (class tokens sorted), text; for comparing a
// view's live DOM with markup parsed from a string
window.canonical = (node, skipRootSize = true) => {
  const walk = (el, root) => {
    const attributes = {};
    for (const a of el.attributes) {
      if (root && skipRootSize && (a.name === "width" || a.name === "height")) continue;
      const tokens = a.value.split(/\\s+/).filter(Boolean).sort().join(" ");
      attributes[a.name] = a.name === "class" ? tokens : a.value;
    }
    const children = [...el.children].map((c) => walk(c, false));
    const text = el.children.length ? "" : el.textContent;
    return { tag: el.tagName.toLowerCase(), attributes, text, children };
  };
  return walk(node, true);
};
window.parseSVG = (markup) =>
  new DOMParser().parseFromString(markup, "image/svg+xml").documentElement;
"""


def load_front_end(page, widget_class: type[TfgradWidget], width: int = 800) -> None:
    """Put ``widget_class``'s front end into a blank ``page``: ``window.kit`` holds the kit's
    functions and ``window.view`` the module's default export."""
    css = widget_class._css
    esm = widget_class._esm
    exports = ("figureSVG, graphLayout, graphSVG, foldFrames" if "foldFrames" in esm
               else "figureSVG, graphLayout, graphSVG")  # fmt: skip
    page.set_content(f'<html><body style="margin:0"><div id="root" style="width:{width}px">'
                     "</div></body></html>")  # fmt: skip
    page.add_style_tag(content=css)
    page.add_script_tag(content=FAKE_MODEL_JS)
    page.add_script_tag(
        type="module",
        content=esm.replace("export default ", "window.view = ")
        + f"\nwindow.kit = {{{exports}}};\nwindow.kitReady = true;",
    )
    page.wait_for_function("() => window.kitReady === true")


def render_view(page, state: dict) -> None:
    """Render the loaded view with a stand-in model holding ``state`` (JSON)."""
    page.evaluate(
        """(state) => {
        window.model = fakeModel(state);
        if (view.initialize) view.initialize({ model });
        window.cleanup = view.render({ model, el: document.getElementById("root") });
    }""",
        json.loads(json.dumps(state)),
    )


def after_redraw(page) -> None:
    """Wait until the view has drawn: a chart redraws in its next animation frame."""
    page.evaluate(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )


def live_equals(page, markup: str, selector: str = "#root svg.tf-figure") -> bool:
    """Whether the live drawing at ``selector`` is the SVG ``markup`` (both canonicalised)."""
    return page.evaluate(
        """([selector, markup]) => JSON.stringify(canonical(document.querySelector(selector)))
            === JSON.stringify(canonical(parseSVG(markup)))""",
        [selector, markup],
    )
