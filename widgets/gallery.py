"""Every widget, and every panel of the drawing kit, on real tfgrad numbers.

``notebooks/99_widget_gallery.ipynb`` shows each example, and through it the docs site's
gallery page shows their snapshots. The chart examples draw with the kit the widgets that later
issues build on the same base, so that its design is tested on them:

- :func:`hessian`, :func:`hessian_n`, :func:`hessian_density`: the :class:`HessianWidget` on a
  two-variable function (contours, the quadratic model, the eigenvectors and the gradient and
  Newton steps at a point the student drags), on 12 variables (the exact Hessian as a heat map
  beside its eigenvalues, tracked along a gradient descent) and on 400 (its eigenvalue density
  by stochastic Lanczos quadrature, the Hessian never formed);
- :func:`loss_scale`, :func:`loss_scale_replay`: the :class:`LossScaleWidget` following a
  float16 regression live, with controls for the scaler's config that restart the run, and
  replaying a recorded run (GradScaler's rule on synthetic gradient magnitudes);
- :func:`checkpointing`: the memory/recompute frontier of uniform checkpointing, the current
  choice highlighted, and the timeline of its schedule;
- :func:`gradient_flow`: the gradient norm reaching each layer of a deep network, as bars.

>>> from tfgrad_widgets import gallery
>>> sorted(gallery.EXAMPLES)  # doctest: +NORMALIZE_WHITESPACE
['checkpointing', 'gradient_flow', 'hessian', 'hessian_density', 'hessian_n', 'loss_scale',
 'loss_scale_replay', 'mlp_step', 'tape']
"""

from __future__ import annotations

import math

import numpy as np

import tfgrad as tg

from .chart_widget import ChartWidget
from .hessian_widget import HessianWidget
from .loss_scale_widget import LossScaleWidget
from .tape_widget import TapeWidget

__all__ = ["EXAMPLES", "tape", "mlp_step", "hessian", "hessian_n", "hessian_density",
           "loss_scale", "loss_scale_replay", "checkpointing", "gradient_flow"]  # fmt: skip


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


def _scaler(config: dict):
    """tfgrad.amp's loss scaler (GradScaler's update rule) with the widget's config."""
    from tfgrad.amp import AMPConfig, AMPPolicy

    keys = ("initial_scale", "growth_factor", "backoff_factor", "growth_interval")
    return AMPPolicy(AMPConfig(enabled=True, **{k: config[k] for k in keys}))


def _metrics(scale: float, history: list, growths: int) -> dict:
    """What ``stability_metrics()`` returns, as a dict."""
    overflows = sum(r["found_inf"] for r in history)
    return {"current_scale": scale, "overflow_count": overflows,
            "skipped_steps": sum(r["skipped"] for r in history), "growth_events": growths,
            "scale_history": history}  # fmt: skip


def scaled_run(config: dict | None = None, n_steps: int = 160, seed: int = 0,
               callback=None) -> dict:  # fmt: skip
    """Dynamic loss scaling as PyTorch's GradScaler does it, on a noisy linear regression
    trained with minibatches, its scaled gradients cast to float16: an overflow (an infinity
    after the cast) skips the step and backs the scale off. ``config`` as
    :data:`~tfgrad_widgets.loss_scale_widget.DEFAULT_CONFIG`; ``callback(step, info)`` after
    each step (``info``: ``loss``, ``scale``, ``found_inf``), e.g. a LossScaleWidget. Returns
    what ``stability_metrics()`` returns, plus ``losses``."""
    from .loss_scale_widget import DEFAULT_CONFIG

    config = {**DEFAULT_CONFIG, **(config or {})}
    rng = tg.random.Generator(seed)
    x = rng.normal((256, 4))
    y = x @ tg.tensor([2.0, -1.0, 0.5, 3.0]) + rng.normal(256, std=2.0)
    w = tg.zeros(4)
    loss = lambda w, x, y: tg.mean((x @ w - y) ** 2)  # noqa: E731
    scaler, growths = _scaler(config), 0
    scale = scaler.scale
    history, losses = [], []
    for step in range(n_steps):
        batch = tg.tensor(np.arange(step * 8, step * 8 + 8) % 256)
        value, g = tg.value_and_grad(loss)(w, tg.take(x, batch, axis=0), tg.take(y, batch))
        with np.errstate(over="ignore"):  # the overflow is what is being detected
            scaled = (g.numpy() * scale).astype(np.float16)  # what a float16 backward holds
        found_inf = not np.isfinite(scaled).all()
        history.append({"step": step, "scale": scale, "found_inf": found_inf,
                        "skipped": found_inf})  # fmt: skip
        losses.append(float(value))
        if callback is not None:
            callback(step, {"loss": float(value), "scale": scale, "found_inf": found_inf})
        if not found_inf:
            w = w - 0.02 * tg.tensor(scaled.astype(np.float64) / scale)
        used, scale = scale, scaler.update_scale(found_inf)
        growths += scale > used
    return {**_metrics(scale, history, growths), "losses": losses}


def loss_scale() -> LossScaleWidget:
    """The float16 regression, live: the sliders set the scaler's config and restart the run,
    the widget following each step (its callback)."""
    return LossScaleWidget(
        run=lambda config, widget: scaled_run(config, callback=widget),
        config={"initial_scale": 2.0**16, "growth_interval": 20},
    )


def gradient_magnitudes(n_steps: int = 300, seed: int = 0) -> list:
    """A synthetic run's largest gradient magnitude at each step: log-normal around 0.05, and
    about one step in 30 a spike 50 times larger (a hard batch)."""
    rng = np.random.default_rng(seed)
    g = np.exp(rng.normal(np.log(0.05), 0.6, n_steps))
    g[rng.random(n_steps) < 1 / 30] *= 50
    return g.tolist()


def simulate_scaler(config: dict, magnitudes, callback=None) -> dict:
    """tfgrad.amp's scaler (GradScaler's rule) on a given sequence of gradient magnitudes: a step
    overflows when magnitude × scale passes float16's largest number; a synthetic loss falls
    by 2% on each step that is not skipped. Returns what ``stability_metrics()`` returns (a
    dict) plus ``losses``; ``callback(step, info)`` after each step."""
    scaler, growths, loss = _scaler(config), 0, 1.0
    scale = scaler.scale
    history, losses = [], []
    for step, magnitude in enumerate(magnitudes):
        found_inf = magnitude * scale > FLOAT16_MAX
        history.append({"step": step, "scale": scale, "found_inf": found_inf,
                        "skipped": found_inf})  # fmt: skip
        losses.append(loss)
        if callback is not None:
            callback(step, {"loss": loss, "scale": scale, "found_inf": found_inf})
        if not found_inf:
            loss = 0.1 + 0.98 * (loss - 0.1)
        used, scale = scale, scaler.update_scale(found_inf)
        growths += scale > used
    return {**_metrics(scale, history, growths), "losses": losses}


def loss_scale_replay() -> LossScaleWidget:
    """A recorded run (the simulator's ``stability_metrics()``), replayed without training."""
    from .loss_scale_widget import DEFAULT_CONFIG

    metrics = simulate_scaler(DEFAULT_CONFIG, gradient_magnitudes())
    return LossScaleWidget.replay(metrics, metrics.pop("losses"),
                                  title="A recorded run, replayed")  # fmt: skip


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
            "loss_scale_replay": loss_scale_replay, "checkpointing": checkpointing,
            "gradient_flow": gradient_flow}  # fmt: skip
