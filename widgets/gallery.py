"""Every widget, and every panel of the drawing kit, on real tfgrad numbers.

``notebooks/99_widget_gallery.ipynb`` shows each example, and through it the docs site's
gallery page shows their snapshots. The chart examples draw with the kit the widgets that later
issues build on the same base, so that its design is tested on them:

- :func:`hessian`, :func:`hessian_n`, :func:`hessian_density`: the :class:`HessianWidget` on a
  two-variable function (contours, the quadratic model, the eigenvectors and the gradient and
  Newton steps at a point the student drags), on 12 variables (the exact Hessian as a heat map
  beside its eigenvalues, tracked along a gradient descent) and on 400 (its eigenvalue density
  by stochastic Lanczos quadrature, the Hessian never formed);
- :func:`loss_scale`: dynamic loss scaling (the loss scale on a log axis, overflow steps marked,
  the loss beside it) with controls that restart the run;
- :func:`checkpointing`: the memory/recompute frontier of uniform checkpointing, the current
  choice highlighted, and the timeline of its schedule;
- :func:`gradient_flow`: the gradient norm reaching each layer of a deep network, as bars.

>>> from tfgrad_widgets import gallery
>>> sorted(gallery.EXAMPLES)  # doctest: +NORMALIZE_WHITESPACE
['checkpointing', 'gradient_flow', 'hessian', 'hessian_density', 'hessian_n', 'loss_scale',
 'mlp_step', 'tape']
"""

from __future__ import annotations

import math

import numpy as np

import tfgrad as tg

from .chart_widget import ChartWidget
from .hessian_widget import HessianWidget
from .tape_widget import TapeWidget

__all__ = ["EXAMPLES", "tape", "mlp_step", "hessian", "hessian_n", "hessian_density",
           "loss_scale", "checkpointing", "gradient_flow"]  # fmt: skip


# ---- Tapes --------------------------------------------------------------------------------
def micrograd_example(a, b):
    c = a + b
    d = a * b + b**3
    return c * d - a


def tape() -> TapeWidget:
    """Micrograd's example, recorded and swept."""
    return TapeWidget(micrograd_example, -4.0, 2.0)


def mlp_loss(x, w1, b1, w2, b2, y):
    with tg.name_scope("layer1"):
        h = tg.tanh(x @ w1 + b1)
    with tg.name_scope("layer2"):
        z = h @ w2 + b2
    with tg.name_scope("loss"):
        return -tg.sum(y * tg.log_softmax(z)) / x.shape[0]


def mlp_inputs(seed: int = 0) -> tuple:
    """A batch of 8 points with 4 features, 6 tanh units, 3 classes (float64, fixed seed)."""
    rng = tg.random.Generator(seed)
    x = rng.normal((8, 4))
    labels = np.arange(8) % 3
    y = tg.tensor(np.eye(3)[labels])
    return (x, rng.normal((4, 6), std=0.5), tg.zeros(6), rng.normal((6, 3), std=0.5),
            tg.zeros(3), y)  # fmt: skip


def mlp_step() -> TapeWidget:
    """A 2-layer MLP's training step: each layer (a name scope) is one box until clicked."""
    return TapeWidget(mlp_loss, *mlp_inputs())


# ---- Second order ---------------------------------------------------------------------------
def rosenbrock(x, y):
    """A curved valley (b = 5 instead of 100, so that its contours stay readable)."""
    return (1 - x) ** 2 + 5 * (y - x**2) ** 2


def rosenbrock_n(v):
    return tg.sum((1 - v[:-1]) ** 2 + 5 * (v[1:] - v[:-1] ** 2) ** 2)


LEVELS = [0.05, 0.2, 0.6, 1.5, 4, 10, 25]


def hessian() -> HessianWidget:
    """Drag the point: the quadratic model, the eigenvectors and both steps follow (the exact
    Hessian at each point, from the kernel)."""
    return HessianWidget(lambda v: rosenbrock(v[0], v[1]), [-1.2, 1.0], bounds=((-2, 2), (-1, 3)),
                         levels=LEVELS)  # fmt: skip


def hessian_n(n_steps: int = 30, rate: float = 0.01) -> HessianWidget:
    """The exact Hessian of a 12-variable Rosenbrock function as a heat map beside its
    eigenvalues, followed along ``n_steps`` of gradient descent: the widget is the loop's
    callback (``track(step, x=v)``), so the picture ends at the last point and the last panel
    holds the top eigenvalue and the trace at every step."""
    v = np.linspace(-1.0, 1.5, 12)
    widget = HessianWidget(rosenbrock_n, v)
    for step in range(n_steps):
        widget.track(step, x=v)
        v = v - rate * tg.grad(rosenbrock_n)(tg.tensor(v)).numpy()
    widget.flush()
    return widget


def hessian_density(n: int = 400) -> HessianWidget:
    """A Rosenbrock function of ``n`` variables: past ``max_heatmap`` the widget never forms
    the Hessian and draws its eigenvalue density by stochastic Lanczos quadrature."""
    return HessianWidget(rosenbrock_n, np.linspace(-1.0, 1.5, n))


# ---- Mixed precision --------------------------------------------------------------------
FLOAT16_MAX = float(np.finfo(np.float16).max)


def scaled_run(growth_interval: int, n_steps: int = 160, seed: int = 0) -> dict:
    """Dynamic loss scaling as PyTorch's GradScaler does it (initial scale 2^16, factor 2), on a
    noisy linear regression trained with minibatches, its scaled gradients cast to float16: an
    overflow (an infinity after the cast) skips the step and halves the scale;
    ``growth_interval`` clean steps in a row double it."""
    rng = tg.random.Generator(seed)
    x = rng.normal((256, 4))
    y = x @ tg.tensor([2.0, -1.0, 0.5, 3.0]) + rng.normal(256, std=2.0)
    w = tg.zeros(4)
    loss = lambda w, x, y: tg.mean((x @ w - y) ** 2)  # noqa: E731
    scale, clean = 2.0**16, 0
    scales, losses, overflows = [], [], []
    for step in range(n_steps):
        batch = tg.tensor(np.arange(step * 8, step * 8 + 8) % 256)
        value, g = tg.value_and_grad(loss)(w, tg.take(x, batch, axis=0), tg.take(y, batch))
        with np.errstate(over="ignore"):  # the overflow is what is being detected
            scaled = (g.numpy() * scale).astype(np.float16)  # what a float16 backward holds
        scales.append(scale)
        losses.append(float(value))
        if not np.isfinite(scaled).all():
            overflows.append(step)
            scale, clean = scale / 2, 0
            continue
        w = w - 0.02 * tg.tensor(scaled.astype(np.float64) / scale)
        clean += 1
        if clean == growth_interval:
            scale, clean = scale * 2, 0
    return {"steps": list(range(n_steps)), "scales": scales, "losses": losses,
            "overflows": overflows}  # fmt: skip


def loss_scale() -> ChartWidget:
    """The loss scale falls at each overflow (crosses) and grows after clean steps; the slider
    sets how many, the button runs it again."""
    run = scaled_run(20)
    chart = ChartWidget({
        "title": "Dynamic loss scaling (float16 gradients)",
        "columns": 2,
        "controls": [
            {"id": "growth", "kind": "slider", "label": "growth interval", "min": 5, "max": 60,
             "step": 5, "value": 20},
            {"id": "restart", "kind": "button", "label": "run again"},
            {"id": "logloss", "kind": "toggle", "label": "log loss", "key": "loss.yscale",
             "values": ["linear", "log"]},
        ],
        "panels": [
            {"id": "scale", "kind": "xy", "title": "loss scale", "x": {"label": "step"},
             "y": {"label": "scale", "scale": "log"},
             "layers": [{"id": "scale", "x": run["steps"], "y": run["scales"], "color": 0,
                         "markers": run["overflows"], "marker_label": "overflow: step skipped"}]},
            {"id": "loss", "kind": "xy", "title": "loss", "x": {"label": "step"},
             "y": {"label": "mean squared error"},
             "layers": [{"id": "loss", "x": run["steps"], "y": run["losses"], "color": 1}]},
        ],
    })  # fmt: skip

    def restart(_value) -> None:
        again = scaled_run(int(chart.view.get("growth", 20)))
        chart.set_layer("scale", "scale", y=again["scales"], markers=again["overflows"])
        chart.set_layer("loss", "loss", y=again["losses"])

    chart.on_view("restart", restart)
    chart.on_view("growth", restart)
    return chart


# ---- Checkpointing ------------------------------------------------------------------------
def uniform_schedule(n_layers: int, segment: int) -> dict:
    """A model of checkpointing a chain of ``n_layers`` equal layers in segments of
    ``segment`` layers: the forward pass keeps only each segment's input; the backward pass
    recomputes one segment's other activations at a time, then sweeps it. Memory counts the
    activations held at the peak (every segment's input, plus one segment's others), recompute
    the extra layer evaluations. (The CheckpointWidget will draw measured bytes instead.)"""
    n_segments = math.ceil(n_layers / segment)
    spans, t = [], 0.0
    for layer in range(n_layers):
        kept = layer % segment == 0  # a segment's input: held until the backward pass
        spans.append({"lane": 0, "start": t, "end": t + 1, "color": 0 if kept else 5})
        t += 1
    for s in reversed(range(n_segments)):
        first, last = s * segment, min(n_layers, (s + 1) * segment)
        if last - first > 1:
            spans.append({"lane": 1, "start": t, "end": t + last - first - 1, "color": 4,
                          "label": "recompute"})  # fmt: skip
            t += last - first - 1
        spans.append({"lane": 2, "start": t, "end": t + 2 * (last - first), "color": 1,
                      "label": f"∂ {first}–{last - 1}"})  # fmt: skip
        t += 2 * (last - first)
    return {"memory": n_segments + segment - 1, "recompute": n_layers - n_segments,
            "spans": spans}  # fmt: skip


def checkpointing(n_layers: int = 16) -> ChartWidget:
    """Pick a point on the frontier: the timeline shows that schedule."""
    segments = [k for k in range(1, n_layers + 1) if n_layers % k == 0]
    schedules = [uniform_schedule(n_layers, k) for k in segments]
    best = sorted((s for s in schedules if not any(
        o["memory"] <= s["memory"] and o["recompute"] <= s["recompute"] and o != s
        for o in schedules)), key=lambda s: s["memory"])  # fmt: skip
    chosen = segments.index(4)
    chart = ChartWidget({
        "title": f"Checkpointing a chain of {n_layers} layers",
        "panels": [
            {"id": "frontier", "kind": "xy", "title": "memory against recompute: click a point",
             "x": {"label": "activations held at the peak"},
             "y": {"label": "extra layer evaluations"},
             "layers": [{"id": "frontier", "kind": "line", "x": [s["memory"] for s in best],
                         "y": [s["recompute"] for s in best], "color": 5,
                         "label": "the frontier (nothing does better on both)"},
                        {"id": "choices", "kind": "scatter", "selectable": True,
                         "selected": chosen, "color": 0,
                         "x": [s["memory"] for s in schedules],
                         "y": [s["recompute"] for s in schedules],
                         "labels": [f"segments of {k}" for k in segments]}]},
            {"id": "schedule", "kind": "timeline",
             "title": f"schedule: segments of {segments[chosen]}",
             "lanes": ["forward", "recompute", "backward"], "spans": schedules[chosen]["spans"],
             "x": {"label": "time (layer evaluations; a backward step counts 2)"}},
        ],
    })  # fmt: skip

    def picked(index) -> None:
        chart.set_panel("schedule", spans=schedules[index]["spans"],
                        title=f"schedule: segments of {segments[index]}")  # fmt: skip

    chart.on_view("frontier.choices", picked)
    return chart


# ---- Gradient flow --------------------------------------------------------------------------
def gradient_norms(depth: int = 8, width: int = 16, seed: int = 0) -> list:
    """The norm of the loss gradient with respect to each layer's weights in a deep sigmoid
    network: each layer passes the gradient back through sigmoid' <= 1/4, so it shrinks layer
    by layer towards the input (the vanishing gradient)."""
    rng = tg.random.Generator(seed)
    x = rng.normal((32, width))
    weights = [rng.normal((width, width), std=1 / math.sqrt(width)) for _ in range(depth)]

    def loss(*weights):
        h = x
        for w in weights:
            h = tg.sigmoid(h @ w)
        return tg.mean(h**2)

    grads = tg.grad(loss, argnums=tuple(range(depth)))(*weights)
    return [float(np.linalg.norm(g.numpy())) for g in grads]


def gradient_flow() -> ChartWidget:
    """Gradient norms by layer on a log axis; the weakest layer is highlighted."""
    norms = gradient_norms()
    return ChartWidget({
        "title": "Gradient flow through 8 sigmoid layers",
        "controls": [{"id": "logy", "kind": "toggle", "label": "log scale", "key": "flow.yscale",
                      "values": ["linear", "log"]}],
        "panels": [{"id": "flow", "kind": "bars", "title": "‖∂L/∂Wₖ‖ by layer",
                    "labels": [f"W{k}" for k in range(len(norms))], "values": norms,
                    "highlight": [int(np.argmin(norms))], "y": {"label": "gradient norm"}}],
    }, view={"flow.yscale": "log"})  # fmt: skip


EXAMPLES = {"tape": tape, "mlp_step": mlp_step, "hessian": hessian, "hessian_n": hessian_n,
            "hessian_density": hessian_density, "loss_scale": loss_scale,
            "checkpointing": checkpointing, "gradient_flow": gradient_flow}  # fmt: skip
