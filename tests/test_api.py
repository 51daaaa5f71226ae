"""The functional API as users call it: grad, value_and_grad, vjp, jvp, Jacobians, Hessians,
HVPs, nested in every order, with NumPy, Python-float and nested-container arguments."""

from __future__ import annotations

import numpy as np
import pytest
from known_functions import rosenbrock, rosenbrock_hessian

import tfgrad as tg
from tfgrad.errors import OptionError, ShapeError


def test_grad_of_the_readme_example(backend):
    g = tg.grad(lambda x: tg.sum(tg.sin(x) * x))(tg.tensor([0.0, 1.0, 2.0]))
    x = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(g.numpy(), np.cos(x) * x + np.sin(x), rtol=1e-14)


def test_grad_argnums_aux_and_plain_python_inputs(backend):
    def f(w, b, scale):
        loss = tg.sum((w * 2.0 + b) ** 2) * scale
        return loss, {"loss": loss}

    gw, gb = tg.grad(f, argnums=(0, 1), has_aux=True)(np.array([1.0, 2.0]), 0.5, 3.0)[0]
    # d/dw = 2 * (2w + b) * 2 * scale, d/db = sum(2 * (2w + b)) * scale
    np.testing.assert_allclose(gw.numpy(), [30.0, 54.0])
    assert gb.item() == pytest.approx(42.0)
    (value, aux), g = tg.value_and_grad(f, has_aux=True)(tg.tensor([1.0]), 0.0, 1.0)
    assert value.item() == 4.0 and aux["loss"].item() == 4.0 and g.numpy()[0] == 8.0


def test_grad_over_dicts_and_lists(backend):
    params = {"w": tg.tensor([1.0, -1.0]), "bs": [tg.tensor(0.5), tg.tensor(2.0)]}

    def loss(p):
        return tg.sum(p["w"] * p["bs"][0]) + p["bs"][1] ** 2

    g = tg.grad(loss)(params)
    np.testing.assert_allclose(g["w"].numpy(), [0.5, 0.5])
    assert g["bs"][0].item() == 0.0 and g["bs"][1].item() == 4.0


def test_unconnected_argument_gets_zeros_in_the_functional_api(backend):
    g = tg.grad(lambda x, y: tg.sum(x), argnums=1)(tg.tensor([1.0]), tg.tensor([[1.0, 2.0]]))
    assert g.shape == (1, 2) and not g.numpy().any()


def test_grad_of_grad(backend):
    d3 = tg.grad(tg.grad(tg.grad(lambda x: x**4)))
    assert d3(tg.tensor(2.0)).item() == pytest.approx(24 * 2.0)


def test_vjp_can_be_called_again(backend):
    out, vjp_fn = tg.vjp(lambda x: x * x, tg.tensor([1.0, 2.0]))
    np.testing.assert_allclose(out.numpy(), [1.0, 4.0])
    (g1,) = vjp_fn(tg.tensor([1.0, 0.0]))
    (g2,) = vjp_fn(tg.tensor([0.0, 1.0]))
    np.testing.assert_allclose(g1.numpy(), [2.0, 0.0])
    np.testing.assert_allclose(g2.numpy(), [0.0, 4.0])


def test_jvp_is_true_forward_mode(backend, monkeypatch):
    # Forward mode must not record or sweep a tape.
    def refuse(self):
        raise AssertionError("jvp used a GradientTape")

    monkeypatch.setattr(tg.GradientTape, "__enter__", refuse)
    out, t = tg.jvp(lambda x, y: tg.sin(x) * y, (tg.tensor(0.5), tg.tensor(2.0)),
                    (tg.tensor(1.0), tg.tensor(0.0)))  # fmt: skip
    assert out.item() == pytest.approx(np.sin(0.5) * 2.0)
    assert t.item() == pytest.approx(np.cos(0.5) * 2.0)


def test_jvp_of_a_constant_output_is_zero(backend):
    out, t = tg.jvp(lambda x: tg.ones(3), (tg.tensor(1.0),), (tg.tensor(1.0),))
    np.testing.assert_array_equal(t.numpy(), np.zeros(3))


def test_jacrev_jacfwd_and_the_hybrid_choice(backend):
    x = tg.tensor([0.3, -0.2, 0.5])

    def wide(x):  # R^3 -> R^1: reverse needs one sweep
        return tg.reshape(tg.sum(tg.exp(x)), (1,))

    def tall(x):  # R^3 -> R^(3x4): forward needs three passes
        return tg.outer(tg.sin(x), tg.arange(4.0))

    for f in (wide, tall):
        jr, jf = tg.jacrev(f)(x), tg.jacfwd(f)(x)
        np.testing.assert_allclose(jr.numpy(), jf.numpy(), rtol=1e-14)
    expected = (
        np.cos(x.numpy())[:, None, None] * np.arange(4.0)[None, :, None] * np.eye(3)[:, None, :]
    )
    np.testing.assert_allclose(tg.jacrev(tall)(x).numpy(), expected, atol=1e-15)
    auto = tg.jacobian(tall)
    auto(x)
    assert auto.last_mode == "fwd"
    auto = tg.jacobian(wide)
    auto(x)
    assert auto.last_mode == "rev"


def test_hessian_is_exact(backend):
    x = np.array([0.5, -1.2, 2.0, 0.1])
    h = tg.hessian(rosenbrock)(tg.tensor(x))
    np.testing.assert_allclose(h.numpy(), rosenbrock_hessian(x), rtol=1e-13)


@pytest.mark.parametrize("mode", ["rev-over-fwd", "fwd-over-rev"])
def test_hvp_matches_the_hessian(backend, mode):
    x = np.array([0.5, -1.2, 2.0, 0.1])
    v = np.array([1.0, 2.0, -1.0, 0.5])
    hv = tg.hvp(rosenbrock, tg.tensor(x), tg.tensor(v), mode=mode)
    np.testing.assert_allclose(hv.numpy(), rosenbrock_hessian(x) @ v, rtol=1e-13)


def test_hvp_of_several_arguments_in_both_modes():
    # f(x, y) = sum(x^2 y) + sum(y^3): H = [[2 diag(y), 2 diag(x)], [2 diag(x), 6 diag(y)]]
    f = lambda x, y: tg.sum(x * x * y) + tg.sum(y**3)  # noqa: E731
    x, y = np.array([0.5, -2.0]), np.array([1.5, 0.25])
    u, w = np.array([1.0, -1.0]), np.array([0.5, 2.0])
    want = (2 * y * u + 2 * x * w, 2 * x * u + 6 * y * w)
    for mode in ("rev-over-fwd", "fwd-over-rev"):
        got = tg.hvp(f, (tg.tensor(x), tg.tensor(y)), (tg.tensor(u), tg.tensor(w)), mode=mode)
        for g, e in zip(got, want):
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-14)


def test_hvp_of_a_function_linear_in_its_input_is_zero():
    a = tg.tensor([1.0, -2.0, 3.0])
    hv = tg.hvp(lambda x: tg.sum(a * x), tg.tensor([0.1, 0.2, 0.3]), tg.tensor([1.0, 1.0, 1.0]))
    np.testing.assert_array_equal(hv.numpy(), np.zeros(3))


def test_hvp_rejects_a_bad_mode_and_a_vector_output():
    x, v = tg.tensor([1.0, 2.0]), tg.tensor([1.0, 0.0])
    with pytest.raises(OptionError, match="rev-over-fwd"):
        tg.hvp(lambda x: tg.sum(x**3), x, v, mode="rev-over-rev")
    with pytest.raises(ShapeError, match="one number"):
        tg.hvp(lambda x: x**3, x, v)


def test_every_nesting_of_modes_agrees(backend):
    f = lambda x: tg.sum(tg.tanh(x) * x**2)  # noqa: E731
    x, v = tg.tensor([0.3, -0.7]), tg.tensor([1.0, 0.5])
    fwd_over_rev = tg.jvp(tg.grad(f), (x,), (v,))[1]
    rev_over_fwd = tg.grad(lambda y: tg.jvp(f, (y,), (v,))[1])(x)
    rev_over_rev = tg.vjp(tg.grad(f), x)[1](v)[0]
    fwd_over_fwd = tg.hessian(f)(x).numpy() @ v.numpy()
    for other in (rev_over_fwd, rev_over_rev):
        np.testing.assert_allclose(fwd_over_rev.numpy(), other.numpy(), rtol=1e-13)
    np.testing.assert_allclose(fwd_over_rev.numpy(), fwd_over_fwd, rtol=1e-13)


def test_hessian_of_a_small_network_against_finite_differences(backend):
    rng = tg.random.Generator(0)
    w1, x = rng.normal((3, 4)), rng.normal((5, 3))

    def loss(w2):
        h = tg.tanh(x @ w1)
        return tg.mean(tg.logsumexp(h @ tg.reshape(w2, (4, 2)), axis=1))

    w2 = rng.normal((8,))
    h = tg.hessian(loss)(w2).numpy()
    eps = 1e-5
    g = tg.grad(loss)
    numeric = np.stack([(g(w2 + eps * e).numpy() - g(w2 - eps * e).numpy()) / (2 * eps)
                        for e in np.eye(8)])  # fmt: skip
    np.testing.assert_allclose(h, numeric, atol=1e-8)
    np.testing.assert_allclose(h, h.T, atol=1e-14)


def test_grad_needs_a_scalar(backend):
    with pytest.raises(ShapeError, match="jacobian"):
        tg.grad(lambda x: x * 2.0)(tg.tensor([1.0, 2.0]))


def test_gradcheck_passes_and_catches(backend):
    assert tg.gradcheck(lambda x, y: tg.sum(x @ y), (np.ones((2, 3)), np.ones((3, 1))))
    with pytest.raises(tg.errors.GradcheckError, match="analytic"):
        # stop_gradient hides part of the derivative: the check must notice.
        tg.gradcheck(lambda x: x * tg.stop_gradient(x), (tg.tensor([1.0, 2.0]),), order=1)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_a_steps_intermediates_are_freed_without_the_cycle_collector(backend, jit):
    # A reference cycle (once: the recursive closures flattening argument trees) kept every
    # big array of a step alive until gc ran: memory grew by a step's worth each call.
    import gc
    import tracemalloc

    fn = tg.value_and_grad(lambda x: tg.sum(tg.tanh(x) * tg.exp(-x * x)))
    fn = tg.jit(fn) if jit else fn
    x = tg.tensor(np.linspace(-2.0, 2.0, 200_000))  # 1.6 MB per float64 intermediate
    fn(x)  # traces, compiles, fills caches
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            loss, g = fn(x)
            del loss, g
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
        if was_enabled:
            gc.enable()
    assert grown < 1_000_000, f"{grown} bytes still held after three steps"
