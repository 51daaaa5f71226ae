"""The LossScaleWidget in Chromium, without JupyterLab: a blank page holds the front end as it
ships (the ChartWidget's, with a stand-in model). Its figures are the same markup on both
sides; steps streamed from the kernel (patches) redraw the live view into the kernel's
snapshot; moving a slider writes the view, the kernel restarts the run with that config, and
its answer redraws the view. Screenshots land in ``$TFGRAD_ARTIFACTS`` (loss_scale_widget.png,
loss_scale_widget_restarted.png)."""

from __future__ import annotations

import pytest
from kit_page import after_redraw, live_equals, load_front_end, render_view

from tfgrad_widgets import LossScaleWidget, gallery
from tfgrad_widgets.svg import figure_svg

pytestmark = pytest.mark.timeout(300, func_only=True)

CONFIG = {"initial_scale": 2.0**16, "growth_interval": 10, "growth_factor": 2.0,
          "backoff_factor": 0.5}  # fmt: skip
MAGNITUDES = gallery.gradient_magnitudes(120, seed=1)


def _deliver(page, widget, sent: list) -> None:
    """What the kernel sent (patches), received by the page's model, then drawn."""
    widget.flush()
    for message in sent:
        page.evaluate("(msg) => model.receive(msg)", message)
    sent.clear()
    after_redraw(page)


def run(config, widget):
    gallery.simulate_scaler(config, MAGNITUDES, callback=widget)


def test_figures_are_the_same_markup_on_both_sides(page):
    load_front_end(page, LossScaleWidget)
    live = LossScaleWidget(run=run, config=CONFIG)
    metrics = gallery.simulate_scaler(CONFIG, MAGNITUDES)
    replayed = LossScaleWidget.replay(metrics, metrics.pop("losses"))
    for name, w in {"live": live, "replay": replayed, "empty": LossScaleWidget()}.items():
        for view in (w.view, {**w.view, "loss.yscale": "log"}):
            for width in (1000, 420):
                js = page.evaluate("([d, v, w]) => kit.figureSVG(d, v, w)", [w.data, view, width])
                assert js == figure_svg(w.data, view, width), (name, width)


def test_streamed_steps_and_a_slider_restart(page, artifacts_dir):
    load_front_end(page, LossScaleWidget, width=1000)
    w = LossScaleWidget(run=run, config=CONFIG, start=False)
    render_view(page, w.get_state())
    width = page.evaluate("() => model.get('width')")
    sent: list = []
    w.send = lambda content, buffers=None: sent.append(content)
    # the kernel's training loop, streaming: every 30 steps the page gets what was sent
    drawn = []

    def streaming(step, info):
        w(step, info)
        if step % 30 == 29:
            _deliver(page, w, sent)
            drawn.append(live_equals(page, figure_svg(w.data, w.view, width)))

    gallery.simulate_scaler(CONFIG, MAGNITUDES, callback=streaming)
    _deliver(page, w, sent)
    assert drawn == [True] * 4 and len(w.layer("scale", "scale")["x"]) == 120
    assert live_equals(page, figure_svg(w.data, w.view, width))
    crosses = page.locator('[data-panel="scale"] path.tf-markers').first.get_attribute("d")
    assert crosses.count("M") // 2 == w.counts["overflows"] > 0
    title = page.locator(".tf-figtitle").text_content()
    assert f"{w.counts['overflows']} overflows · {w.counts['skipped']} skipped" in title
    page.screenshot(path=str(artifacts_dir / "loss_scale_widget.png"))
    # a slider, moved by the student: the view changes in the page...
    slider = page.locator('[data-control="growth_interval"] input')
    slider.evaluate("(input) => { input.value = '40'; input.dispatchEvent(new Event('input')); }")
    page.wait_for_function("() => model.get('view').growth_interval === 40")
    view = page.evaluate("() => model.get('view')")
    # ...the kernel gets it (as the comm delivers it), restarts the run and answers
    before = w.counts["growths"]
    w.set_state({"view": view})
    assert w.config["growth_interval"] == 40 and w.counts["growths"] != before
    assert sent and all("patches" in m for m in sent)
    _deliver(page, w, sent)
    assert live_equals(page, figure_svg(w.data, w.view, width))
    assert f"{w.counts['growths']} growths" in page.locator(".tf-figtitle").text_content()
    assert page.locator('[data-control="growth_interval"] .tf-readout').text_content() == "40"
    page.screenshot(path=str(artifacts_dir / "loss_scale_widget_restarted.png"))
    assert not page.errors, page.errors
