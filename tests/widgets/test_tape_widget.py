"""TapeWidget without a browser: its state, what a step changes, the mode toggle, and the
throttle counted on a dummy comm (as ipywidgets' own tests do)."""

from __future__ import annotations

import time

import pytest
from ipywidgets.widgets.tests.utils import setup_test_comm, teardown_test_comm

import tfgrad as tg
from tfgrad_widgets import TapeWidget


@pytest.fixture
def comm():
    setup_test_comm()
    yield
    teardown_test_comm()


def micrograd_example(a, b):
    c = a + b
    d = a * b + b**3
    return c * d - a


def mlp_loss(x, w1, w2):
    with tg.name_scope("layer1"):
        h = tg.tanh(x @ w1)
    with tg.name_scope("layer2"):
        y = h @ w2
    with tg.name_scope("loss"):
        return tg.mean((y - 1.0) ** 2)


def test_reverse_mode_records_then_sweeps(backend):
    widget = TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)
    phases = [f.phase for f in widget.frames]
    assert phases == ["record", "record", "sweep", "sweep", "sweep", "sweep", "sweep"]
    assert widget.gradients == {"a": "4", "b": "2"}  # d(ab + a)/da = b + 1, d/db = a
    widget.step = 0
    assert "mul" in widget.view.value and "add" not in widget.view.value  # only mul recorded
    widget.step = widget.n_steps - 1
    widget.flush()
    assert "ḡ = 4" in widget.view.value and "ḡ = 2" in widget.view.value
    assert "fan-out" in widget.caption.value or "fan-out" in widget.frames[4].caption


def test_step_buttons_change_what_is_shown(backend):
    widget = TapeWidget(micrograd_example, -4.0, 2.0, min_interval=0)
    before = (widget.caption.value, widget.view.value)
    widget.forward_button.click()
    assert widget.step == 1 and widget.slider.value == 2  # the slider counts from 1
    assert (widget.caption.value, widget.view.value) != before
    widget.back_button.click()
    widget.back_button.click()  # clamped at the first step
    assert widget.step == 0 and (widget.caption.value, widget.view.value) == before
    widget.slider.value = 10_000  # the slider's max is the last step; the trait clamps anyway
    assert widget.step == widget.n_steps - 1
    # The micrograd example: the sweep ends with the exact gradient at each input.
    a, b = -4.0, 2.0
    d = a * b + b**3
    assert float(widget.gradients["a"]) == pytest.approx(d + (a + b) * b - 1, rel=1e-3)
    assert float(widget.gradients["b"]) == pytest.approx(d + (a + b) * (a + 3 * b**2), rel=1e-3)


def test_forward_mode_toggle(backend):
    widget = TapeWidget(lambda a, b: a * b + a, 2.0, 3.0, min_interval=0)
    widget.mode_toggle.value = "forward"
    assert widget.mode == "forward" and widget.step == 0
    assert widget.n_steps == 3 and widget.slider.max == 3
    widget.step = 2
    assert "ṫ = 4" in widget.view.value  # d/da (ab + a) = b + 1 = 4, carried forward
    assert "forward" in widget.caption.value


def test_state_is_plain_and_synced_views_are_stock_widgets(backend):
    widget = TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)
    state = widget.view.get_state()
    assert state["_model_name"] == "HTMLModel" and state["value"].startswith("<svg")
    assert widget.get_state()["_model_name"] == "VBoxModel"
    assert {n.kind for n in widget.graph.nodes} == {"input", "op"}


def test_a_two_layer_mlp_is_grouped_by_layer(backend):
    rng = tg.random.Generator(0)
    x, w1, w2 = rng.normal((4, 3)), rng.normal((3, 5)), rng.normal((5, 1))
    widget = TapeWidget(mlp_loss, x, w1, w2)
    scopes = {n.scope for n in widget.graph.nodes if n.kind == "op"}
    assert scopes == {"layer1", "layer2", "loss"}
    assert len([n for n in widget.graph.nodes if n.kind == "op"]) <= 10  # tensor ops: readable
    widget.step = widget.n_steps - 1
    widget.flush()
    svg = widget.view.value
    assert svg.count('class="scope"') == 3 and "layer1" in svg
    # Gradients are exact: compare with the functional API.
    g_w1 = tg.grad(mlp_loss, argnums=1)(x, w1, w2)
    assert widget.gradients["w1"] == tg.viz.format_value(g_w1)


def test_from_a_recorded_tape(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(1.5))
        y = tg.sin(x) * x
    widget = TapeWidget.from_tape(tape, y)
    assert [n.label for n in widget.graph.nodes if n.kind == "op"] == ["sin", "mul"]
    assert widget.frames[-1].phase == "sweep"


def test_redraws_are_throttled(backend, comm):
    widget = TapeWidget(micrograd_example, -4.0, 2.0, min_interval=0.2)
    messages = widget.view.comm.messages  # the dummy comm records what goes to the browser
    messages.clear()
    renders_before = widget.renders
    for step in range(widget.n_steps):  # a burst far faster than the interval
        widget.step = step
    assert widget.renders - renders_before <= 1
    assert len(messages) <= 1
    time.sleep(0.21)
    widget.flush()  # without an event loop, flush() draws what the throttle held back
    assert widget.renders - renders_before <= 2 and len(messages) <= 2
    assert f"step {widget.n_steps} of {widget.n_steps}" in widget.caption.value
    assert widget.step == widget.n_steps - 1
