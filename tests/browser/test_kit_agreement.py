"""The two drawing sides agree: kit.js in Chromium and tfgrad_widgets.svg in Python write the
same SVG for the same data, and a live view's drawing (after steps, opened scopes, a reported
width) is the snapshot the kernel writes for that state. No JupyterLab: a blank page holds the
widget's front end as it ships, with a stand-in model."""

from __future__ import annotations

import pytest
from kit_page import after_redraw, live_equals, load_front_end, render_view

import tfgrad as tg
from tfgrad_widgets import ChartWidget, TapeWidget, gallery
from tfgrad_widgets.svg import figure_svg, graph_layout, graph_svg
from tfgrad_widgets.theme import THEME

pytestmark = pytest.mark.timeout(300, func_only=True)

CHARTS = ["hessian", "hessian_n", "hessian_density", "loss_scale", "loss_scale_replay",
          "checkpointing", "gradient_flow"]  # fmt: skip


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    yield page
    page.close()


def long_chain(x):
    y = x
    for _ in range(166):
        y = tg.sin(y) * 1.01
    return y


def tapes() -> dict[str, TapeWidget]:
    with tg.use_backend("numpy"):
        return {"tape": gallery.tape(), "mlp_step": gallery.mlp_step(),
                "chain_500": TapeWidget(long_chain, 0.5)}  # fmt: skip


@pytest.mark.parametrize("width", [1000, 700, 420])
def test_figures_are_the_same_markup_on_both_sides(page, width):
    load_front_end(page, ChartWidget)
    with tg.use_backend("numpy"):
        charts = {name: gallery.EXAMPLES[name]() for name in CHARTS}
    for name, chart in charts.items():
        js = page.evaluate("([d, v, w]) => kit.figureSVG(d, v, w)", [chart.data, chart.view, width])
        assert js == figure_svg(chart.data, chart.view, width), f"{name} at {width} px"


def test_tape_graphs_are_the_same_markup_on_both_sides(page):
    load_front_end(page, TapeWidget)
    for name, widget in tapes().items():
        graph = widget.data["graph"]
        for mode in ("reverse", "forward"):
            widget.mode = mode
            for collapsed in ([], widget.data["scopes"][:1], widget.data["scopes"]):
                widget.collapsed = collapsed
                for step in sorted({0, 1, widget.n_steps // 2, widget.n_steps - 1}):
                    widget.step = step
                    js = page.evaluate(
                        "([g, c, frames, step]) => kit.graphSVG(g, kit.graphLayout(g, c), "
                        "kit.foldFrames(frames, step))",
                        [graph, collapsed, widget.data["frames"][mode], step],
                    )
                    expected = graph_svg(
                        graph, graph_layout(graph, collapsed), widget.frame_state()
                    )
                    assert js == expected, (name, mode, collapsed, step)


def test_the_live_tape_view_draws_the_snapshot_of_each_step(page):
    load_front_end(page, TapeWidget, width=800)
    widget = tapes()["mlp_step"]
    render_view(page, widget.get_state())
    for step in (0, 7, 20, widget.n_steps - 1):
        widget.step = step
        page.evaluate("(s) => model.set('step', s)", step)
        assert live_equals(page, widget.graph_svg(), "#root svg.tf-graph"), step
    # Open a scope by clicking its box, as a student does: the model says which, the drawing
    # is the kernel's snapshot of that state, and the front end asked to save it.
    page.click('.tf-box[data-scope="layer1"]')
    assert page.evaluate("() => model.get('collapsed')") == ["layer2", "loss"]
    widget.collapsed = ["layer2", "loss"]
    assert live_equals(page, widget.graph_svg(), "#root svg.tf-graph")
    assert page.evaluate("() => model.saves") >= 1
    # Another mode: frames of forward mode, from its first step.
    page.click('.tf-mode button[data-mode="forward"]')
    widget.mode = "forward"
    assert page.evaluate("() => [model.get('mode'), model.get('step')]") == ["forward", 0]
    assert live_equals(page, widget.graph_svg(), "#root svg.tf-graph")


def test_the_tape_view_fits_its_column_and_keeps_text_readable(page):
    load_front_end(page, TapeWidget, width=800)
    with tg.use_backend("numpy"):
        widget = TapeWidget(gallery.micrograd_example, -4.0, 2.0)
    render_view(page, widget.get_state())
    box = page.evaluate("""() => {
        const v = document.querySelector('.tf-viewport'), s = v.querySelector('svg');
        return {view: v.clientWidth, svg: s.getBoundingClientRect().width,
                natural: s.viewBox.baseVal.width, overflow: v.scrollWidth > v.clientWidth};
    }""")
    assert box["natural"] > box["view"]  # 828 px of graph in a 790 px viewport: zoomed out
    assert box["svg"] <= box["view"] and not box["overflow"]
    assert box["svg"] / box["natural"] >= THEME["min_zoom"]
    # A 500-node tape does not fit at a readable size: it stays at the minimum zoom, pans, and
    # keeps the node of the current step in view.
    render_view(page, tapes()["chain_500"].get_state())
    page.evaluate("() => model.set('step', 400)")
    view = page.evaluate("""() => {
        const v = document.querySelectorAll('.tf-viewport')[1], s = v.querySelector('svg');
        const a = v.querySelector('.tf-active').getBoundingClientRect();
        const r = v.getBoundingClientRect();
        return {zoom: s.getBoundingClientRect().width / s.viewBox.baseVal.width,
                inside: a.left >= r.left && a.right <= r.right && a.top >= r.top
                        && a.bottom <= r.bottom, scrolled: v.scrollLeft > 0};
    }""")
    assert view["zoom"] == pytest.approx(THEME["min_zoom"]) and view["inside"] and view["scrolled"]


def test_the_live_chart_view_draws_the_snapshot_at_its_width(page):
    load_front_end(page, ChartWidget, width=700)
    with tg.use_backend("numpy"):
        chart = gallery.checkpointing()
    render_view(page, chart.get_state())
    width = page.evaluate("() => model.get('width')")  # the figure's box: 700 px less padding
    assert width == page.evaluate("() => document.querySelector('.tf-figure-box').clientWidth")
    assert 680 <= width <= 700
    assert live_equals(page, figure_svg(chart.data, chart.view, width), "#root svg.tf-figure")
    # A click on a point of the frontier: the view state says which, and the drawing follows.
    page.click('.tf-pick[data-i="1"]')
    view = page.evaluate("() => model.get('view')")
    assert view["frontier.choices"] == 1
    after_redraw(page)
    assert live_equals(page, figure_svg(chart.data, view, width), "#root svg.tf-figure")
    # A patch from the kernel (what the kernel sends when it answers the click) redraws it.
    sent = []
    chart.send = lambda content, buffers=None: sent.append(content)
    chart.set_view(**view)
    chart.flush()  # the throttle held the answer back: the view change went out just before
    assert [p["path"][-1] for p in sent[0]["patches"]] == ["spans", "title"]
    page.evaluate("(msg) => model.receive(msg)", sent[0])
    after_redraw(page)
    assert live_equals(page, figure_svg(chart.data, chart.view, width), "#root svg.tf-figure")


def test_a_chart_redraws_when_its_container_changes_width(page):
    load_front_end(page, ChartWidget, width=700)
    with tg.use_backend("numpy"):
        chart = gallery.loss_scale()
    render_view(page, chart.get_state())
    panels = (
        "() => [...document.querySelectorAll('.tf-panel')].map(g => g.getAttribute('transform'))"
    )
    wide = page.evaluate(panels)
    assert len(wide) == 2 and wide[1].startswith("translate(3")  # side by side
    page.evaluate("() => { document.getElementById('root').style.width = '420px'; }")
    page.wait_for_function("() => model.get('width') < 420")
    narrow = page.evaluate(panels)
    assert narrow[1].startswith("translate(0,")  # stacked: the second panel below the first
    width = page.evaluate("() => model.get('width')")
    assert live_equals(page, figure_svg(chart.data, chart.view, width), "#root svg.tf-figure")
