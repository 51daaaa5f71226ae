"""``fit``: the training loop, with a progress bar, a history and callbacks.

Each step is :func:`_step`: the gradient of ``loss(model(inputs), targets)`` with respect to the
parameter dict by one reverse sweep (:func:`tfgrad.value_and_grad` of
:func:`~tfgrad.nn.functional_call`), then ``optimizer.step`` gives new tensors, which the
model is rebound to. Mixed precision (``fit(..., amp=policy)``, a :class:`tfgrad.amp.AMPPolicy`)
hooks in at that one function, as PyTorch's ``autocast`` and ``GradScaler`` do: the forward
under the policy's autocast, the loss scaled before the sweep, the gradients unscaled and
checked for inf/NaN after it, the optimiser step skipped when they hold any, the scale updated.
The parameters (master weights) keep their dtype: autocast casts them per op, and the casts'
gradients reach them in their own dtype.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import tfgrad as tg
from tfgrad.errors import OptionError

from .module import Module, functional_call
from .optim import Optimizer

__all__ = ["fit", "evaluate", "History", "StepInfo", "StopTraining"]

Metric = Callable[[Any, Any], float]
# what fit calls on amp= (a tfgrad.amp.AMPPolicy; duck-typed, so nn needs no import of amp)
_POLICY_METHODS = ("autocast", "scale_loss", "unscale_and_check", "update_scale")


class StopTraining(Exception):
    """Raise it from a callback to end :func:`fit` after the current step (early stopping);
    ``fit`` returns the history so far, with ``stopped`` set."""


@dataclass(frozen=True)
class StepInfo:
    """What a callback is told, after every step (``end_of_epoch`` False) and once more at the
    end of each epoch (``end_of_epoch`` True, ``metrics`` that epoch's row of the history).
    Its fields read as attributes or by name, ``info.scale`` or ``info["scale"]``."""

    epoch: int  # 0-based
    batch: int  # index of the batch in the epoch (at an epoch's end: the number of batches)
    loss: float  # this step's loss (at an epoch's end: the epoch's mean)
    batch_size: int
    end_of_epoch: bool = False
    metrics: Mapping[str, float] = field(default_factory=dict)
    # the model's parameters after the step, and the step's gradients (empty at an epoch's
    # end), both {name: tensor}: what a widget that follows training draws
    params: Mapping[str, tg.Tensor] = field(default_factory=dict)
    grads: Mapping[str, tg.Tensor] = field(default_factory=dict)
    # mixed precision (fit's amp=; None and False without it): the loss scale this step used
    # (at an epoch's end: the one the next step uses), and whether the step's gradients held
    # inf/NaN, so that its optimiser step was skipped (``skipped``, the same)
    scale: float | None = None
    found_inf: bool = False

    @property
    def skipped(self) -> bool:
        return self.found_inf

    # Read as a mapping too (``info["scale"]``, ``info.get("found_inf")``): what a callback
    # written for plain dicts, such as tfgrad_widgets.LossScaleWidget, reads.
    def __getitem__(self, name: str) -> Any:
        if name in self.__dataclass_fields__ or name == "skipped":
            return getattr(self, name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default


@dataclass
class History:
    """What :func:`fit` recorded: ``loss``, one float per step; ``epochs``, one dict per epoch
    (``"epoch"``, ``"loss"``: the mean over its items, each metric on the training batches,
    and ``"val_loss"``, ``"val_<metric>"`` when validation data was given)."""

    loss: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped: bool = False

    @property
    def steps(self) -> int:
        return len(self.loss)

    def metric(self, name: str) -> list[float]:
        """One epoch metric across epochs, e.g. ``history.metric("val_accuracy")``."""
        return [row[name] for row in self.epochs]


def _apply(optimizer: Optimizer, params: dict, grads: dict) -> dict:
    if optimizer._mapping:
        return optimizer.step(params, grads)
    names = list(params)  # an optimiser made from model.parameters(): a list in the same order
    new = optimizer.step([params[n] for n in names], [grads[n] for n in names])
    return dict(zip(names, new))


def _step(
    model: Module, params: dict, inputs, targets, loss: Callable, optimizer: Optimizer, amp=None
):
    """One training step: ``(new_params, grads, loss value, predictions, scale, found_inf)``;
    the predictions and the value are constants (no tape holds them). With ``amp`` the grads
    are the unscaled ones, and on ``found_inf`` the new params are ``params`` themselves."""

    def objective(p):
        with contextlib.nullcontext() if amp is None else amp.autocast():
            prediction = functional_call(model, p, inputs)
            value = loss(prediction, targets)
        # the block is left before the reverse sweep, which runs in the dtypes the forward chose
        scaled = value if amp is None else amp.scale_loss(value)
        return scaled, (tg.stop_gradient(value), tg.stop_gradient(prediction))

    (_, (value, prediction)), grads = tg.value_and_grad(objective, has_aux=True)(params)
    if amp is None:
        return _apply(optimizer, params, grads), grads, value, prediction, None, False
    scale = amp.scale  # the scale this step used, before update_scale changes it
    grads, found_inf = amp.unscale_and_check(grads)
    # GradScaler.step: a step whose gradients hold inf/NaN calls no optimiser step at all, so
    # neither the parameters nor the optimiser's state (moments, step count) move
    new = params if found_inf else _apply(optimizer, params, grads)
    amp.update_scale(found_inf)
    return new, grads, value, prediction, scale, bool(found_inf)


def _check_amp(amp: Any) -> None:
    missing = [m for m in _POLICY_METHODS if not callable(getattr(amp, m, None))]
    if not missing and hasattr(amp, "scale"):
        return
    if hasattr(amp, "target_dtype") and hasattr(amp, "initial_scale"):
        raise OptionError(
            "fit: amp= takes the policy, not its config: pass amp=tfgrad.amp.AMPPolicy(config) "
            "(and keep the policy to read its stability_metrics() after training)."
        )
    raise OptionError(
        f"fit: amp= takes a mixed-precision policy (tfgrad.amp.AMPPolicy), got "
        f"{type(amp).__name__}, which lacks {missing or ['scale']}; pass "
        "amp=tfgrad.amp.AMPPolicy(tfgrad.amp.AMPConfig(enabled=True)), or amp=None."
    )


def _batch_size(x: Any) -> int:
    shape = getattr(x, "shape", None)
    return int(shape[0]) if shape else 1


class _Mean:
    """Means over items of the loss and each metric, weighted by batch size."""

    def __init__(self):
        self.totals: dict[str, float] = {}
        self.count = 0

    def add(self, n: int, values: Mapping[str, float]) -> None:
        self.count += n
        for k, v in values.items():
            self.totals[k] = self.totals.get(k, 0.0) + n * float(v)

    def means(self, prefix: str = "") -> dict[str, float]:
        return {prefix + k: v / max(self.count, 1) for k, v in self.totals.items()}


def evaluate(
    model: Module,
    data: Iterable,
    loss: Callable | None = None,
    metrics: Mapping[str, Metric] | None = None,
) -> dict[str, float]:
    """The mean ``loss`` and ``metrics`` of ``model`` (in eval mode, restored after) over the
    batches of ``data``, weighted by batch size, e.g. ``{"loss": 0.1, "accuracy": 0.97}``."""
    was_training = model.training
    model.eval()
    mean = _Mean()
    try:
        for inputs, targets in data:
            prediction = model(inputs)
            values = {} if loss is None else {"loss": loss(prediction, targets).item()}
            values.update({k: m(prediction, targets) for k, m in (metrics or {}).items()})
            mean.add(_batch_size(targets), values)
    finally:
        model.train(was_training)
    return mean.means()


def _progress(enabled: bool, total: int | None):
    if not enabled:
        return None
    from tqdm.auto import tqdm  # a notebook widget in Jupyter, text in a terminal

    return tqdm(total=total, unit="step", leave=True)


def fit(
    model: Module,
    data: Iterable,
    loss: Callable[[Any, Any], tg.Tensor],
    optimizer: Optimizer,
    epochs: int = 1,
    callbacks: Sequence[Callable[[int, StepInfo], Any]] | Callable[[int, StepInfo], Any] = (),
    *,
    metrics: Mapping[str, Metric] | None = None,
    validation: Iterable | None = None,
    progress: bool = True,
    amp: Any = None,
) -> History:
    """Train ``model`` in place (its parameters rebound to new tensors after every step) and
    return the :class:`History`.

    ``data`` is an iterable of ``(inputs, targets)`` batches, iterated once per epoch (a list,
    or :func:`tfgrad.nn.batches`, which reshuffles each pass); ``loss(prediction, target)``
    returns a scalar tensor (:func:`~tfgrad.nn.cross_entropy`, :func:`~tfgrad.nn.mse_loss`);
    ``optimizer`` was made from ``model.state_dict()`` or ``model.parameters()``.
    ``metrics`` maps names to ``metric(prediction, target) -> float`` (e.g.
    :func:`~tfgrad.nn.accuracy`), averaged per epoch on the training batches and, in eval
    mode, on ``validation`` batches. Each callback (or the one callable given) is called as
    ``callback(step, info)`` with the step count so far and a :class:`StepInfo`, after every
    step and at every epoch's end; a callback may raise :class:`StopTraining`. ``progress``
    shows a tqdm bar (``tqdm.auto``: a widget in a notebook, text in a terminal).

    ``amp`` is a mixed-precision policy, :class:`tfgrad.amp.AMPPolicy` (PyTorch's autocast and
    ``GradScaler`` in one): each step runs the forward under ``amp.autocast()``, differentiates
    the loss scaled by ``amp.scale``, unscales and checks the gradients, skips the optimiser
    step when they hold inf/NaN and updates the scale. The model's parameters keep their
    dtype (float32 master weights). ``StepInfo.scale`` and ``StepInfo.found_inf`` tell the
    callbacks (a ``tfgrad_widgets.LossScaleWidget`` follows them); the policy keeps the
    whole history (``amp.stability_metrics()``). History's ``loss`` is the unscaled loss.

    Cost per step: one forward pass and one reverse sweep, plus the optimiser's few
    elementwise ops per parameter, and reading the loss back (``.item()``). With ``amp``,
    also a cast per matmul input, a multiply per gradient, and each gradient read to the host
    once (the inf/NaN check).

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> x, y = nn.make_moons(64, generator=tg.random.Generator(1))
    >>> model = nn.MLP(2, [8, 2], generator=tg.random.Generator(0))
    >>> history = nn.fit(model, nn.batches(x, y, 16), nn.cross_entropy,
    ...                  nn.Adam(model.state_dict(), lr=0.01), epochs=2, progress=False)
    >>> history.steps, [row["epoch"] for row in history.epochs]
    (8, [0, 1])
    """
    if amp is not None:
        _check_amp(amp)
    if int(epochs) < 0:
        raise OptionError(f"fit: epochs must be >= 0, got {epochs}.")
    metrics = dict(metrics or {})
    callbacks = (callbacks,) if callable(callbacks) else tuple(callbacks)
    history = History()
    try:
        total = int(epochs) * len(data)  # type: ignore[arg-type]
    except TypeError:
        total = None  # a generator-like iterable: the bar counts without a total
    bar = _progress(progress, total)
    model.train()
    step = 0
    try:
        for epoch in range(int(epochs)):
            mean = _Mean()
            batch = -1
            for batch, (inputs, targets) in enumerate(data):
                params, grads, value, prediction, scale, found_inf = _step(
                    model, model.state_dict(), inputs, targets, loss, optimizer, amp
                )
                model.load_state_dict(params)
                step += 1
                loss_value = value.item()
                history.loss.append(loss_value)
                n = _batch_size(targets)
                values = {"loss": loss_value}
                values.update({k: m(prediction, targets) for k, m in metrics.items()})
                mean.add(n, values)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{loss_value:.4g}", refresh=False)
                info = StepInfo(epoch, batch, loss_value, n, params=params, grads=grads,
                                scale=scale, found_inf=found_inf)  # fmt: skip
                for callback in callbacks:
                    callback(step, info)
            if batch == -1 and history.steps:
                raise OptionError(
                    f"fit: data gave no batches in epoch {epoch} after {history.steps} steps "
                    "before: it is an iterator, used up by the first epoch. Pass something "
                    "re-iterable, a list of batches or nn.batches(inputs, targets)."
                )
            row = {"epoch": epoch, **mean.means()}
            if validation is not None:
                row.update(
                    {f"val_{k}": v for k, v in evaluate(model, validation, loss, metrics).items()}
                )
            history.epochs.append(row)
            scale = None if amp is None else amp.scale  # the next step's
            info = StepInfo(epoch, batch + 1, row.get("loss", float("nan")), 0, True, row,
                            model.state_dict(), scale=scale)  # fmt: skip
            for callback in callbacks:
                callback(step, info)
    except StopTraining:
        history.stopped = True
    finally:
        if bar is not None:
            bar.close()
    return history
