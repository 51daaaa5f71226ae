"""The HessianWidget in Chromium, without JupyterLab: a blank page holds the front end as it
ships (the ChartWidget's, with a stand-in model). Its figures are the same markup on both
sides; a drag of the point by the mouse writes the view, the kernel's answer (patches) moves the
Newton step, and the live drawing is the kernel's snapshot. A screenshot lands in
``$TFGRAD_ARTIFACTS`` (hessian_widget.png, hessian_widget_n.png, hessian_widget_density.png)."""

from __future__ import annotations

import numpy as np
import pytest
from kit_page import after_redraw, live_equals, load_front_end, render_view

import tfgrad as tg
from tfgrad_widgets import HessianWidget
from tfgrad_widgets.svg import figure_svg

pytestmark = pytest.mark.timeout(300, func_only=True)


def rosenbrock(v):
    return (1 - v[0]) ** 2 + 5 * (v[1] - v[0] ** 2) ** 2


def chained(v):
    return tg.sum((1 - v[:-1]) ** 2 + 5 * (v[1:] - v[:-1] ** 2) ** 2)


def test_hessian_figures_are_the_same_markup_on_both_sides(page, artifacts_dir):
    load_front_end(page, HessianWidget)
    with tg.use_backend("numpy"):
        two = HessianWidget(rosenbrock, [-1.2, 1.0], bounds=((-2, 2), (-1, 3)))
        two.track(0, {"top_eigenvalue": 40.0, "trace": 50.0})
        many = HessianWidget(chained, np.linspace(-1.0, 1.5, 12))
        dense = HessianWidget(chained, np.linspace(-1.0, 1.5, 12), max_bars=6)
        slq = HessianWidget(chained, np.linspace(-1.0, 1.5, 60))  # past max_heatmap
    assert slq.panel("density") and "H is never formed" in slq.data["title"]
    widgets = {"two": two, "many": many, "histogram": dense, "slq": slq}
    for name, w in widgets.items():
        for width in (1000, 420):
            js = page.evaluate("([d, v, w]) => kit.figureSVG(d, v, w)", [w.data, w.view, width])
            assert js == figure_svg(w.data, w.view, width), (name, width)
    # n variables, live: the heat map beside the spectrum, as the kernel draws it
    render_view(page, many.get_state())
    width = page.evaluate("() => model.get('width')")
    assert live_equals(page, figure_svg(many.data, many.view, width))
    assert page.locator('[data-panel="hessian"]').count() == 1
    page.screenshot(path=str(artifacts_dir / "hessian_widget_n.png"))
    # many variables: the density, live
    page.evaluate("() => window.cleanup && window.cleanup()")
    page.evaluate("() => document.getElementById('root').replaceChildren()")
    render_view(page, slq.get_state())
    width = page.evaluate("() => model.get('width')")
    assert live_equals(page, figure_svg(slq.data, slq.view, width))
    assert page.locator('path.tf-line[data-layer="density"]').count() == 1
    page.screenshot(path=str(artifacts_dir / "hessian_widget_density.png"))


def test_dragging_the_point_redraws_the_kernels_answer(page, artifacts_dir):
    load_front_end(page, HessianWidget, width=1000)
    with tg.use_backend("numpy"):
        w = HessianWidget(rosenbrock, [-1.2, 1.0], bounds=((-2, 2), (-1, 3)))
    render_view(page, w.get_state())
    width = page.evaluate("() => model.get('width')")
    assert live_equals(page, figure_svg(w.data, w.view, width))  # the kernel's picture
    # the legend sits below the landscape's plot (under its axis label), covering no data
    plot, legend, label = (page.locator(f'[data-panel="landscape"] {css}').first.bounding_box()
                           for css in (".tf-plot", ".tf-legend", ".tf-label"))  # fmt: skip
    assert legend["y"] >= label["y"] + label["height"] > plot["y"] + plot["height"]
    # (within the plot's width, give or take half a stroke)
    assert plot["x"] - 2 <= legend["x"] < legend["x"] + legend["width"] <= plot["x"] + plot["width"]
    newton = page.locator('path.tf-arrow[data-layer="newton"]')
    before = newton.get_attribute("d")
    box = page.locator(".tf-handle").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 110, y + 50, steps=10)
    page.mouse.up()
    view = page.evaluate("() => model.get('view')")
    point = view["landscape.point"]
    assert point[0] > -1.2 and point[1] < 1.0  # right and down, in data coordinates
    # The kernel gets the view (as the comm delivers it) and answers with patches.
    sent = []
    w.send = lambda content, buffers=None: sent.append(content)
    with tg.use_backend("numpy"):
        w.set_state({"view": view})
    w.flush()
    assert sent and all("patches" in m for m in sent)
    for message in sent:
        page.evaluate("(msg) => model.receive(msg)", message)
    after_redraw(page)
    assert newton.get_attribute("d") != before
    np.testing.assert_allclose(w.data["local"]["point"], point)
    assert live_equals(page, figure_svg(w.data, w.view, width))
    title = page.locator('[data-panel="curvature"] .tf-title').text_content()
    assert title.startswith("|Newton| ") and "|gradient|" in title
    page.screenshot(path=str(artifacts_dir / "hessian_widget.png"))
    assert not page.errors, page.errors
