"""Learning-rate schedules: PyTorch's documented formulas step by step, as fit callbacks (the
rate an epoch used is the one the optimiser took, compiled or eager), resumed from their
state, and bad arguments named. (benchmarks/lr_schedules_vs_torch.py runs PyTorch's own
schedulers beside them: equal to rounding.)"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tfgrad as tg
import tfgrad.nn as nn
from tfgrad.errors import OptionError

STEPS = 12


def rates(schedule_cls, lr=0.2, **kwargs):
    optimizer = nn.SGD([tg.zeros(1)], lr=lr)
    schedule = schedule_cls(optimizer, **kwargs)
    used = [schedule.step() for _ in range(STEPS)]
    assert schedule.get_last_lr() == optimizer.lr == schedule.rate(STEPS)
    return used


@pytest.mark.parametrize(
    "cls, kwargs, expected",
    [
        (nn.StepLR, dict(step_size=3, gamma=0.5), [0.2 * 0.5 ** (t // 3) for t in range(STEPS)]),
        (nn.MultiStepLR, dict(milestones=[2, 5, 5, 9], gamma=0.3),
         [0.2 * 0.3 ** ((t >= 2) + 2 * (t >= 5) + (t >= 9)) for t in range(STEPS)]),
        (nn.ExponentialLR, dict(gamma=0.9), [0.2 * 0.9**t for t in range(STEPS)]),
        (nn.LinearLR, dict(start_factor=0.25, end_factor=0.9, total_iters=6),
         [0.2 * (0.25 + 0.65 * min(t, 6) / 6) for t in range(STEPS)]),
        (nn.CosineAnnealingLR, dict(T_max=7, eta_min=0.01),  # past T_max it climbs back
         [0.01 + 0.19 * (1 + math.cos(math.pi * t / 7)) / 2 for t in range(STEPS)]),
    ],
    ids=["step", "multistep", "exponential", "linear", "cosine"],
)  # fmt: skip
def test_each_schedule_follows_pytorchs_formula(cls, kwargs, expected):
    np.testing.assert_allclose(rates(cls, **kwargs), expected, rtol=1e-14, atol=0)


def test_linear_warm_up_starts_below_the_base_rate_as_soon_as_it_is_made():
    optimizer = nn.Adam([tg.zeros(1)], lr=0.3)
    nn.LinearLR(optimizer)  # PyTorch's defaults: 1/3 of the rate, to the full rate in 5
    assert optimizer.lr == pytest.approx(0.1)


@pytest.fixture(scope="module")
def batches():
    x, y = nn.load_digits()
    return list(nn.batches(x[:256], y[:256], 64))


def make_run():
    model = nn.MLP(64, [16, 10], generator=tg.random.Generator(0))
    return model, nn.SGD(model.state_dict(), lr=0.1, momentum=0.9)


def fit(model, optimizer, batches, epochs, jit, callbacks=()):
    nn.fit(model, batches, nn.cross_entropy, optimizer, epochs=epochs, callbacks=callbacks,
           jit=jit, progress=False)  # fmt: skip


def bits(model):
    return {k: v.numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_schedule_in_fit_is_the_rate_changed_between_epochs_by_hand(batches, jit):
    scheduled, opt = make_run()
    schedule = nn.StepLR(opt, step_size=1, gamma=0.5)
    fit(scheduled, opt, batches, 3, jit, callbacks=[schedule])
    assert opt.lr == 0.1 * 0.5**3 and schedule.last_step == 3

    by_hand, opt2 = make_run()
    for epoch in range(3):
        opt2.lr = 0.1 * 0.5**epoch
        fit(by_hand, opt2, batches, 1, jit)
    assert bits(scheduled) == bits(by_hand)

    constant, opt3 = make_run()
    fit(constant, opt3, batches, 3, jit)
    assert bits(constant) != bits(scheduled)  # the rate reached the update


def test_a_per_step_schedule_steps_after_every_optimiser_step(batches):
    model, opt = make_run()
    schedule = nn.CosineAnnealingLR(opt, T_max=2 * len(batches), interval="step")
    seen = []
    fit(model, opt, batches, 2, False, callbacks=[lambda s, i: seen.append(opt.lr), schedule])
    assert schedule.last_step == 2 * len(batches)
    assert opt.lr == pytest.approx(0.0, abs=1e-18)  # the cosine's end
    # a callback before the schedule sees each step's own rate: falling, then flat at epoch ends
    assert seen[0] == 0.1 and all(b <= a for a, b in zip(seen, seen[1:]))


def test_a_schedule_resumes_from_its_state():
    opt = nn.SGD([tg.zeros(1)], lr=1.0)
    schedule = nn.ExponentialLR(opt, gamma=0.5)
    for _ in range(3):
        schedule.step()
    saved = schedule.state_dict()
    assert saved == {"base_lr": 1.0, "last_step": 3}
    other_opt = nn.SGD([tg.zeros(1)], lr=7.0)
    other = nn.ExponentialLR(other_opt, gamma=0.5).load_state_dict(saved)
    assert other_opt.lr == 0.125 and other.step() == 0.125 and other_opt.lr == 0.0625
    with pytest.raises(OptionError, match="expected the keys"):
        other.load_state_dict({"last_step": 1})
    with pytest.raises(OptionError, match="last_step a count >= 0"):
        other.load_state_dict({"base_lr": 1.0, "last_step": -2})
    assert other.last_step == 4


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda o: nn.StepLR(o, step_size=0), "step_size must be an integer >= 1"),
        (lambda o: nn.StepLR(o, 2, gamma=0.0), "gamma must be > 0"),
        (lambda o: nn.MultiStepLR(o, [5, 2]), "milestones must be increasing"),
        (lambda o: nn.LinearLR(o, start_factor=0.0), r"start_factor must lie in \(0, 1\]"),
        (lambda o: nn.CosineAnnealingLR(o, T_max=2.5), "T_max must be an integer"),
        (lambda o: nn.ExponentialLR(o, 0.9, interval="batch"), "interval must be 'epoch'"),
        (lambda o: nn.StepLR("sgd", 2), "takes a tfgrad.nn optimiser"),
    ],
)
def test_bad_schedule_arguments_are_named(make, match):
    opt = nn.SGD([tg.zeros(1)], lr=0.5)
    with pytest.raises(OptionError, match=match):
        make(opt)
    assert opt.lr == 0.5
