"""A fast training step: the optimisers' compiled per-parameter updates give the bits of their
op-by-op rule (and stay differentiable), and ``nn.fit(jit=...)`` compiles the whole step with
the same losses and weights as the eager step, the same bits across runs (deterministic mode
too), with a mixed-precision policy as well, and falls back (with a warning) or refuses (with
``jit=True``) where a model cannot be compiled."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tfgrad as tg
import tfgrad.determinism as det
import tfgrad.nn as nn
from tfgrad.amp import AMPConfig, AMPPolicy
from tfgrad.errors import OptionError, ShapeError, TracingError
from tfgrad.nn import optim

OPTIMISERS = [
    (nn.SGD, dict(lr=0.05)),
    (nn.SGD, dict(lr=0.05, momentum=0.9)),
    (nn.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (nn.Adam, dict(lr=0.01, weight_decay=0.1)),
    (nn.AdamW, dict(lr=0.01)),
]


@pytest.fixture(scope="module")
def digits():
    x, y = nn.load_digits()
    x, y = x[:200], y[:200]
    # 4 batches of 48 and one of 8: two batch shapes, so two programs per optimiser-state layout
    return [(tg.tensor(x[i : i + 48]), tg.tensor(y[i : i + 48])) for i in range(0, 200, 48)]


def _params(dtype):
    r = np.random.default_rng(0)
    shapes = {"w": (3, 4), "b": (4,)}
    return {k: tg.tensor(r.standard_normal(s).astype(dtype)) for k, s in shapes.items()}


def _steps_against_the_rule(cls, kwargs, params, steps=3):
    """``steps`` optimiser steps, and the same rule op by op on Python floats (what runs under
    a grad), from the same gradients: (the step's params, the reference's)."""
    opt = cls(params, **kwargs)
    r = np.random.default_rng(1)
    p_ref = {k: v.numpy() for k, v in params.items()}
    state = {k: () for k in params}
    p = params
    for _ in range(steps):
        grads = {
            k: tg.tensor(r.standard_normal(v.shape).astype(v.dtype.numpy)) for k, v in p.items()
        }
        for k in p_ref:
            new, state[k] = cls._rule(opt._flags(), tg.tensor(p_ref[k]), grads[k], state[k],
                                      opt._hyper(k))  # fmt: skip
            p_ref[k] = new.numpy()
        p = opt.step(p, grads)
    return opt, p, p_ref


@pytest.mark.parametrize("cls, kwargs", OPTIMISERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_parameters_step_op_by_op_with_the_rules_bits(cls, kwargs, dtype):
    _, p, p_ref = _steps_against_the_rule(cls, kwargs, _params(dtype))
    for k in p:
        assert p[k].dtype.numpy == np.dtype(dtype)
        np.testing.assert_array_equal(p[k].numpy(), p_ref[k])
    # the compiled rule held no fused kernel at these sizes: op by op from then on
    kinds = [k for k in optim._PAYS if k[0] is cls and k[2] in {(3, 4), (4,)}]
    assert kinds and not any(optim._PAYS[k] for k in kinds)


@pytest.mark.parametrize("cls, kwargs", [OPTIMISERS[2], OPTIMISERS[3]])
def test_a_large_parameter_steps_in_one_fused_kernel_with_the_rules_bits(cls, kwargs):
    w = tg.tensor(np.random.default_rng(2).standard_normal((300, 1000)).astype(np.float32))
    opt, p, p_ref = _steps_against_the_rule(cls, kwargs, {"w": w})
    np.testing.assert_array_equal(p["w"].numpy(), p_ref["w"])
    state = opt._state_of("w")
    hyper = [optim.scalar(h, np.dtype(np.float32)) for h in opt._hyper("w")]
    program = opt._compiled().program(p["w"], p["w"], *state, *hyper)
    assert (
        len(program.kernels) >= 1
        and optim._PAYS[(cls, opt._flags(), (300, 1000), w.dtype, len(state))]
    )


def test_changing_the_learning_rate_compiles_nothing_and_takes_effect():
    params = {"w": tg.zeros((300, 1000))}  # large: its update runs compiled
    opt = nn.SGD(params, lr=0.1, momentum=0.5)
    grads = {k: tg.ones_like(v) for k, v in params.items()}
    p = opt.step(opt.step(params, grads), grads)
    info = opt._compiled().cache_info()
    opt.lr = 0.0
    assert np.array_equal(opt.step(p, grads)["w"].numpy(), p["w"].numpy())
    opt.lr = 0.5
    np.testing.assert_allclose(
        opt.step(p, grads)["w"].numpy(), p["w"].numpy() - 0.5 * 1.875
    )  # b: 1, 1.5, 1.75, 1.875
    after = opt._compiled().cache_info()
    assert after.entries == info.entries and after.hits == info.hits + 2


def test_a_step_is_still_differentiable():
    # a fresh optimiser per evaluation (a step advances Adam's count); under gradcheck's
    # tracers the update runs op by op and is differentiated
    def after_step(w):
        opt = nn.Adam({"w": tg.tensor([1.0, 2.0])}, lr=0.1, weight_decay=0.5)
        return tg.sum(opt.step({"w": w}, {"w": w * w})["w"] ** 2)

    assert tg.gradcheck(after_step, (tg.tensor([1.0, 2.0]),))


def _fit(data, cls, kwargs, jit, model=None, **fit_kwargs):
    model = model or nn.MLP(64, [16, 10], generator=tg.random.Generator(0))
    opt = cls(model.state_dict() if cls is not nn.SGD else model.parameters(), **kwargs)
    calls = []

    def loss(prediction, target):
        calls.append(1)
        return nn.cross_entropy(prediction, target)

    history = nn.fit(model, data, loss, opt, epochs=2, progress=False, jit=jit, **fit_kwargs)
    return history, {k: v.numpy() for k, v in model.state_dict().items()}, len(calls), opt


@pytest.mark.parametrize("cls, kwargs", [OPTIMISERS[1], OPTIMISERS[3]])
def test_jit_fit_is_the_eager_step_and_repeats_its_bits(digits, cls, kwargs):
    eager, w_eager, eager_calls, _ = _fit(digits, cls, kwargs, jit=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback
        jitted, w_jit, jit_calls, opt = _fit(digits, cls, kwargs, jit="auto")
        again, w_again, _, _ = _fit(digits, cls, kwargs, jit=True)
    assert eager_calls == eager.steps == 10
    # compiled: the loss was only traced, once per batch shape and state layout (first step)
    assert jit_calls == 3
    np.testing.assert_allclose(jitted.loss, eager.loss, rtol=1e-6)
    for k in w_eager:
        np.testing.assert_allclose(w_jit[k], w_eager[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(w_again[k], w_jit[k])
    assert again.loss == jitted.loss
    # the optimiser's state advanced as the eager step's does
    state = opt.state[next(iter(opt.state))]
    assert (state.get("step") == 10) if cls is nn.Adam else ("momentum_buffer" in state)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(64, 16, generator=tg.random.Generator(0))
        self.act = nn.ReLU()
        self.head = nn.Linear(16, 10, generator=tg.random.Generator(1))

    def forward(self, x):
        return self.head(self.act(self.body(x)))


def test_fit_again_reuses_the_compiled_step_until_a_module_is_replaced(digits):
    calls = []

    def loss(prediction, target):
        calls.append(1)
        return nn.cross_entropy(prediction, target)

    model = Net()
    opt = nn.SGD(model.state_dict(), lr=0.05, momentum=0.9)
    first = nn.fit(model, digits, loss, opt, epochs=1, progress=False, jit=True)
    traced = len(calls)  # per batch shape and state layout: 3
    second = nn.fit(model, digits, loss, opt, epochs=1, progress=False, jit=True)
    assert traced == 3 and len(calls) == traced  # the second fit compiled nothing
    # one fit of two epochs from the same start: the same steps, bit for bit
    ref_model = Net()
    ref = nn.fit(ref_model, digits, loss, nn.SGD(ref_model.state_dict(), lr=0.05, momentum=0.9),
                 epochs=2, progress=False, jit=True)  # fmt: skip
    assert first.loss + second.loss == ref.loss
    for k, v in ref_model.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[k].numpy(), v.numpy())
    # a replaced module is traced again: the first step's loss is the new forward's
    model.act = nn.Tanh()
    x0, y0 = digits[0]
    want = nn.cross_entropy(model(x0), y0).item()
    before = len(calls)
    third = nn.fit(model, digits, loss, opt, epochs=1, progress=False, jit=True)
    assert len(calls) > before and third.loss[0] == pytest.approx(want, rel=1e-6)


def test_jit_fit_in_deterministic_mode_repeats_its_bits(digits):
    det.set_deterministic(True, seed=0)
    try:
        runs = [_fit(digits, nn.SGD, dict(lr=0.05, momentum=0.9), jit=True) for _ in range(2)]
    finally:
        det.set_deterministic(False)
        det.reset_deterministic_state()
    (h1, w1, *_), (h2, w2, *_) = runs
    assert h1.loss == h2.loss
    assert all(np.array_equal(w1[k], w2[k]) for k in w1)


def test_jit_fit_with_a_loss_scaling_policy_matches_the_eager_step(digits):
    def run(jit):
        policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=2.0**16, growth_interval=2))
        scales = []
        history, w, calls, _ = _fit(
            digits, nn.Adam, dict(lr=0.01), jit=jit, amp=policy,
            callbacks=lambda step, info: scales.append(info.scale),
        )  # fmt: skip
        return history, w, calls, scales

    eager, w_eager, _, scales_eager = run(False)
    jitted, w_jit, calls, scales_jit = run(True)
    # traced per batch shape and optimiser-state layout; the scale, which changes, and its
    # reciprocal are arguments
    assert calls == 3
    assert scales_jit == scales_eager and len(set(scales_jit)) > 1
    np.testing.assert_allclose(jitted.loss, eager.loss, rtol=1e-3)
    for k in w_eager:
        np.testing.assert_allclose(w_jit[k], w_eager[k], rtol=1e-2, atol=1e-3)


def test_jit_fit_skips_the_steps_whose_gradients_overflow_as_the_eager_step_does(digits):
    # a scale of 2^24 overflows float16's gradients: the first steps back off and are skipped
    # (parameters and Adam's state, its step count too, untouched), then training goes on
    def run(jit):
        policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=2.0**24, growth_interval=3))
        seen = []
        _, w, _, opt = _fit(
            digits, nn.Adam, dict(lr=0.01), jit=jit, amp=policy,
            callbacks=lambda step, info: seen.append((info.scale, info.found_inf)),
        )  # fmt: skip
        return seen, w, opt, policy.stability_metrics()

    seen_eager, w_eager, opt_eager, m_eager = run(False)
    seen_jit, w_jit, opt_jit, m_jit = run(True)
    assert seen_jit == seen_eager  # every step's scale and found_inf (and each epoch's end)
    assert m_jit.scale_history == m_eager.scale_history
    assert m_jit.skipped_steps == m_jit.overflow_count == m_eager.skipped_steps
    assert 0 < m_jit.skipped_steps < m_jit.steps == 10
    steps = [st.get("step", 0) for st in opt_jit.state.values()]
    assert steps == [st.get("step", 0) for st in opt_eager.state.values()]
    assert set(steps) == {m_jit.steps - m_jit.skipped_steps}
    for k in w_eager:
        np.testing.assert_allclose(w_jit[k], w_eager[k], rtol=1e-2, atol=1e-3)


class Gated(nn.Module):
    """A forward with Python control flow on a tensor's value: cannot be traced."""

    def __init__(self):
        super().__init__()
        self.body = nn.MLP(64, [16, 10], generator=tg.random.Generator(0))

    def forward(self, x):
        y = self.body(x)
        return y if tg.sum(y).item() > -1e9 else -y


def test_a_model_that_cannot_be_traced_trains_op_by_op_with_a_warning(digits):
    eager, w_eager, _, _ = _fit(digits, nn.SGD, dict(lr=0.05), jit=False, model=Gated())
    with pytest.warns(RuntimeWarning, match="op by op.*jit=False"):
        auto, w_auto, calls, _ = _fit(digits, nn.SGD, dict(lr=0.05), jit="auto", model=Gated())
    assert calls == auto.steps  # the trace failed in the forward; then every step eagerly
    assert auto.loss == eager.loss
    assert all(np.array_equal(w_auto[k], w_eager[k]) for k in w_eager)
    with pytest.raises(TracingError, match="jit=False"):
        _fit(digits, nn.SGD, dict(lr=0.05), jit=True, model=Gated())


def test_dropout_is_not_compiled(digits):
    def model():
        g = tg.random.Generator(0)
        return nn.Sequential(nn.Linear(64, 16, generator=g), nn.Dropout(0.2, generator=g),
                             nn.Linear(16, 10, generator=g))  # fmt: skip

    with pytest.warns(RuntimeWarning, match="Dropout"):
        auto, *_ = _fit(digits, nn.SGD, dict(lr=0.05), jit="auto", model=model())
    eager, *_ = _fit(digits, nn.SGD, dict(lr=0.05), jit=False, model=model())
    assert auto.loss == eager.loss  # fresh masks every step, as eagerly
    with pytest.raises(OptionError, match="Dropout"):
        _fit(digits, nn.SGD, dict(lr=0.05), jit=True, model=model())
    with pytest.raises(OptionError, match="jit must be"):
        _fit(digits, nn.SGD, dict(lr=0.05), jit="yes")


def test_jit_fit_with_cross_entropy_itself_matches_and_checks_the_labels(digits):
    def run(jit, data=digits):
        model = nn.MLP(64, [16, 10], generator=tg.random.Generator(0))
        opt = nn.SGD(model.state_dict(), lr=0.05, momentum=0.9)
        history = nn.fit(model, data, nn.cross_entropy, opt, epochs=2, progress=False, jit=jit)
        return history.loss, {k: v.numpy() for k, v in model.state_dict().items()}

    (eager, w_eager), (jitted, w_jit) = run(False), run(True)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    for k in w_eager:
        np.testing.assert_allclose(w_jit[k], w_eager[k], rtol=1e-5, atol=1e-6)
    bad = digits[:2] + [(digits[2][0], tg.tensor(np.full(48, 10)))]  # class 10 of 10
    with pytest.raises(ShapeError, match=r"class indices must lie in \[0, 10\)"):
        run(True, bad)
