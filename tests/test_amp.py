"""tfgrad.amp: the loss-scale state machine against traces written by hand from PyTorch's
``torch._amp_update_scale_`` (torch is not a test dependency), its bounds and checks, autocast's
op lists, tape records and restoring, and float32 -> float16/bfloat16 rounding on every backend
against NumPy and ml_dtypes."""

from __future__ import annotations

import dataclasses
import threading

import ml_dtypes
import numpy as np
import pytest

import tfgrad as tg
from tfgrad import config
from tfgrad.amp import AMPConfig, AMPPolicy, ScaleRecord, autocast, autocast_dtype
from tfgrad.errors import AMPConfigError, DtypeError

C, INF = False, True  # a clean step, a step whose gradients held inf/NaN


def run_trace(policy: AMPPolicy, steps) -> list[tuple[float, int]]:
    out = []
    for found_inf in steps:
        policy.update_scale(found_inf)
        out.append((policy.scale, policy.growth_tracker))
    return out


# ---- The state machine, step by step ----
def test_growth_after_exactly_growth_interval_clean_steps_and_backoff_on_inf():
    # growth_interval=3, scale 8: the tracker counts clean steps; the third grows the scale and
    # restarts the count; an inf halves the scale and restarts the count.
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=8.0, growth_interval=3))
    trace = run_trace(policy, [C, C, INF, C, C, C, C, INF, INF, C, C, C])
    assert trace == [
        (8.0, 1), (8.0, 2),          # two clean steps: no growth yet
        (4.0, 0),                    # inf: back off, count restarts
        (4.0, 1), (4.0, 2), (8.0, 0),  # three clean in a row: grow
        (8.0, 1),
        (4.0, 0), (2.0, 0),          # two infs: back off twice
        (2.0, 1), (2.0, 2), (4.0, 0),
    ]  # fmt: skip
    m = policy.stability_metrics()
    assert (m.steps, m.skipped_steps, m.growth_events, m.backoff_events) == (12, 3, 2, 3)
    assert m.current_scale == 4.0 and m.growth_tracker == 0
    assert m.scale_history[2] == ScaleRecord(2, 8.0, True, True, 4.0)
    assert m.scale_history[5] == ScaleRecord(5, 4.0, False, False, 8.0)
    assert [r.scale for r in m.scale_history[:4]] == [8.0, 8.0, 8.0, 4.0]  # the scale used


def test_growth_interval_one_grows_every_clean_step_and_custom_factors():
    policy = AMPPolicy(
        AMPConfig(enabled=True, initial_scale=1.0, growth_factor=4.0, backoff_factor=0.25,
                  growth_interval=1)
    )  # fmt: skip
    assert run_trace(policy, [C, C, INF, C]) == [(4.0, 0), (16.0, 0), (4.0, 0), (16.0, 0)]


def test_scale_is_a_float32_and_never_grows_to_inf():
    # The scale lives in float32: 0.3 is float32's 0.3, and 0.3 * 0.3 is rounded to float32.
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=1.0, backoff_factor=0.3))
    policy.update_scale(True)
    assert policy.scale == float(np.float32(0.3)) != 0.3
    policy.update_scale(True)
    assert policy.scale == float(np.float32(float(np.float32(0.3)) * 0.3))
    # 2**127 * 2 overflows float32: the scale stays, and the count still restarts.
    top = AMPPolicy(AMPConfig(enabled=True, initial_scale=2.0**127, growth_interval=2))
    assert run_trace(top, [C, C, C]) == [(2.0**127, 1), (2.0**127, 0), (2.0**127, 1)]
    assert top.stability_metrics().growth_events == 0
    # Backed off below float32's smallest subnormal, the scale is 0 (PyTorch's too); unscaling
    # then multiplies by inf, and every later step is found overflowing: set min_scale.
    tiny = AMPPolicy(AMPConfig(enabled=True, initial_scale=1e-45))
    assert tiny.update_scale(True) == 0.0
    _, found = tiny.unscale_and_check([tg.tensor([0.0], "float32")])
    assert found is False and tiny.unscale_and_check([tg.tensor([np.inf])])[1] is True


def test_bounds_clamp_the_scale():
    policy = AMPPolicy(
        AMPConfig(enabled=True, initial_scale=8.0, growth_interval=1, min_scale=2.0,
                  max_scale=16.0)
    )  # fmt: skip
    trace = run_trace(policy, [C, C, INF, INF, INF, INF, C])
    assert trace == [(16.0, 0), (16.0, 0), (8.0, 0), (4.0, 0), (2.0, 0), (2.0, 0), (4.0, 0)]
    m = policy.stability_metrics()
    assert (m.skipped_steps, m.growth_events, m.backoff_events) == (4, 2, 3)  # clamped: no event
    # A backoff below a min_scale that is not a power of the factor lands on the bound.
    odd = AMPPolicy(AMPConfig(enabled=True, initial_scale=10.0, min_scale=3.0))
    assert run_trace(odd, [INF, INF]) == [(5.0, 0), (3.0, 0)]


# ---- Bad configs: named, with the fix ----
@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"growth_factor": 1.0}, "growth_factor must be greater than 1"),
        ({"growth_factor": 0.5}, "growth_factor must be greater than 1"),
        ({"backoff_factor": 0.0}, "backoff_factor must lie strictly between 0 and 1"),
        ({"backoff_factor": 1.0}, "backoff_factor must lie strictly between 0 and 1"),
        ({"backoff_factor": 2.0}, "backoff_factor must lie strictly between 0 and 1"),
        ({"initial_scale": 0.0}, "initial_scale must be positive"),
        ({"initial_scale": -4.0}, "initial_scale must be positive"),
        ({"initial_scale": float("inf")}, "initial_scale must be positive"),
        ({"initial_scale": float("nan")}, "initial_scale must be positive"),
        ({"growth_interval": 0}, "growth_interval must be at least 1"),
        ({"growth_interval": -3}, "growth_interval must be at least 1"),
        ({"growth_interval": 2.5}, "growth_interval must be an integer"),
        ({"target_dtype": "float32"}, "'float16' or 'bfloat16'"),
        ({"target_dtype": "int8"}, "'float16' or 'bfloat16'"),
        ({"min_scale": 8.0, "max_scale": 4.0, "initial_scale": 6.0}, "min_scale (8.0) is greater"),
        ({"min_scale": 0.0}, "min_scale must be positive"),
        ({"max_scale": -1.0}, "max_scale must be positive"),
        ({"max_scale": 1024.0}, "initial_scale (65536.0) lies outside"),
        ({"allow": ("matmul",), "deny": ("matmul", "exp")}, "matmul on both"),
        ({"allow": (3,)}, "op lists hold op names"),
        ({"enabled": "yes"}, "enabled must be True or False"),
    ],
)
def test_bad_configs_are_named(kwargs, words):
    with pytest.raises(AMPConfigError, match="AMPConfig") as info:
        AMPConfig(**kwargs)
    assert words in str(info.value)


def test_config_is_frozen_and_normalized():
    cfg = AMPConfig(target_dtype=tg.bfloat16, allow=["matmul"], deny="exp")
    assert (cfg.target_dtype, cfg.allow, cfg.deny) == ("bfloat16", ("matmul",), ("exp",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.initial_scale = 2.0
    with pytest.raises(AMPConfigError, match="AMPPolicy takes an AMPConfig"):
        AMPPolicy({"enabled": True})


# ---- Scaling, unscaling, checking ----
def test_scale_loss_scales_the_gradient_and_unscale_restores_it(backend):
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=1024.0))
    w = tg.tensor([1.0, -2.0, 3.0], "float32")
    b = tg.tensor(0.5, "float64")
    with tg.GradientTape() as tape:
        w_, b_ = tape.watch(w), tape.watch(b)
        loss = tg.sum(w_ * w_) + tg.astype(b_, "float32") * 3.0
        scaled = policy.scale_loss(loss)
    assert scaled.dtype is tg.float32 and scaled.item() == pytest.approx(1024.0 * loss.item())
    raw = tape.gradient(scaled, {"w": w_, "rest": [None, b_]})
    np.testing.assert_array_equal(raw["w"].numpy(), 1024.0 * 2 * w.numpy())
    grads, found_inf = policy.unscale_and_check(raw)
    assert found_inf is False and grads["rest"][0] is None  # structure and None kept
    assert grads["w"].dtype is tg.float32 and grads["rest"][1].dtype is tg.float64
    np.testing.assert_array_equal(grads["w"].numpy(), 2 * w.numpy())
    assert grads["rest"][1].item() == 3.0
    assert policy.stability_metrics().overflow_count == 0


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_unscale_and_check_finds_inf_and_nan(bad):
    policy = AMPPolicy(AMPConfig(enabled=True))
    clean = tg.tensor([1.0, 2.0], "float32")
    dirty = tg.tensor([1.0, bad, 3.0], "float32")
    _, found = policy.unscale_and_check([clean, (None, clean)])
    assert found is False
    grads, found = policy.unscale_and_check([clean, (None, dirty)])
    assert found is True and grads[1][1].shape == (3,)
    assert policy.stability_metrics().overflow_count == 1


def test_float16_gradient_overflow_is_found_and_backed_off_until_it_fits(backend):
    # A float16 weight of 100: d(scaled sum w*w)/dw = 2 * 100 * scale, held in float16, whose
    # largest value is 65504. Scales 2**15 .. 2**9 overflow; 2**8 (51200) fits.
    w = tg.full((4,), 100.0, "float16")
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=2.0**15))
    while True:
        with tg.GradientTape() as tape:
            w_ = tape.watch(w)
            scaled = policy.scale_loss(tg.sum(w_ * w_))
        (raw,) = tape.gradient(scaled, [w_])
        assert raw.dtype is tg.float16
        (g,), found_inf = policy.unscale_and_check([raw])
        policy.update_scale(found_inf)
        if not found_inf:
            break
        assert np.isinf(raw.numpy()).all()
    m = policy.stability_metrics()
    assert (m.skipped_steps, m.overflow_count, m.current_scale) == (7, 7, 2.0**8)
    assert g.dtype is tg.float32  # a half gradient comes back in float32
    np.testing.assert_array_equal(g.numpy(), np.full(4, 200.0, np.float32))


def test_step_applies_only_clean_gradients_and_an_integer_gradient_is_refused():
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=4.0, growth_interval=2))
    applied = []
    assert policy.step(applied.append, [tg.tensor([8.0], "float32")]) is True
    assert policy.step(applied.append, [tg.tensor([np.nan], "float32")]) is False
    assert len(applied) == 1 and applied[0][0].item() == 2.0
    assert [r.found_inf for r in policy.stability_metrics().scale_history] == [False, True]
    with pytest.raises(DtypeError, match="gradient 0 has dtype int64"):
        policy.unscale_and_check([tg.tensor([1, 2])])
    m = policy.stability_metrics()
    assert 0 < m.scaling_seconds <= m.total_seconds and 0 < m.overhead <= 1


def test_a_disabled_policy_is_a_pass_through():
    policy = AMPPolicy()  # enabled=False, as the seed's default
    loss = tg.tensor(2.0, "float32")
    assert policy.scale_loss(loss) is loss and policy.scale == 1.0
    grads = [tg.tensor([np.inf], "float32")]
    out, found = policy.unscale_and_check(grads)
    assert out is grads and found is False  # unchecked, as a disabled GradScaler
    assert policy.update_scale(True) == 1.0 and policy.stability_metrics().steps == 0
    with policy.autocast():
        assert (tg.ones((2, 2), "float32") @ tg.ones((2, 2), "float32")).dtype is tg.float32


def test_training_an_mlp_with_the_policy_follows_float32_training():
    # tfgrad.nn's MLP on the moons, SGD; one run in float32, one under the policy (autocast in
    # float16, loss scaled, gradients unscaled and checked): the same path, to float16 digits.
    import tfgrad.nn as nn

    x, y = nn.make_moons(64, noise=0.1, generator=tg.random.Generator(0))

    def train(policy):
        model = nn.MLP(2, [16, 2], generator=tg.random.Generator(1))
        opt = nn.SGD(model.state_dict(), lr=0.5)
        params, losses = model.state_dict(), []

        def objective(p):
            with policy.autocast():
                value = nn.cross_entropy(nn.functional_call(model, p, x), y)
            return policy.scale_loss(value), tg.stop_gradient(value)

        for _ in range(15):
            (_, value), grads = tg.value_and_grad(objective, has_aux=True)(params)

            def apply(unscaled):
                nonlocal params
                params = opt.step(params, unscaled)  # dicts by parameter name

            policy.step(apply, grads)
            losses.append(value.item())
        return losses, params

    plain, plain_params = train(AMPPolicy())
    policy = AMPPolicy(AMPConfig(enabled=True, growth_interval=5))
    mixed, mixed_params = train(policy)
    assert plain[-1] < 0.8 * plain[0]
    np.testing.assert_allclose(mixed, plain, rtol=1e-2, atol=1e-2)
    assert mixed != plain  # float16 matmuls: close, not the same bits
    m = policy.stability_metrics()
    assert m.steps == 15 and m.current_scale == 2.0**16 * 2**3  # grew at steps 5, 10, 15
    assert all(p.dtype is tg.float32 for p in mixed_params.values())  # master weights


# ---- autocast ----
def _f32(*shape, seed=0):
    return tg.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("low", [tg.float16, tg.bfloat16])
def test_autocast_casts_exactly_the_listed_ops(low):
    a, b = _f32(3, 4), _f32(4, 2, seed=1)
    h = tg.astype(a, low)
    with autocast(low.name):
        assert (a @ b).dtype is low  # allow: matmul, @ and dot
        assert tg.dot(a, b).dtype is low and tg.matmul(a[0], b).dtype is low
        for deny in (tg.exp, tg.log, tg.sum, tg.mean, tg.var, tg.logsumexp, tg.softmax,
                     tg.log_softmax, tg.softplus, tg.cumsum, lambda x: x**2):  # fmt: skip
            assert deny(tg.abs(h)).dtype is tg.float32  # deny: halves up to float32
        for composite in (tg.softmax, tg.log_softmax, tg.logsumexp, tg.var):
            # Up to float32 at the start, as in PyTorch: the same bits as the float32 function.
            with autocast(enabled=False):
                expected = composite(tg.astype(h, "float32")).numpy()
            np.testing.assert_array_equal(composite(h).numpy(), expected)
        assert tg.tanh(h).dtype is low and (h + h).dtype is low  # others follow their inputs
        assert tg.tanh(a).dtype is tg.float32 and (a * 2.0).dtype is tg.float32
        assert tg.max(h).dtype is low and tg.reshape(h, (12,)).dtype is low
        assert (h + a).dtype is tg.float32  # promotion as outside the block
        f64 = tg.astype(a, "float64")
        assert (f64 @ tg.astype(b, "float64")).dtype is tg.float64  # float64 is never cast
        assert (tg.ones((2, 2), "int64") @ tg.ones((2, 2), "int64")).dtype is tg.int64
    assert (a @ b).dtype is tg.float32 and tg.exp(h).dtype is low  # after the block


def test_autocast_lists_are_by_name_and_replaceable():
    x = _f32(3, 3)
    with autocast("float16", allow=("tanh",), deny=()):  # any op name: conv2d once it exists
        assert tg.tanh(x).dtype is tg.float16
        assert (x @ x).dtype is tg.float32
        assert tg.exp(tg.astype(x, "float16")).dtype is tg.float16
    with pytest.raises(AMPConfigError, match="autocast: matmul on both"):
        with autocast(allow=("matmul",), deny=("matmul",)):
            pass
    with pytest.raises(AMPConfigError, match="'float16' or 'bfloat16'"):
        with autocast("float64"):
            pass
    assert config._cast_policy is None


def test_autocast_records_its_casts_and_gradients_reach_float32_leaves_in_float32(backend):
    x, w = _f32(5, 4), _f32(4, 3, seed=1)

    def loss_fn(x, w):
        return tg.sum(tg.log_softmax(x @ w, axis=-1))

    with tg.GradientTape() as tape:
        x_, w_ = tape.watch(x), tape.watch(w)
        with autocast("float16"):
            loss = loss_fn(x_, w_)
    seen = [(r.op, r.input_dtypes, r.dtype) for r in tape.records]
    assert seen[:4] == [
        ("cast", ("float32",), "float16"),
        ("cast", ("float32",), "float16"),
        ("matmul", ("float16", "float16"), "float16"),
        ("cast", ("float16",), "float32"),  # log_softmax: up to float32 first
    ]
    assert all(d == "float32" for _, _, d in seen[4:]) and loss.dtype is tg.float32
    gx, gw = tape.gradient(loss, [x_, w_])
    assert gx.dtype is tg.float32 and gw.dtype is tg.float32
    # Against the same function in float32 outside autocast: float16's precision apart.
    fx, fw = tg.grad(loss_fn, argnums=(0, 1))(x, w)
    np.testing.assert_allclose(gx.numpy(), fx.numpy(), rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(gw.numpy(), fw.numpy(), rtol=2e-2, atol=2e-2)


def test_autocast_casts_a_mixed_matmul_down_without_a_round_trip():
    # float16 @ float32 promotes to float32 outside autocast; inside, only the float32 operand
    # is cast (down), as PyTorch's autocast casts before type promotion.
    h, w = tg.astype(_f32(3, 4), "float16"), _f32(4, 2, seed=1)
    assert (h @ w).dtype is tg.float32
    for product in (tg.matmul, tg.dot):
        with tg.GradientTape() as tape:
            h_, w_ = tape.watch(h), tape.watch(w)
            with autocast("float16"):
                y = product(h_, w_)
        assert y.dtype is tg.float16
        seen = [(r.op, r.input_dtypes, r.dtype) for r in tape.records]
        assert seen == [("cast", ("float32",), "float16"),
                        ("matmul", ("float16", "float16"), "float16")]  # fmt: skip


def test_autocast_matmul_rounds_its_inputs_and_accumulates_in_float32(backend):
    # 4096 ones: float16 accumulation would stall at 2048 (2048 + 1 rounds to 2048).
    with autocast("float16"):
        total = tg.ones((1, 4096), "float32") @ tg.ones((4096, 1), "float32")
    assert total.dtype is tg.float16 and total.item() == 4096.0
    a, b = _f32(6, 5), _f32(5, 7, seed=1)
    with autocast("bfloat16"):
        y = a @ b
    bf = ml_dtypes.bfloat16
    expected = a.numpy().astype(bf).astype(np.float32) @ b.numpy().astype(bf).astype(np.float32)
    got = y.numpy().astype(np.float32)
    np.testing.assert_allclose(got, expected.astype(bf).astype(np.float32), rtol=2**-7, atol=1e-6)


def test_autocast_restores_after_the_block_after_an_exception_and_when_nested():
    x = _f32(2, 2)
    assert config._cast_policy is None and autocast_dtype() is None
    with autocast("float16"):
        assert autocast_dtype() is tg.float16 and (x @ x).dtype is tg.float16
        with autocast("bfloat16"):
            assert (x @ x).dtype is tg.bfloat16
            with autocast(enabled=False):
                assert autocast_dtype() is None and (x @ x).dtype is tg.float32
            assert (x @ x).dtype is tg.bfloat16
        assert (x @ x).dtype is tg.float16
    assert config._cast_policy is None and (x @ x).dtype is tg.float32
    with pytest.raises(RuntimeError, match="inside"):
        with autocast("float16"):
            with autocast("bfloat16"):
                raise RuntimeError("inside the block")
    assert config._cast_policy is None and autocast_dtype() is None
    assert (x @ x).dtype is tg.float32

    @autocast("bfloat16")
    def decorated(a):
        return a @ a

    assert decorated(x).dtype is tg.bfloat16 and (x @ x).dtype is tg.float32


def test_jit_programs_are_keyed_on_the_autocast_lists():
    x = _f32(3, 3)
    product = tg.jit(lambda a: a @ a)
    assert product(x).dtype is tg.float32
    with autocast("float16"):
        assert product(x).dtype is tg.float16  # traced again, with the casts
        with autocast(enabled=False):
            assert product(x).dtype is tg.float32  # the first program again
    assert product(x).dtype is tg.float32
    with autocast("bfloat16"):
        assert product(x).dtype is tg.bfloat16
    assert product.cache_info().misses == 3


def test_autocast_in_one_thread_leaves_other_threads_alone():
    x = _f32(2, 2)
    inside, done, seen = threading.Event(), threading.Event(), {}

    def other():
        inside.wait(10)
        seen["other"] = (x @ x).dtype  # while the main thread is inside its block
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with autocast("float16"):
        inside.set()
        done.wait(10)
        seen["main"] = (x @ x).dtype
    thread.join(10)
    assert seen == {"other": tg.float32, "main": tg.float16}
    assert config._cast_policy is None


# ---- 16-bit storage and rounding, every backend ----
def _rounding_cases() -> np.ndarray:
    ulp16, ulpbf = 2.0**-10, 2.0**-7
    special = [
        0.0, -0.0, 1.0, -1.0,
        1 + ulp16 / 2, 1 + 3 * ulp16 / 2, -(1 + ulp16 / 2),  # float16 ties: to even
        1 + ulpbf / 2, 1 + 3 * ulpbf / 2, 1 + ulpbf / 2 + 2.0**-20,  # bfloat16 ties, past one
        65504.0, 65519.0, 65520.0, -65520.0, 1e5,  # float16's max, below/at the tie to inf
        2.0**-24, 2.0**-25, 3 * 2.0**-25, 3 * 2.0**-26, 2.0**-14 - 2.0**-25,  # subnormals
        3.4028235e38, -3.4028235e38, 1e-40, np.inf, -np.inf, np.nan,
    ]  # fmt: skip
    bits = np.random.default_rng(0).integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    random = bits.view(np.float32)
    return np.concatenate([np.array(special, np.float32), random[np.isfinite(random)]])


@pytest.mark.parametrize("low", ["float16", "bfloat16"])
def test_float32_to_half_rounds_as_numpy_and_ml_dtypes(backend, low):
    values = _rounding_cases()
    half = tg.astype(tg.tensor(values), low)
    with np.errstate(over="ignore"):  # 65520 and up overflow to inf: what is tested
        reference = values.astype(np.float16 if low == "float16" else ml_dtypes.bfloat16)
    got = half.numpy()
    assert got.dtype == reference.dtype and half._data.nbytes == 2 * values.size  # 16 bits
    if hasattr(backend, "arg"):  # what a Taichi kernel is handed: f16, or bfloat16's u16 bits
        assert backend.arg(half._data).dtype == (np.float16 if low == "float16" else np.uint16)
    nan = np.isnan(reference.astype(np.float32))
    np.testing.assert_array_equal(np.isnan(got.astype(np.float32)), nan)
    np.testing.assert_array_equal(got.view(np.uint16)[~nan], reference.view(np.uint16)[~nan])
    if low == "float16":
        assert got[12] == np.inf and got[11] == 65504.0  # 65520 ties to even: inf
    back = tg.astype(half, "float32").numpy()  # and back: exact
    np.testing.assert_array_equal(back[~nan], reference.astype(np.float32)[~nan])
