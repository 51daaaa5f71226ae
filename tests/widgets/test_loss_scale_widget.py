"""The LossScaleWidget without a browser: a run fed step by step (GradScaler's rule in plain
Python on synthetic gradient magnitudes, gallery.simulate_scaler) builds the state and counts,
each step is a few small patches, the snapshot shows the crosses and the counts, the controls
restart the run through ``run(config, widget)``, and a recorded stability_metrics() replays."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pytest
from widget_messages import sent, size

from tfgrad_widgets import LossScaleWidget, gallery
from tfgrad_widgets.loss_scale_widget import DEFAULT_CONFIG

CONFIG = {"initial_scale": 2.0**16, "growth_interval": 10, "growth_factor": 2.0,
          "backoff_factor": 0.5}  # fmt: skip
MAGNITUDES = gallery.gradient_magnitudes(120, seed=1)


def simulated(widget=None, config=CONFIG):
    return gallery.simulate_scaler(config, MAGNITUDES, callback=widget)


def crosses(svg: str, layer: str) -> int:
    """The crosses drawn on ``layer``'s line: two strokes (M...L...) each."""
    match = re.search(rf'data-layer="{layer}" d="[^"]*" stroke="[^"]+"/><path class="tf-markers"'
                      r' d="([^"]*)"', svg)  # fmt: skip
    return match.group(1).count("M") // 2 if match else 0


def test_the_simulator_follows_gradscalers_rule():
    metrics = simulated()
    history = metrics["scale_history"]
    assert metrics["overflow_count"] > 2 and metrics["growth_events"] > 2
    clean = 0
    for before, after in zip(history, history[1:]):
        assert before["found_inf"] == (MAGNITUDES[before["step"]] * before["scale"] > 65504)
        if before["found_inf"]:
            assert after["scale"] == before["scale"] * 0.5
            clean = 0
        else:
            clean += 1
            grown = clean == CONFIG["growth_interval"]
            assert after["scale"] == before["scale"] * (2.0 if grown else 1.0)
            clean = 0 if grown else clean
    # the float16 regression of the gallery: the same rule, its overflows real casts
    run = gallery.scaled_run({"growth_interval": 20}, n_steps=60)
    first = next(r for r in run["scale_history"] if r["found_inf"])
    assert run["scale_history"][first["step"] + 1]["scale"] == first["scale"] / 2


def test_a_run_fed_step_by_step_is_drawn_and_counted():
    w = LossScaleWidget()
    metrics = simulated(w)
    history = metrics["scale_history"]
    scale = w.layer("scale", "scale")
    assert scale["x"] == [r["step"] for r in history]
    assert scale["y"] == [r["scale"] for r in history]
    assert scale["markers"] == [i for i, r in enumerate(history) if r["found_inf"]]
    loss = w.layer("loss", "loss")
    assert loss["y"] == metrics["losses"] and loss["markers"] == scale["markers"]
    assert w.counts == {"steps": len(history), "overflows": metrics["overflow_count"],
                        "skipped": metrics["skipped_steps"],
                        "growths": metrics["growth_events"]}  # fmt: skip
    title = w.data["title"]
    assert f"{metrics['overflow_count']} overflows · {metrics['skipped_steps']} skipped" in title
    assert f"{metrics['growth_events']} growths" in title and "at step 119" in title
    assert w.panel("scale")["y"]["scale"] == "log"
    # the widget is a training loop's callback, (step, info), and so is its .callback
    other = LossScaleWidget()
    for r, value in zip(history, metrics["losses"]):
        other.callback(r["step"], {"loss": value, "scale": r["scale"], "found_inf": r["found_inf"]})
    assert other.data == w.data


def test_each_step_is_a_few_small_patches(comm):
    w = LossScaleWidget()
    w.comm.messages.clear()
    w.min_interval = 0  # every step its own message, to measure each
    history = simulated(w)["scale_history"]
    messages = sent(w)
    assert len(messages) == len(MAGNITUDES)
    assert not any(m.get("state", {}).get("data") for m in messages)  # never the whole data
    assert all(size(m) < 700 for m in messages)
    paths = {tuple(p["path"][-1:]) for m in messages for p in m["content"]["patches"]}
    assert paths == {("x",), ("y",), ("markers",), ("title",)}
    # a step costs the same at step 119 as at step 1 (a few digits more in the title at most)
    clean = [size(m) for m, r in zip(messages, history) if not r["found_inf"]]
    assert max(clean) - min(clean) < 40 and size(w.get_state()["data"]) > 8 * max(clean)


def test_the_snapshot_shows_the_crosses_and_the_counts():
    w = LossScaleWidget()
    metrics = simulated(w)
    svg = w.snapshot()
    assert crosses(svg, "scale") == metrics["overflow_count"] > 0
    assert crosses(svg, "loss") == metrics["skipped_steps"]
    assert f"{metrics['overflow_count']} overflows" in svg and "overflow (skipped)" in svg
    data, _ = w._repr_mimebundle_()
    assert data["image/svg+xml"] == svg
    overflows = metrics["overflow_count"]
    assert data["text/plain"] == f"LossScaleWidget(steps=120, overflows={overflows})"


def test_the_controls_restart_the_run(comm):
    runs = []

    def run(config, widget):
        runs.append(config)
        simulated(widget, config)

    w = LossScaleWidget(run=run, config=CONFIG)
    assert runs == [CONFIG] and len(w.layer("scale", "scale")["x"]) == 120
    ids = [c["id"] for c in w.data["controls"]]
    assert ids == ["initial_scale_log2", "growth_interval", "growth_factor", "backoff_factor",
                   "restart", "logloss"]  # fmt: skip
    assert w.view["initial_scale_log2"] == 16 and w.view["growth_interval"] == 10
    w.comm.messages.clear()
    # a slider moves (as the front end sends it): the run starts again with that config
    w.set_state({"view": {**w.view, "growth_interval": 40}})
    assert runs[-1] == {**CONFIG, "growth_interval": 40}
    again = simulated(config=runs[-1])
    assert w.layer("scale", "scale")["x"] == list(range(120))  # cleared, then refilled
    assert w.layer("scale", "scale")["y"] == [r["scale"] for r in again["scale_history"]]
    assert w.counts["growths"] == again["growth_events"] != simulated()["growth_events"]
    assert not any(m.get("state", {}).get("data") for m in sent(w))  # patches, not all again
    w.set_state({"view": {**w.view, "initial_scale_log2": 10}})
    assert runs[-1]["initial_scale"] == 1024.0 and w.layer("scale", "scale")["y"][0] == 1024.0
    w.set_state({"view": {**w.view, "backoff_factor": 0.25, "growth_factor": 4.0}})
    assert runs[-1]["backoff_factor"] == 0.25 and runs[-1]["growth_factor"] == 4.0
    count = len(runs)
    w.set_state({"view": {**w.view, "restart": 1}})  # the button: the same config again
    assert len(runs) == count + 1 and runs[-1] == runs[-2]
    # without a run: only the log-loss toggle, and no restart
    plain = LossScaleWidget()
    assert [c["id"] for c in plain.data["controls"]] == ["logloss"]
    with pytest.raises(ValueError, match="needs a run"):
        plain.restart()
    # start=False waits for the first change
    waiting = []
    LossScaleWidget(run=lambda c, w: waiting.append(c), start=False)
    assert waiting == []


@dataclass(frozen=True)
class Record:  # the amp module's ScaleRecord: attributes, not keys
    step: int
    scale: float
    found_inf: bool
    skipped: bool
    next_scale: float


@dataclass(frozen=True)
class Metrics:  # and its StabilityMetrics
    current_scale: float
    overflow_count: int
    skipped_steps: int
    growth_events: int
    scale_history: tuple = field(repr=False)


def test_a_recorded_run_replays_without_training():
    live = LossScaleWidget()
    metrics = simulated(live)
    losses = metrics.pop("losses")
    replayed = LossScaleWidget.replay(metrics, losses)
    assert replayed.data["panels"] == live.data["panels"]
    assert replayed.counts == live.counts and replayed.metrics["current_scale"] == (
        metrics["current_scale"])  # fmt: skip
    assert [c["id"] for c in replayed.data["controls"]] == ["logloss"]
    # the amp module's dataclasses replay the same; losses by step, or none
    history = tuple(Record(r["step"], r["scale"], r["found_inf"], r["skipped"], 0.0)
                    for r in metrics["scale_history"])  # fmt: skip
    record = Metrics(metrics["current_scale"], metrics["overflow_count"],
                     metrics["skipped_steps"], metrics["growth_events"], history)  # fmt: skip
    by_step = LossScaleWidget.replay(record, {r.step: v for r, v in zip(history, losses)})
    assert by_step.data["panels"] == live.data["panels"]
    no_loss = LossScaleWidget.replay(record)
    assert no_loss.layer("loss", "loss")["x"] == [] and no_loss.layer("scale", "scale")["y"]
    # the title's counts are the metrics' own (a history may hold only the last steps)
    window = {**metrics, "scale_history": metrics["scale_history"][-20:], "overflow_count": 99}
    assert "99 overflows" in LossScaleWidget.replay(window).data["title"]
    with pytest.raises(ValueError, match="lack"):
        LossScaleWidget.replay({"scale_history": []})
    with pytest.raises(ValueError, match="one a step"):
        LossScaleWidget.replay(metrics, losses[:-1])


def test_bad_input_is_refused():
    w = LossScaleWidget()
    with pytest.raises(ValueError, match="positive finite"):
        w.update(0, scale=np.inf)
    with pytest.raises(ValueError, match="config takes"):
        LossScaleWidget(config={"init_scale": 2.0})
    assert set(DEFAULT_CONFIG) == set(CONFIG)
