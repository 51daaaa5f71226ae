"""Dynamic loss scaling: :class:`AMPConfig` and :class:`AMPPolicy`, PyTorch's ``GradScaler``.

float16 keeps values down to about 6e-8; smaller gradients flush to zero. Scaling the loss by
``S`` scales every gradient by ``S`` (the chain rule is linear), lifting them into range; the
gradients are divided by ``S`` again before the optimiser uses them. Too large an ``S``
overflows to inf or NaN: that step is skipped and ``S`` shrinks. One training step::

    policy = AMPPolicy(AMPConfig(enabled=True))
    with tg.GradientTape() as tape:
        w_ = tape.watch(w)
        with policy.autocast():
            loss = loss_fn(w_, batch)
        scaled = policy.scale_loss(loss)
    grads, found_inf = policy.unscale_and_check(tape.gradient(scaled, [w_]))
    if not found_inf:
        w = w - lr * grads[0]
    policy.update_scale(found_inf)            # or all of the last four lines: policy.step(...)

:meth:`AMPPolicy.update_scale` is ``torch._amp_update_scale_`` exactly: the scale is a float32;
on inf/NaN it is multiplied by ``backoff_factor`` and the count of clean steps restarts; a clean
step adds one to the count, and when the count reaches ``growth_interval`` the scale is
multiplied by ``growth_factor`` (unless that overflows float32) and the count restarts. Beyond
PyTorch, ``min_scale`` and ``max_scale`` (optional) clamp the scale after each update.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..dtypes import float32
from ..errors import AMPConfigError, DtypeError
from ..ops import astype, multiply, tensor
from ..tensor import Tensor
from ..tree import tree_flatten, tree_unflatten
from .autocast import (
    AUTOCAST_ALLOW,
    AUTOCAST_DENY,
    autocast,
    check_lists,
    op_names,
    target_dtype,
)

__all__ = ["AMPConfig", "AMPPolicy", "ScaleRecord", "StabilityMetrics"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise AMPConfigError(f"AMPConfig: {name} must be a number, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class AMPConfig:
    """How mixed precision runs: loss scaling (PyTorch ``GradScaler``'s parameters, its
    defaults) and autocast (the low-precision dtype and the op lists).

    ``enabled=False`` (the default, as the seed's) makes the policy a pass-through: no
    scaling, no checks, no autocast. Every field is checked here; a value that cannot work
    raises :class:`~tfgrad.errors.AMPConfigError` naming the field and a value that works.

    >>> AMPConfig(enabled=True, growth_interval=100).growth_interval
    100
    """

    enabled: bool = False
    initial_scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    target_dtype: str = "float16"
    min_scale: float | None = None
    max_scale: float | None = None
    allow: tuple[str, ...] = AUTOCAST_ALLOW
    deny: tuple[str, ...] = AUTOCAST_DENY

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.enabled, (bool, np.bool_)):
            raise AMPConfigError(f"AMPConfig: enabled must be True or False, got {self.enabled!r}.")
        put("enabled", bool(self.enabled))
        scale = _number(self.initial_scale, "initial_scale")
        if not (0 < scale <= FLOAT32_MAX):  # NaN fails too
            raise AMPConfigError(
                f"AMPConfig: initial_scale must be positive and finite in float32, got {scale}; "
                "2.0**16 (the default) suits float16, 1.0 means no scaling."
            )
        put("initial_scale", scale)
        growth = _number(self.growth_factor, "growth_factor")
        if not (1 < growth < math.inf):
            raise AMPConfigError(
                f"AMPConfig: growth_factor must be greater than 1 (and finite), got {growth}; "
                "the scale grows by it after growth_interval clean steps (2.0 is the default)."
            )
        put("growth_factor", growth)
        backoff = _number(self.backoff_factor, "backoff_factor")
        if not (0 < backoff < 1):
            raise AMPConfigError(
                f"AMPConfig: backoff_factor must lie strictly between 0 and 1, got {backoff}; "
                "the scale shrinks by it on an overflow (0.5 is the default)."
            )
        put("backoff_factor", backoff)
        interval = self.growth_interval
        if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)):
            raise AMPConfigError(
                f"AMPConfig: growth_interval must be an integer number of steps, got "
                f"{interval!r} (2000 is the default)."
            )
        if interval < 1:
            raise AMPConfigError(
                f"AMPConfig: growth_interval must be at least 1 step, got {interval}; "
                "2000 (the default) grows the scale after 2000 clean steps."
            )
        put("growth_interval", int(interval))
        put("target_dtype", target_dtype(self.target_dtype, "AMPConfig.target_dtype").name)
        for name in ("min_scale", "max_scale"):
            value = getattr(self, name)
            if value is None:
                continue
            value = _number(value, name)
            if not (0 < value <= FLOAT32_MAX):
                raise AMPConfigError(
                    f"AMPConfig: {name} must be positive and finite in float32 (or None for no "
                    f"bound), got {value}."
                )
            put(name, value)
        lo, hi = self.min_scale, self.max_scale
        if lo is not None and hi is not None and lo > hi:
            raise AMPConfigError(
                f"AMPConfig: min_scale ({lo}) is greater than max_scale ({hi}); swap them or "
                "drop one."
            )
        if (lo is not None and scale < lo) or (hi is not None and scale > hi):
            raise AMPConfigError(
                f"AMPConfig: initial_scale ({scale}) lies outside [min_scale, max_scale] = "
                f"[{lo}, {hi}]; start inside the bounds."
            )
        put("allow", op_names(self.allow, AUTOCAST_ALLOW, "AMPConfig.allow"))
        put("deny", op_names(self.deny, AUTOCAST_DENY, "AMPConfig.deny"))
        check_lists(self.allow, self.deny, "AMPConfig")


@dataclass(frozen=True)
class ScaleRecord:
    """One :meth:`AMPPolicy.update_scale`: the scale the step used, whether its gradients held
    inf/NaN, whether its update was skipped, and the scale the next step uses."""

    step: int
    scale: float
    found_inf: bool
    skipped: bool
    next_scale: float


@dataclass(frozen=True)
class StabilityMetrics:
    """What an :class:`AMPPolicy` has seen (plain data: a LossScaleWidget draws it).

    ``overflow_count`` counts ``unscale_and_check`` calls that found inf/NaN, ``skipped_steps``
    the updates told ``found_inf=True`` (the same number when each step calls both once);
    ``growth_events`` and ``backoff_events`` count the updates that raised or lowered the
    scale. ``scaling_seconds`` is the wall time spent inside the policy (scaling, unscaling,
    checking, updating), ``total_seconds`` the wall time from its first call to its last
    ``update_scale``, and ``overhead`` their ratio.
    """

    current_scale: float
    growth_tracker: int
    steps: int
    overflow_count: int
    skipped_steps: int
    growth_events: int
    backoff_events: int
    scale_history: tuple[ScaleRecord, ...] = field(repr=False)
    scaling_seconds: float
    total_seconds: float

    @property
    def overhead(self) -> float:
        """``scaling_seconds / total_seconds`` (0 before the first step)."""
        return self.scaling_seconds / self.total_seconds if self.total_seconds > 0 else 0.0


class AMPPolicy:
    """Loss scaling with PyTorch ``GradScaler`` semantics, plus the autocast its config names.

    :meth:`scale_loss`, :meth:`unscale_and_check` and :meth:`update_scale` are the three calls
    of a training step (see the module's docstring); :meth:`step` does the last three in one.
    Not thread-safe: one policy belongs to one training loop.
    """

    def __init__(self, config: AMPConfig | None = None):
        self.config = config if config is not None else AMPConfig()
        if not isinstance(self.config, AMPConfig):
            raise AMPConfigError(
                f"AMPPolicy takes an AMPConfig, got {type(self.config).__name__}; build one "
                "with tfgrad.amp.AMPConfig(...)."
            )
        self._scale = np.float32(self.config.initial_scale)
        self._tracker = 0  # consecutive clean steps since the last growth or backoff
        self._history: list[ScaleRecord] = []
        self._overflows = 0
        self._skipped = 0
        self._growths = 0
        self._backoffs = 0
        self._spent = 0.0
        self._first_call: float | None = None
        self._last_update: float | None = None

    # ---- The state ----
    @property
    def scale(self) -> float:
        """The current loss scale (a float32 value), 1.0 when disabled."""
        return float(self._scale) if self.config.enabled else 1.0

    @property
    def growth_tracker(self) -> int:
        """Consecutive clean steps counted towards the next growth."""
        return self._tracker

    def _clock(self) -> float:
        now = time.perf_counter()
        if self._first_call is None:
            self._first_call = now
        return now

    # ---- A step ----
    def scale_loss(self, loss: Any) -> Tensor:
        """``loss * scale``, as a recorded op (differentiate the result). The scale is a float32
        tensor, so a float16 loss is scaled in float32 (where it cannot overflow) and a
        float64 loss stays float64. Disabled: ``loss`` unchanged."""
        if not self.config.enabled:
            return loss
        start = self._clock()
        out = multiply(loss, tensor(self._scale, float32))
        self._spent += time.perf_counter() - start
        return out

    def unscale_and_check(self, grads: Any) -> tuple[Any, bool]:
        """``(grads / scale, found_inf)``: the gradients unscaled, in the same structure (a
        list, tuple or dict of tensors, nested; ``None`` entries stay None), and whether any
        of them holds inf, -inf or NaN (a float16 gradient that overflowed is inf).

        float32 and float64 gradients keep their dtype; float16 and bfloat16 ones come back as
        float32 (divided in 16 bits, small ones would flush to zero again). Multiplies by the
        float32 reciprocal of the scale, as PyTorch does; the values are checked before that.
        When ``found_inf`` is True, skip the update. Costs one read of every gradient to the
        host and one multiply each. Disabled: ``(grads, False)`` unchecked, as PyTorch's.
        """
        if not self.config.enabled:
            return grads, False
        start = self._clock()
        leaves, treedef = tree_flatten(grads)
        inverse = self.inverse_scale()
        found_inf = False
        out = []
        for i, g in enumerate(leaves):
            if not isinstance(g, Tensor):
                g = tensor(g)
            if not g.dtype.is_floating:
                raise DtypeError(
                    f"unscale_and_check: gradient {i} has dtype {g.dtype.name} (shape "
                    f"{g.shape}); gradients are floating: pass what tape.gradient returned."
                )
            if not found_inf and not np.isfinite(g.numpy()).all():
                found_inf = True
            if g.dtype.itemsize < 4:
                g = astype(g, float32)
            out.append(multiply(g, inverse))  # a weak Python float: the dtype stays
        if found_inf:
            self._overflows += 1
        self._spent += time.perf_counter() - start
        return tree_unflatten(treedef, out), found_inf

    def inverse_scale(self) -> float:
        """The factor :meth:`unscale_and_check` multiplies the gradients by: PyTorch's
        reciprocal of the scale, in double, rounded to float32 (inf once the scale has
        underflowed to 0 after many backoffs: set ``min_scale`` to prevent that)."""
        with np.errstate(divide="ignore", over="ignore"):
            return float(np.float32(np.float64(1.0) / np.float64(self._scale)))

    def record_check(self, found_inf: bool) -> None:
        """Count a check that ran elsewhere: ``nn.fit(jit=...)`` unscales and tests the
        gradients for inf/NaN inside its compiled step (as :meth:`unscale_and_check` would, by
        :meth:`inverse_scale`) and reports the outcome here, before :meth:`update_scale`. Such
        steps add only this bookkeeping to ``scaling_seconds``."""
        self._clock()
        if found_inf:
            self._overflows += 1

    def update_scale(self, found_inf: bool) -> float:
        """End the step: back off on ``found_inf`` (the step was skipped), else count a clean
        step and grow the scale after ``growth_interval`` of them in a row; then clamp to
        ``[min_scale, max_scale]``. Returns the scale for the next step. Disabled: no-op."""
        if not self.config.enabled:
            return 1.0
        start = self._clock()
        cfg = self.config
        used = self._scale
        found_inf = bool(found_inf)
        # torch._amp_update_scale_, in float32 as there: scale * factor in double, rounded.
        if found_inf:
            new = np.float32(float(used) * cfg.backoff_factor)
            self._tracker = 0
        else:
            new = used
            successful = self._tracker + 1
            if successful == cfg.growth_interval:
                with np.errstate(over="ignore"):  # an overflow to inf is caught below
                    grown = np.float32(float(used) * cfg.growth_factor)
                if np.isfinite(grown):  # never grow past float32's range to inf
                    new = grown
                self._tracker = 0
            else:
                self._tracker = successful
        if cfg.min_scale is not None and new < cfg.min_scale:
            new = np.float32(cfg.min_scale)
        if cfg.max_scale is not None and new > cfg.max_scale:
            new = np.float32(cfg.max_scale)
        self._scale = new
        self._skipped += found_inf
        self._growths += bool(new > used)
        self._backoffs += bool(new < used)
        self._history.append(
            ScaleRecord(len(self._history), float(used), found_inf, found_inf, float(new))
        )
        self._last_update = time.perf_counter()
        self._spent += self._last_update - start
        return float(new)

    def step(self, apply: Callable[[Any], Any], grads: Any) -> bool:
        """Unscale and check ``grads`` (the scaled loss's gradients), call ``apply(unscaled)``
        unless they hold inf/NaN, update the scale; return whether ``apply`` ran."""
        unscaled, found_inf = self.unscale_and_check(grads)
        if not found_inf:
            apply(unscaled)
        self.update_scale(found_inf)
        return not found_inf

    def autocast(self):
        """``tfgrad.amp.autocast`` with this config's dtype and lists (off when disabled)."""
        cfg = self.config
        return autocast(cfg.target_dtype, enabled=cfg.enabled, allow=cfg.allow, deny=cfg.deny)

    # ---- Checkpoints ----
    def state_dict(self) -> dict[str, Any]:
        """The policy as plain data, to save with the model and optimiser and resume with
        :meth:`load_state_dict`: the scale, the clean-step count (``GradScaler.state_dict``'s
        ``scale`` and ``_growth_tracker``), the config's fields, the counters and the scale
        history (a resumed run's :meth:`stability_metrics` and its widget show the whole
        run). Times are not kept: they belong to the process that measured them."""
        cfg = self.config
        return {
            "scale": float(self._scale),
            "growth_tracker": self._tracker,
            "config": {f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
            "overflow_count": self._overflows,
            "skipped_steps": self._skipped,
            "growth_events": self._growths,
            "backoff_events": self._backoffs,
            "scale_history": [
                (r.step, r.scale, r.found_inf, r.skipped, r.next_scale) for r in self._history
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> AMPPolicy:
        """Resume from :meth:`state_dict`: its config (checked as :class:`AMPConfig` checks
        one), scale, clean-step count, counters and history; returns ``self``. A failed load
        changes nothing."""
        counters = ("overflow_count", "skipped_steps", "growth_events", "backoff_events")
        expected = {"scale", "growth_tracker", "config", "scale_history", *counters}
        if not isinstance(state, dict) or set(state) != expected:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise AMPConfigError(
                f"AMPPolicy.load_state_dict: expected the keys {sorted(expected)} of "
                f"AMPPolicy.state_dict(), got {got}."
            )
        config = AMPConfig(**state["config"])
        scale = np.float32(_number(state["scale"], "scale"))
        if not (0 <= scale <= FLOAT32_MAX):
            raise AMPConfigError(
                f"AMPPolicy.load_state_dict: scale must be finite and >= 0, got {scale}."
            )
        numbers = [state["growth_tracker"], *(state[c] for c in counters)]
        if any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0
               for n in numbers):  # fmt: skip
            raise AMPConfigError(
                f"AMPPolicy.load_state_dict: growth_tracker and {', '.join(counters)} are counts "
                f">= 0, got {numbers}."
            )
        try:
            history = [ScaleRecord(int(i), float(s), bool(f), bool(k), float(n))
                       for i, s, f, k, n in state["scale_history"]]  # fmt: skip
        except (TypeError, ValueError):
            raise AMPConfigError(
                "AMPPolicy.load_state_dict: scale_history must hold (step, scale, found_inf, "
                "skipped, next_scale) rows, as state_dict() writes them."
            ) from None
        self.config, self._scale, self._history = config, scale, history
        self._tracker, self._overflows, self._skipped, self._growths, self._backoffs = map(
            int, numbers
        )
        return self

    # ---- What it has seen ----
    def stability_metrics(self) -> StabilityMetrics:
        """A snapshot of the scale, its counters, its history and the time it cost."""
        total = 0.0
        if self._first_call is not None and self._last_update is not None:
            total = self._last_update - self._first_call
        return StabilityMetrics(
            current_scale=self.scale,
            growth_tracker=self._tracker,
            steps=len(self._history),
            overflow_count=self._overflows,
            skipped_steps=self._skipped,
            growth_events=self._growths,
            backoff_events=self._backoffs,
            scale_history=tuple(self._history),
            scaling_seconds=self._spent,
            total_seconds=total,
        )

    def __repr__(self) -> str:
        state = "enabled" if self.config.enabled else "disabled"
        return (
            f"AMPPolicy({state}, scale={self.scale:g}, growth_tracker={self._tracker}, "
            f"target_dtype={self.config.target_dtype!r})"
        )
