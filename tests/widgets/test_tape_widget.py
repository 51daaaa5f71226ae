"""TapeWidget without a browser: what it records and sweeps, what a step sends (counted on the
dummy comm), name scopes, the snapshot, and the frames the front end adds up."""

from __future__ import annotations

import base64
import re
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import traitlets
from widget_messages import sent, size

import tfgrad as tg
from tfgrad_widgets import TapeWidget
from tfgrad_widgets.gallery import micrograd_example, mlp_inputs, mlp_loss
from tfgrad_widgets.svg import graph_layout
from tfgrad_widgets.theme import THEME

# The narrowest notebook column the widget must fit: JupyterLab at 1280 px with the file
# browser open gives the notebook 844 px, less the prompt and the output's padding.
COLUMN_PX = 770


def long_chain(x):
    y = x
    for _ in range(166):  # 2 op nodes + 1 constant a repeat: 1 + 3 * 166 = 499 nodes
        y = tg.sin(y) * 1.01
    return y


def test_reverse_mode_records_then_sweeps(backend):
    widget = TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)
    assert [f.phase for f in widget.frames] == ["record"] * 2 + ["sweep"] * 5
    assert widget.gradients == {"a": 4.0, "b": 2.0}  # d(ab + a)/da = b + 1, d/db = a
    assert all(isinstance(g, float) for g in widget.gradients.values())
    picture = widget.graph_svg()
    assert 'data-id="r0"' in picture and _hidden(picture, "r1")  # only mul recorded yet
    widget.step = widget.n_steps - 1
    assert not _hidden(widget.graph_svg(), "r1")
    assert "ḡ = 4" in widget.snapshot() and "ḡ = 2" in widget.snapshot()
    assert widget.frames[4].caption.endswith("(fan-out: adjoints add up)")


def _hidden(svg: str, node: str) -> bool:
    element = ET.fromstring(svg).find(f".//*[@data-id='{node}']")
    return "tf-hidden" in element.get("class").split()


def test_gradients_are_numbers_and_exact(backend):
    a, b = -4.0, 2.0
    widget = TapeWidget(micrograd_example, a, b)
    d = a * b + b**3
    assert widget.gradients == {"a": d + (a + b) * b - 1, "b": d + (a + b) * (a + 3 * b**2)}
    x, w1, b1, w2, b2, y = mlp_inputs()
    mlp = TapeWidget(mlp_loss, x, w1, b1, w2, b2, y)
    expected = tg.grad(mlp_loss, argnums=1)(x, w1, b1, w2, b2, y).numpy()
    assert isinstance(mlp.gradients["w1"], np.ndarray)
    np.testing.assert_allclose(mlp.gradients["w1"], expected, rtol=1e-12)


def test_step_and_mode_go_to_the_browser_as_small_messages(comm):
    with tg.use_backend("numpy"):
        widget = TapeWidget(micrograd_example, -4.0, 2.0, min_interval=0)
    widget.comm.messages.clear()
    widget.step = 3
    widget.mode = "forward"  # the new mode, and back to its first step
    messages = sent(widget)
    assert [m["state"] for m in messages] == [{"step": 3}, {"mode": "forward"}, {"step": 0}]
    widget.step = 10_000  # clamped to the last step
    assert widget.step == widget.n_steps - 1 == 6  # the seed, then one frame per op
    assert "ṫ = -5" in widget.snapshot()  # forward mode from a: the tangent of the output


def test_a_500_node_tape_is_sent_once_and_a_step_is_under_a_kilobyte(comm):
    with tg.use_backend("numpy"):
        widget = TapeWidget(long_chain, 0.5, min_interval=0)
    assert len(widget.graph.nodes) == 499
    # Everything the front end draws is in the state it gets once: graph and every frame.
    state = widget.get_state()
    assert len(state["data"]["frames"]["reverse"]) == widget.n_steps == 665
    widget.comm.messages.clear()
    for step in range(widget.n_steps):
        widget.step = step
    messages = sent(widget)
    assert len(messages) == widget.n_steps - 1  # unthrottled: every change (not 0 -> 0)
    assert max(size(m) for m in messages) <= 1000
    assert all(set(m["state"]) == {"step"} for m in messages)


def test_the_throttle_holds_a_burst_back_and_sends_the_last_step(comm):
    with tg.use_backend("numpy"):
        widget = TapeWidget(micrograd_example, -4.0, 2.0, min_interval=60.0)
    widget.comm.messages.clear()
    widget._last_send = time.monotonic()  # as if a message had just gone out
    for step in range(widget.n_steps):  # a burst far faster than the interval
        widget.step = step
    assert sent(widget) == []  # held back (no event loop here to send it later)
    widget.flush()
    assert [m["state"] for m in sent(widget)] == [{"step": widget.n_steps - 1}]


def test_the_frames_add_up_to_what_the_core_recorded(backend):
    # The front end receives each frame as its differences from the one before and adds them
    # up (tape.js foldFrames); adding them up here must give back every frame of the core.
    widget = TapeWidget(micrograd_example, -4.0, 2.0)
    for mode in ("reverse", "forward"):
        frames, differences = widget.graph.reverse_frames, widget.data["frames"]["reverse"]
        if mode == "forward":
            frames, differences = widget.graph.forward_frames, widget.data["frames"]["forward"]
        visible, values = set(), {}
        for frame, diff in zip(frames, differences, strict=True):
            visible |= set(diff["show"])
            values.update(diff["values"])
            assert visible == frame.visible and values == frame.values
            assert (diff["active"], diff["caption"]) == (frame.active, frame.caption)
            assert diff["edge"] == (list(frame.edge) if frame.edge else None)


def test_name_scopes_collapse_into_boxes_and_open_on_request(backend):
    widget = TapeWidget(mlp_loss, *mlp_inputs())
    assert widget.data["scopes"] == ["layer1", "layer2", "loss"]
    assert widget.collapsed == ["layer1", "layer2", "loss"]  # closed at first
    graph = widget.data["graph"]
    closed = graph_layout(graph, widget.collapsed)
    boxes = [i for i in closed["items"].values() if "scope" in i]
    assert sorted((b["scope"], b["count"]) for b in boxes) == [("layer1", 3), ("layer2", 2),
                                                               ("loss", 11)]  # fmt: skip
    # Readable at full size in the narrowest column: 6 inputs and 3 boxes, 4 columns.
    assert closed["width"] <= COLUMN_PX
    widget.expand("layer1")
    assert widget.collapsed == ["layer2", "loss"]
    opened = graph_layout(graph, widget.collapsed)
    inside = [i["node"]["label"] for i in opened["items"].values()
              if "node" in i and i["node"]["scope"] == "layer1"]  # fmt: skip
    assert inside == ["matmul", "add", "tanh"]
    widget.step = widget.n_steps - 1
    picture = widget.graph_svg()
    assert picture.count('class="tf-scope"') == 1 and "▾ layer1" in picture
    assert picture.count("tf-node tf-box") == 2
    widget.collapse("layer1")
    assert widget.collapsed == ["layer1", "layer2", "loss"]
    with pytest.raises(traitlets.TraitError, match="no name scope .'layer3'.*layer1"):
        widget.collapsed = ["layer3"]


def test_no_two_boxes_overlap_in_any_layout(backend):
    widget = TapeWidget(mlp_loss, *mlp_inputs())
    graph = widget.data["graph"]
    w, h = THEME["node_w"], THEME["node_h"]
    for mask in range(8):  # every combination of open and closed scopes
        collapsed = [s for i, s in enumerate(widget.data["scopes"]) if mask >> i & 1]
        layout = graph_layout(graph, collapsed)
        cells = [(i["x"], i["y"]) for i in layout["items"].values()]
        for j, (x1, y1) in enumerate(cells):
            for x2, y2 in cells[j + 1 :]:
                assert abs(x1 - x2) >= w or abs(y1 - y2) >= h, (collapsed, (x1, y1), (x2, y2))
            assert x1 + w <= layout["width"] and y1 + h <= layout["height"]


def test_the_notebook_example_fits_the_column_at_the_readable_minimum(backend):
    # At full size micrograd's example is 868 px wide; the live view zooms it to fit, never
    # below THEME["min_zoom"] (13 px text stays at least 9.75 px), which this must allow.
    layout = graph_layout(TapeWidget(micrograd_example, -4.0, 2.0).data["graph"], [])
    assert layout["width"] * THEME["min_zoom"] <= COLUMN_PX


def test_snapshot_is_in_the_mime_bundle_and_save_writes_it(backend, tmp_path):
    widget = TapeWidget(micrograd_example, -4.0, 2.0)
    widget.step = widget.n_steps - 1
    data, _ = widget._repr_mimebundle_()
    assert set(data) == {"text/plain", "image/svg+xml", "text/html",
                         "application/vnd.jupyter.widget-view+json"}  # fmt: skip
    assert data["text/plain"].startswith("TapeWidget(6 ops, reverse mode")
    assert "0x" not in data["text/plain"]  # not an object's address
    # The same picture as an image in HTML, for JupyterLab's untrusted notebooks.
    (uri,) = re.findall(r'<img src="data:image/svg\+xml;base64,([^"]+)"', data["text/html"])
    assert base64.b64decode(uri).decode("utf-8") == data["image/svg+xml"]
    root = ET.fromstring(data["image/svg+xml"])  # a well-formed SVG document
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "step 18 of 18" in data["image/svg+xml"] and "ḡ = -16" in data["image/svg+xml"]
    path = widget.save(tmp_path / "tape.svg")
    assert path.read_text(encoding="utf-8") == data["image/svg+xml"]


def test_from_a_recorded_tape(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(1.5))
        y = tg.sin(x) * x
    widget = TapeWidget.from_tape(tape, y)
    assert [n.label for n in widget.graph.nodes if n.kind == "op"] == ["sin", "mul"]
    assert widget.frames[-1].phase == "sweep"
    assert widget.gradients["x0"] == pytest.approx(np.cos(1.5) * 1.5 + np.sin(1.5))
