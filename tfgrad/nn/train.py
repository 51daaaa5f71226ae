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

``fit(..., jit=...)`` runs the same step compiled (:class:`_CompiledStep`, :func:`tfgrad.jit`
programs): by default wherever the model can be traced, op by op otherwise.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

import tfgrad as tg
from tfgrad.errors import OptionError, ShapeError, TfgradError, TracingError

from .losses import cross_entropy
from .module import Module, functional_call
from .optim import Optimizer, scalar

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
    # end; with amp the unscaled ones, inf/NaN at a skipped step), both {name: tensor}: what a
    # widget that follows training draws
    params: Mapping[str, tg.Tensor] = field(default_factory=dict)
    grads: Mapping[str, tg.Tensor] = field(default_factory=dict)
    # mixed precision (fit's amp=; None and False without it): the loss scale this step used
    # (at an epoch's end: the one the next step uses), and whether the step's gradients held
    # inf/NaN, so that its optimiser step was skipped (``skipped``, the same)
    scale: float | None = None
    found_inf: bool = False

    @property
    def skipped(self) -> bool:
        """Whether the step's optimiser update was skipped (``found_inf``: fit skips exactly
        those steps, as ``GradScaler.step`` does)."""
        return self.found_inf

    # Read as a mapping too (``info["scale"]``, ``info.get("found_inf")``): what a callback
    # written for plain dicts, such as tfgrad_widgets.LossScaleWidget, reads.
    def __getitem__(self, name: str) -> Any:
        if name in self.__dataclass_fields__ or name == "skipped":
            return getattr(self, name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        """``info[name]``, or ``default`` for a name StepInfo does not have."""
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


class _CompiledStep:
    """:func:`_step` as :func:`tfgrad.jit` programs: the same ops, traced once per batch shape
    and optimiser-state layout, then run with no tape and no per-op Python dispatch.

    Without ``amp`` one program does all of it: forward, reverse sweep and the optimiser's rule
    for every parameter (``Optimizer._rule``, hyperparameters passed as 0-d tensors). With a
    :class:`tfgrad.amp.AMPPolicy` (a policy with ``inverse_scale`` and ``record_check``) the
    program also scales the loss, unscales the gradients and computes the update; the scale
    and its reciprocal are tensor arguments (they change between steps), and one 0-d result
    tells whether any scaled gradient held inf/NaN (the sum of every gradient times 0: NaN
    exactly then), read to the host, where a found inf drops the update and the optimiser's
    new state, so the step is skipped as ``GradScaler`` skips it. Any other policy gets the
    forward and the scaled sweep compiled, its own unscaling and the optimiser step outside.
    Calls take positional tensors only (the jit's fast path). ``error`` holds why the step could
    not be compiled (then the caller steps eagerly)."""

    def __init__(self, model: Module, loss: Callable, optimizer: Optimizer, amp: Any = None):
        self.model, self.loss, self.optimizer, self.amp = model, loss, optimizer, amp
        self.error: str | None = _jit_blocker(model)
        if type(optimizer)._rule is Optimizer._rule:
            self.error = f"{type(optimizer).__name__} does not write its update as a _rule"
        self._programs: dict[tuple, Any] = {}  # layout -> tg.jit function
        self._classes: tuple | None = None  # cross_entropy's (classes, logits dtype), once seen
        self._fused_amp = callable(getattr(amp, "inverse_scale", None)) and callable(
            getattr(amp, "record_check", None)
        )

    def _objective(self, names: list[str], inputs, targets, scale=None) -> Callable:
        model, loss, amp = self.model, self.loss, self.amp

        def objective(flat):
            with contextlib.nullcontext() if amp is None else amp.autocast():
                prediction = functional_call(model, dict(zip(names, flat)), inputs)
                value = loss(prediction, targets)
            scaled = value if scale is None else tg.multiply(value, scale)
            return scaled, (tg.stop_gradient(value), tg.stop_gradient(prediction))

        return objective

    def _program(self, layout: tuple) -> Any:
        fn = self._programs.get(layout)
        if fn is not None:
            return fn
        names, lens, n_hyper, kind, flags = layout
        opt, n = self.optimizer, len(names)
        rule = type(opt)._rule

        def sweep(params, inputs, targets, scale):
            objective = self._objective(names, inputs, targets, scale)
            (_, (value, prediction)), grads = tg.value_and_grad(objective, has_aux=True)(params)
            if any(g is None for g in grads):
                raise TracingError("fit(jit=...): a parameter got no gradient (None)")
            return value, prediction, list(grads)

        def train_step(*args):  # params, state, hyper, inputs, targets[, scale, inverse]
            params, rest = list(args[:n]), args[n:]
            scale = inverse = None
            if kind == "amp":
                rest, (scale, inverse) = rest[:-2], rest[-2:]
            value, prediction, grads = sweep(params, rest[-2], rest[-1], scale)
            if kind == "amp":  # what AMPPolicy.unscale_and_check computes, in the program
                nonfinite = sum(tg.sum(g * 0.0) for g in grads)  # NaN iff any inf/NaN
                grads = [tg.multiply(g if g.dtype.itemsize >= 4 else tg.astype(g, "float32"),
                                     inverse) for g in grads]  # fmt: skip
            new_params, new_state, at = [], [], 0
            hyper = rest[sum(lens) : len(rest) - 2]
            for i, (p, g) in enumerate(zip(params, grads)):
                state = tuple(rest[at : at + lens[i]])
                at += lens[i]
                new_p, st = rule(flags, p, g, state, tuple(hyper[i * n_hyper : (i + 1) * n_hyper]))
                new_params.append(new_p)
                new_state.append(list(st))
            if kind == "amp":
                return new_params, new_state, value, prediction, grads, nonfinite
            return new_params, new_state, value, prediction, grads

        def scaled_sweep(*args):  # params, inputs, targets, scale
            return sweep(list(args[:n]), args[n], args[n + 1], args[n + 2])

        fn = tg.jit(scaled_sweep if kind == "scaled" else train_step)
        self._programs[layout] = fn
        return fn

    def __call__(self, params: dict, inputs, targets) -> tuple | None:
        """What :func:`_step` returns, or None when this step cannot be compiled (``error``
        says why; it is not tried again)."""
        if self.error is not None:
            return None
        opt, amp = self.optimizer, self.amp
        names = list(params)
        keys = names if opt._mapping else list(range(len(names)))
        shapes = [(p.shape, p.dtype) for p in params.values()]
        if len(keys) != len(opt._shapes) or [opt._shapes.get(k) for k in keys] != shapes:
            return None  # not what the optimiser was made with: the eager step says why
        inputs, targets = _as_tensor(inputs), self._one_hot(_as_tensor(targets))
        scaled = amp is not None and getattr(getattr(amp, "config", None), "enabled", True)
        kind = "plain" if amp is None else "amp" if scaled and self._fused_amp else "scaled"
        if kind != "scaled":
            states = [opt._state_of(k) for k in keys]
            hypers = [opt._hyper(k) for k in keys]
            layout = (tuple(names), tuple(len(s) for s in states), len(hypers[0]), kind,
                      opt._flags())  # fmt: skip
            dtypes = [p.dtype.numpy for p in params.values()]
            args = [*params.values(), *(t for s in states for t in s),
                    *(scalar(h, d) for hs, d in zip(hypers, dtypes) for h in hs),
                    inputs, targets]  # fmt: skip
            if kind == "amp":
                scale = amp.scale
                args += [tg.tensor(np.float32(scale)), tg.tensor(np.float32(amp.inverse_scale()))]
        else:
            layout = (tuple(names), (), 0, kind, ())
            scale = tg.tensor(np.float32(amp.scale)) if scaled else None
            args = [*params.values(), inputs, targets, scale]
        fn = self._program(layout)
        misses = fn.misses
        try:
            out = fn(*args)
        except TfgradError as err:
            if fn.misses == misses:
                raise  # the compiled program itself failed: not a tracing problem
            self.error = f"{type(err).__name__}: {err}"
            return None
        prediction = out[3] if kind != "scaled" else out[1]
        if self.loss is cross_entropy and getattr(prediction, "ndim", 0) >= 1:
            self._classes = (prediction.shape[-1], prediction.dtype.numpy)
        if kind == "plain":
            new_params, new_state, value, prediction, grads = out
            for k, st in zip(keys, new_state):
                opt._store(k, tuple(st))
            grads = dict(zip(names, grads))
            return dict(zip(names, new_params)), grads, value, prediction, None, False
        if kind == "amp":
            new_params, new_state, value, prediction, grads, nonfinite = out
            found_inf = bool(np.isnan(nonfinite.item()))
            amp.record_check(found_inf)
            if not found_inf:  # GradScaler.step: a skipped step moves neither params nor state
                for k, st in zip(keys, new_state):
                    opt._store(k, tuple(st))
            amp.update_scale(found_inf)
            new = params if found_inf else dict(zip(names, new_params))
            return new, dict(zip(names, grads)), value, prediction, scale, found_inf
        value, prediction, grads = out
        grads = dict(zip(names, grads))
        scale = amp.scale
        grads, found_inf = amp.unscale_and_check(grads)
        new = params if found_inf else _apply(opt, params, grads)
        amp.update_scale(found_inf)
        return new, grads, value, prediction, scale, bool(found_inf)

    def _one_hot(self, targets: Any) -> Any:
        """Class-index targets of :func:`cross_entropy` as the one-hot table its eager path
        makes in NumPy (the same values, the same loss), once the classes are known from the
        first step: traced, the table is three integer ops in the program, each slower than
        the whole rest of a small step. Out-of-range indices raise as cross_entropy does."""
        if self._classes is None or not isinstance(targets, tg.Tensor):
            return targets
        if targets.dtype.is_floating or targets.dtype.name == "bool":
            return targets
        n, dtype = self._classes
        labels = targets.numpy()
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise ShapeError(
                f"cross_entropy: class indices must lie in [0, {n}), got "
                f"{labels.min()}..{labels.max()}."
            )
        return tg.tensor(np.eye(n, dtype=dtype)[labels])


_KEPT_STEPS = 4  # compiled steps an optimiser keeps (one per model, loss and policy it trained)


def _compiled_step(model: Module, loss: Callable, optimizer: Optimizer, amp: Any) -> _CompiledStep:
    """The optimiser's compiled step for this model, loss and policy, made on the first
    ``fit`` and kept on the optimiser, so that the next ``fit(epochs=1)`` (a notebook's cell
    run again, an epoch at a time) reuses its traced programs instead of tracing and compiling
    again. A model whose modules were replaced since gets a new one."""
    steps: dict = optimizer.__dict__.setdefault("_compiled_steps", {})
    modules = tuple((name, id(m)) for name, m in model.named_modules())
    # the policy's config too: load_state_dict may give the same policy another dtype or lists
    key = (id(model), loss, id(amp), getattr(amp, "config", None), modules)
    step = steps.get(key)
    if step is None or step.model is not model or step.amp is not amp:
        step = steps[key] = _CompiledStep(model, loss, optimizer, amp)
        while len(steps) > _KEPT_STEPS:
            del steps[next(iter(steps))]  # the oldest
    return step


def _as_tensor(x: Any) -> Any:
    return tg.tensor(x) if isinstance(x, np.ndarray) else x


def _jit_blocker(model: Module) -> str | None:
    """Why ``model``'s training step must not be compiled, or None: a module that draws random
    numbers in its forward (Dropout) would have the first step's draws baked into the program."""
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, tg.random.Generator):
                return (f"module {name or type(module).__name__!r} ({type(module).__name__}) "
                        f"draws random numbers from its {attr!r} in the forward pass, which a "
                        "compiled step would repeat every step")  # fmt: skip
    return None


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
    jit: bool | str = "auto",
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

    ``jit`` compiles the step with :func:`tfgrad.jit` (forward, reverse sweep and, without
    ``amp``, the optimiser's update, in one program per batch shape): the same ops on the same
    values, without the tape's and each op's Python overhead. ``"auto"`` (the default) compiles
    when it can and otherwise trains op by op, warning once why: a model with Dropout (its
    random draws would be frozen into the program), a forward with Python control flow on
    tensor values (``if x.item() > 0``; plain Python state in a module's forward is traced as
    a constant too, so write such models with ``jit=False``). ``True`` raises instead of
    falling back; ``False`` never compiles. Compiling costs a trace and Taichi's compilation
    on the first step of each new batch shape (and the second, once the optimiser has state);
    the optimiser keeps the programs, so calling ``fit`` again with the same model, loss,
    optimiser and policy compiles nothing.
    With ``loss=nn.cross_entropy`` and class-index targets, the compiled step takes the
    one-hot table made in NumPy, as the eager loss does (after the first step, which tells the
    number of classes); another loss function gets the indices traced, unchecked.

    Cost per step: one forward pass and one reverse sweep, plus the optimiser's few
    elementwise ops per parameter, and reading the loss back (``.item()``). With ``amp``,
    also a cast per matmul input, a multiply per gradient, and the inf/NaN check: each
    gradient read to the host once, or, compiled, one 0-d flag (the program unscales, checks
    and computes the update; a step found with inf/NaN drops it).

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
    if jit not in (True, False, "auto"):
        raise OptionError(f"fit: jit must be True, False or 'auto', got {jit!r}.")
    compiled = _compiled_step(model, loss, optimizer, amp) if jit else None
    if compiled is not None and compiled.error is not None and jit is True:
        raise OptionError(f"fit(jit=True): cannot compile this model's step: {compiled.error}; "
                          "pass jit=False (or 'auto').")  # fmt: skip
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
                out = None if compiled is None else compiled(model.state_dict(), inputs, targets)
                if out is None and compiled is not None and compiled.error is not None:
                    if jit is True:
                        raise TracingError(
                            f"fit(jit=True): could not compile the training step: "
                            f"{compiled.error}. Pass jit=False to train op by op."
                        )
                    warnings.warn(
                        f"fit: training op by op, not compiled with tfgrad.jit: "
                        f"{compiled.error}. Pass jit=False to skip the attempt.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    compiled = None
                if out is None:
                    out = _step(model, model.state_dict(), inputs, targets, loss, optimizer, amp)
                params, grads, value, prediction, scale, found_inf = out
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
