r"""Learning-rate schedules with PyTorch's names and formulas: each sets ``optimizer.lr`` from
the base rate (the optimiser's ``lr`` when the schedule is made) and the count of
:meth:`~LRScheduler.step` calls so far, ``t``:

======================  ===================================================================
``StepLR``              :math:`\eta_0 \gamma^{\lfloor t / s \rfloor}`
``MultiStepLR``         :math:`\eta_0 \gamma^{\#\{m \in \text{milestones} : m \le t\}}`
``ExponentialLR``       :math:`\eta_0 \gamma^t`
``LinearLR``            :math:`\eta_0 (f_0 + (f_1 - f_0) \min(t, T) / T)` (a warm-up)
``CosineAnnealingLR``   :math:`\eta_{min} + (\eta_0 - \eta_{min}) (1 + \cos(\pi t / T)) / 2`
======================  ===================================================================

These are the closed forms PyTorch documents; its schedulers update recursively, which agrees
with them to rounding (and ``CosineAnnealingLR`` past ``T_max`` climbs back as PyTorch's does).
The rate is a 0-d tensor argument of a compiled update, so changing it compiles nothing.

A schedule is also a :func:`~tfgrad.nn.fit` callback: ``fit(..., callbacks=[schedule])`` steps
it at the end of every epoch (``interval="epoch"``, PyTorch's usual loop) or after every
optimiser step (``interval="step"``, skipped mixed-precision steps included, as a loop calling
``scheduler.step()`` after ``scaler.step()`` does).

>>> import tfgrad as tg, tfgrad.nn as nn
>>> opt = nn.SGD([tg.zeros(1)], lr=1.0)
>>> schedule = nn.StepLR(opt, step_size=2, gamma=0.5)
>>> [schedule.step() for _ in range(4)]
[1.0, 1.0, 0.5, 0.5]
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from tfgrad.errors import OptionError

from .optim import Optimizer

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "LinearLR",
    "CosineAnnealingLR",
]


class LRScheduler:
    """The base: keeps the base rate and the step count, sets ``optimizer.lr``.

    Subclasses give ``factor(t)`` (the rate at step ``t`` over the base rate) or override
    ``rate(t)``. Made, a schedule sets the rate of step 0 (the base rate, except for
    ``LinearLR``, which starts at ``start_factor`` times it, as PyTorch's does).
    """

    def __init__(self, optimizer: Optimizer, interval: str = "epoch"):
        if not isinstance(optimizer, Optimizer):
            raise OptionError(
                f"{type(self).__name__}: takes a tfgrad.nn optimiser (SGD, Adam, AdamW), got "
                f"{type(optimizer).__name__}."
            )
        if interval not in ("epoch", "step"):
            raise OptionError(
                f"{type(self).__name__}: interval must be 'epoch' (step at each epoch's end of "
                f"fit) or 'step' (after every optimiser step), got {interval!r}."
            )
        self.optimizer, self.interval = optimizer, interval
        self.base_lr = optimizer.lr
        self.last_step = 0
        optimizer.lr = self.rate(0)

    def rate(self, t: int) -> float:
        """The learning rate after ``t`` calls of :meth:`step`."""
        return self.base_lr * self.factor(t)

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def step(self) -> float:
        """Advance one step and set the optimiser's rate; returns the rate before the step
        (the one the epoch or step just finished used)."""
        used = self.optimizer.lr
        self.last_step += 1
        self.optimizer.lr = self.rate(self.last_step)
        return used

    def get_last_lr(self) -> float:
        """The rate the optimiser uses now (PyTorch's name; one rate, one parameter group)."""
        return self.optimizer.lr

    def __call__(self, step: int, info: Any) -> None:
        """As a :func:`~tfgrad.nn.fit` callback: step at each epoch's end, or after each step."""
        if bool(info.end_of_epoch) == (self.interval == "epoch"):
            self.step()

    def state_dict(self) -> dict[str, Any]:
        """The base rate and the step count (the optimiser's own state is saved apart)."""
        return {"base_lr": self.base_lr, "last_step": self.last_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> LRScheduler:
        """Resume from :meth:`state_dict`: sets the base rate, the count and the optimiser's
        rate; returns ``self``."""
        if set(state) != {"base_lr", "last_step"}:
            raise OptionError(
                f"{type(self).__name__}.load_state_dict: expected the keys ['base_lr', "
                f"'last_step'] of state_dict(), got {sorted(state)}."
            )
        base, count = float(state["base_lr"]), state["last_step"]
        if not base >= 0 or not _count(count, 0):
            raise OptionError(
                f"{type(self).__name__}.load_state_dict: base_lr must be >= 0 and last_step a "
                f"count >= 0, got {state['base_lr']!r} and {count!r}."
            )
        self.base_lr, self.last_step = base, count
        self.optimizer.lr = self.rate(count)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.optimizer.lr:g}, step={self.last_step})"


def _count(value: Any, least: int) -> bool:
    """Whether ``value`` is a Python integer (not a bool) of at least ``least``."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise OptionError(f"{owner}: {name} must be > 0, got {value!r}.")


class StepLR(LRScheduler):
    """The rate times ``gamma`` every ``step_size`` steps (``torch.optim.lr_scheduler.StepLR``)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 interval: str = "epoch"):  # fmt: skip
        if not _count(step_size, 1):
            raise OptionError(f"StepLR: step_size must be an integer >= 1, got {step_size!r}.")
        _positive("StepLR", gamma=gamma)
        self.step_size, self.gamma = step_size, float(gamma)
        super().__init__(optimizer, interval)

    def factor(self, t: int) -> float:
        return self.gamma ** (t // self.step_size)


class MultiStepLR(LRScheduler):
    """The rate times ``gamma`` at each of the ``milestones`` (step counts, increasing)."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1,
                 interval: str = "epoch"):  # fmt: skip
        milestones = list(milestones)
        if not all(_count(m, 1) for m in milestones) or milestones != sorted(milestones):
            raise OptionError(
                f"MultiStepLR: milestones must be increasing step counts >= 1, got {milestones}."
            )
        _positive("MultiStepLR", gamma=gamma)
        self.milestones, self.gamma = milestones, float(gamma)
        super().__init__(optimizer, interval)

    def factor(self, t: int) -> float:
        return self.gamma ** sum(m <= t for m in self.milestones)


class ExponentialLR(LRScheduler):
    """The rate times ``gamma`` at every step."""

    def __init__(self, optimizer: Optimizer, gamma: float, interval: str = "epoch"):
        _positive("ExponentialLR", gamma=gamma)
        self.gamma = float(gamma)
        super().__init__(optimizer, interval)

    def factor(self, t: int) -> float:
        return self.gamma**t


class LinearLR(LRScheduler):
    """From ``start_factor`` to ``end_factor`` times the base rate, linearly over
    ``total_iters`` steps, then constant: a warm-up (PyTorch's defaults: 1/3 to 1 in 5)."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, interval: str = "epoch"):  # fmt: skip
        if not (0 < start_factor <= 1 and 0 <= end_factor <= 1):
            raise OptionError(
                f"LinearLR: start_factor must lie in (0, 1] and end_factor in [0, 1], got "
                f"{start_factor} and {end_factor}."
            )
        if not _count(total_iters, 1):
            raise OptionError(
                f"LinearLR: total_iters must be an integer >= 1, got {total_iters!r}."
            )
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = total_iters
        super().__init__(optimizer, interval)

    def factor(self, t: int) -> float:
        done = min(t, self.total_iters) / self.total_iters
        return self.start_factor + (self.end_factor - self.start_factor) * done


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base rate down to ``eta_min`` over ``T_max`` steps (SGDR without
    restarts, Loshchilov and Hutter)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,  # noqa: N803
                 interval: str = "epoch"):  # fmt: skip
        if not _count(T_max, 1):
            raise OptionError(f"CosineAnnealingLR: T_max must be an integer >= 1, got {T_max!r}.")
        if not eta_min >= 0:
            raise OptionError(f"CosineAnnealingLR: eta_min must be >= 0, got {eta_min!r}.")
        self.T_max, self.eta_min = T_max, float(eta_min)
        super().__init__(optimizer, interval)

    def rate(self, t: int) -> float:
        cosine = (1.0 + math.cos(math.pi * t / self.T_max)) / 2.0
        return self.eta_min + (self.base_lr - self.eta_min) * cosine
