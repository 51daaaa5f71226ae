"""ChartWidget and the base it shares with every widget, without a browser: plain data in,
small patches and view changes out (counted on the dummy comm), the snapshot at the width the
front end reported, and the gallery's examples answering the student's drags and clicks."""

from __future__ import annotations

import asyncio
import copy
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from widget_messages import sent, size

import tfgrad as tg
from tfgrad_widgets import ChartWidget, gallery
from tfgrad_widgets.base import apply_patch, esm_source, plain
from tfgrad_widgets.chart_widget import contour_layer

SVG = "{http://www.w3.org/2000/svg}"


def line_chart(**kwargs) -> ChartWidget:
    return ChartWidget({"panels": [{"id": "loss", "kind": "xy", "y": {"scale": "log"},
                        "layers": [{"id": "train", "x": list(range(10_000)),
                                    "y": [1 / (1 + i) for i in range(10_000)]}]}]},
                       **kwargs)  # fmt: skip


def test_data_is_plain_json():
    assert plain({"a": np.arange(3), "b": (np.float32(1.5), math.nan, math.inf, None)}) == {
        "a": [0, 1, 2], "b": [1.5, None, None, None]}  # fmt: skip
    with pytest.raises(TypeError, match="JSON-like"):
        plain({"f": print})


def test_ids_are_checked():
    with pytest.raises(ValueError, match="unique id and a kind"):
        ChartWidget({"panels": [{"id": "a", "kind": "pie"}]})
    with pytest.raises(ValueError, match="panel 'a'.*unique id"):
        ChartWidget({"panels": [{"id": "a", "kind": "xy", "layers": [{"id": "l"}, {"id": "l"}]}]})


def test_new_points_are_a_small_patch_not_the_series_again(comm):
    chart = line_chart(min_interval=0)
    assert size(chart.get_state()["data"]) > 100_000  # the series, sent once with the widget
    chart.comm.messages.clear()
    chart.extend("loss", "train", x=[10_000, 10_001], y=[1e-4, 9e-5])
    (message,) = sent(chart)
    assert size(message) < 300
    assert message["content"] == {
        "patches": [
            {"op": "extend", "path": ["panels", 0, "layers", 0, "x"], "values": [10_000, 10_001]},
            {"op": "extend", "path": ["panels", 0, "layers", 0, "y"], "values": [1e-4, 9e-5]},
        ]
    }
    assert chart.layer("loss", "train")["y"][-2:] == [1e-4, 9e-5]  # the kernel's copy too


def test_patches_are_throttled_and_the_event_loop_sends_the_last(comm):
    async def burst():
        chart = line_chart(min_interval=0.05)
        chart.comm.messages.clear()
        for i in range(200):  # far faster than one per 50 ms
            chart.extend("loss", "train", x=[10_000 + i], y=[1e-5])
        held = len(sent(chart))
        await asyncio.sleep(0.12)  # the throttle's timer sends what it held back
        return chart, held

    chart, held = asyncio.run(burst())
    messages = sent(chart)
    assert held == 1 and len(messages) == 2  # the first at once, the other 199 together
    assert sum(len(p["values"]) for m in messages for p in m["content"]["patches"]) == 400
    assert chart.layer("loss", "train")["x"][-1] == 10_199


def test_a_set_then_extends_in_one_message_arrive_once(comm):
    # The browser applies the patches in order to its copy of the data: a layer emptied and
    # refilled within one throttle interval (a restarted run) must end up as the kernel's.
    chart = line_chart(min_interval=60)
    browser = copy.deepcopy(chart.data)
    chart.comm.messages.clear()
    chart.extend("loss", "train", x=[10_000], y=[1e-5])  # sent at once; the rest is held
    chart.set_layer("loss", "train", x=[], y=[])
    for i in range(3):
        chart.extend("loss", "train", x=[i], y=[1.0 / (i + 1)])
    chart.flush()
    first, second = sent(chart)
    assert len(second["content"]["patches"]) == 8  # the set and the extends together
    for patch in first["content"]["patches"] + second["content"]["patches"]:
        apply_patch(browser, patch)
    assert chart.layer("loss", "train")["x"] == [0, 1, 2]
    assert browser == chart.data


def test_view_changes_from_the_browser_reach_callbacks(comm):
    chart = gallery.checkpointing()
    before = chart.panel("schedule")["spans"]
    seen = []
    chart.on_view("frontier.choices", seen.append)
    chart.set_state({"view": {**chart.view, "frontier.choices": 0}})  # as a click arrives
    assert seen == [0]
    after = chart.panel("schedule")["spans"]
    assert after != before and chart.panel("schedule")["title"] == "schedule: segments of 1"
    assert not any(s["lane"] == 1 for s in after)  # segments of one layer: nothing recomputed


def test_dragging_the_point_moves_the_newton_step(backend):
    chart = gallery.hessian()
    before = chart.layer("landscape", "newton")["arrows"][0]
    chart.set_view(**{"landscape.point": [0.5, 0.5]})
    (after,) = chart.layer("landscape", "newton")["arrows"]
    assert (after["x"], after["y"]) == (0.5, 0.5) and after != before
    # The Newton step of f at p is -H^-1 g, exactly (a quadratic lands on its minimum).
    f = lambda v: gallery.rosenbrock(v[0], v[1])  # noqa: E731
    p = tg.tensor([0.5, 0.5])
    step = -np.linalg.solve(tg.hessian(f)(p).numpy(), tg.grad(f)(p).numpy())
    np.testing.assert_allclose([after["dx"], after["dy"]], step, rtol=1e-12)
    assert 'cx="' in chart.snapshot()  # the point is drawn where it was dragged


def test_gradient_flow_vanishes_towards_the_input():
    norms = gallery.gradient_norms()
    assert all(a < b for a, b in zip(norms, norms[1:]))
    assert norms[-1] / norms[0] > 1e4


def test_snapshot_is_drawn_at_the_width_the_front_end_reported():
    chart = gallery.loss_scale()
    wide = ET.fromstring(chart.snapshot())
    chart.width = 420  # too narrow for two panels side by side: they stack
    narrow = ET.fromstring(chart.snapshot())
    assert float(wide.get("width")) == 700 and float(narrow.get("width")) == 420
    assert float(narrow.get("height")) > 1.8 * float(wide.get("height"))
    data, _ = chart._repr_mimebundle_()
    assert data["image/svg+xml"] == chart.snapshot()
    assert data["text/plain"] == "LossScaleWidget(steps=160, overflows=8)"


def test_contours_cross_at_their_level():
    x = y = np.linspace(-1, 1, 21)
    gx, gy = np.meshgrid(x, y)
    layer = contour_layer(x, y, gx**2 + gy**2, [0.25])
    points = [(a, b) for a, b in zip(layer["x"], layer["y"]) if a is not None]
    radii = np.hypot(*np.array(points).T)
    assert len(points) > 20 and np.allclose(radii, 0.5, atol=0.01)


def test_the_front_end_ships_inside_the_package():
    # No CDN, no network, no bundler: the module is plain JavaScript with no imports at all.
    for view in ("tape.js", "chart.js"):
        source = esm_source(view)
        assert source.startswith("const THEME = {")
        assert "import " not in source and "require(" not in source and "fetch(" not in source
        # the one address: SVG's namespace, a name that is never loaded
        assert set(re.findall(r"https?://[^\"' ]+", source)) == {"http://www.w3.org/2000/svg"}
        assert source.count("export default") == 1


def test_every_gallery_example_draws(backend):
    for name, build in gallery.EXAMPLES.items():
        widget = build()
        root = ET.fromstring(widget.snapshot())
        assert root.tag == SVG + "svg", name
        texts = [t.text for t in root.iter(SVG + "text") if t.text]
        assert texts, name
