"""tfgrad.second_order's Gauss-Newton and Fisher products and natural gradient, against
J_mᵀ H_loss J_m built from the exact Jacobian and Hessian of a small MLP."""

from __future__ import annotations

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.errors import DtypeError, OptionError, SecondOrderError, ShapeError
from tfgrad.second_order import (
    fisher_operator,
    fisher_vector_product,
    flatten_params,
    ggn_operator,
    ggn_vector_product,
    hessian_density,
    hessian_spectrum,
    hessian_trace,
    natural_gradient,
    newton_cg_step,
)

B, D, K, HID = 6, 3, 4, 5
N_PARAMS = D * HID + HID + HID * K + K
RNG = np.random.default_rng(0)
X = tg.tensor(RNG.standard_normal((B, D)))
Y = np.eye(K)[RNG.integers(0, K, B)]
YT = tg.tensor(Y)
W = RNG.standard_normal(N_PARAMS) * 0.5


def mlp(w):
    i = 0
    w1 = tg.reshape(w[i : i + D * HID], (D, HID))
    i += D * HID
    b1 = w[i : i + HID]
    i += HID
    w2 = tg.reshape(w[i : i + HID * K], (HID, K))
    i += HID * K
    return tg.matmul(tg.tanh(tg.matmul(X, w1) + b1), w2) + w[i:]


def cross_entropy(z):
    return -tg.mean(tg.sum(YT * tg.log_softmax(z, axis=1), axis=1))


def half_mse(z):
    return 0.5 * tg.sum((z - YT) ** 2) / B


def dense_ggn(loss) -> np.ndarray:
    z = mlp(tg.tensor(W))
    j = tg.jacobian(mlp)(tg.tensor(W)).numpy().reshape(B * K, N_PARAMS)
    h = tg.hessian(loss)(z).numpy().reshape(B * K, B * K)
    return j.T @ h @ j


def test_ggn_and_fisher_products_equal_the_dense_matrices():
    v = RNG.standard_normal(N_PARAMS)
    g_ce, g_mse = dense_ggn(cross_entropy), dense_ggn(half_mse)
    assert np.allclose(
        ggn_vector_product(mlp, cross_entropy, W, v), g_ce @ v, rtol=1e-10, atol=1e-12
    )
    assert np.allclose(ggn_vector_product(mlp, half_mse, W, v), g_mse @ v, rtol=1e-10, atol=1e-12)
    # the true Fisher of these exponential families is the GGN of their mean losses
    assert np.allclose(fisher_vector_product(mlp, W, v), g_ce @ v, rtol=1e-10, atol=1e-12)
    fg = fisher_vector_product(mlp, W, v, likelihood="gaussian")
    assert np.allclose(fg, g_mse @ v, rtol=1e-10, atol=1e-12)
    # positive semi-definite, unlike the Hessian of the loss
    assert np.linalg.eigvalsh(g_ce).min() > -1e-10


def test_ggn_of_a_linear_model_is_its_hessian():
    a = tg.tensor(RNG.standard_normal((7, 4)))

    def linear(w):
        return tg.matmul(a, w)

    def loss(z):
        return tg.logsumexp(z)

    w = RNG.standard_normal(4)
    h = tg.hessian(lambda p: loss(linear(p)))(tg.tensor(w)).numpy()
    v = RNG.standard_normal(4)
    assert np.allclose(ggn_vector_product(linear, loss, w, v), h @ v, rtol=1e-10)


@pytest.mark.parametrize("curvature", ["fisher", "ggn"])
def test_natural_gradient_equals_the_dense_damped_solve(curvature):
    damping = 1e-2
    m = dense_ggn(cross_entropy)
    g = tg.grad(lambda w: cross_entropy(mlp(w)))(tg.tensor(W)).numpy()
    expected = np.linalg.solve(m + damping * np.eye(N_PARAMS), -g)
    r = natural_gradient(mlp, cross_entropy, W, damping=damping, curvature=curvature)
    assert r.converged and r.matvecs == r.iterations <= N_PARAMS and r.curvature == curvature
    assert np.max(np.abs(r.direction - expected)) < 1e-8 * np.max(np.abs(expected))
    assert r.gradient @ r.direction < 0  # a descent direction


def test_curvature_products_reject_bad_input():
    with pytest.raises(ShapeError, match=r"ggn_vector_product: v must have the shape of params"):
        ggn_vector_product(mlp, cross_entropy, W, np.zeros(N_PARAMS + 1))
    with pytest.raises(ShapeError, match="loss must return one number"):
        ggn_vector_product(mlp, lambda z: z * z, W, np.zeros(N_PARAMS))
    with pytest.raises(OptionError, match="likelihood must be one of"):
        fisher_vector_product(mlp, W, np.zeros(N_PARAMS), likelihood="poisson")
    with pytest.raises(ShapeError, match=r"logits of shape \(batch, classes\)"):
        fisher_vector_product(lambda w: tg.sum(w), W, np.zeros(N_PARAMS))
    with pytest.raises(SecondOrderError, match="damping must be a finite number >= 0"):
        natural_gradient(mlp, cross_entropy, W, damping=-1.0)
    with pytest.raises(OptionError, match="curvature must be one of"):
        natural_gradient(mlp, cross_entropy, W, curvature="hessian")


def test_the_spectral_tools_run_on_the_ggn_and_fisher_operators():
    g = dense_ggn(cross_entropy)
    exact = np.linalg.eigvalsh(g)
    op = ggn_operator(mlp, cross_entropy, W)
    top = hessian_spectrum(op, None, k=3, method="lanczos", which="top")
    assert top.converged and np.allclose(top.eigenvalues, exact[-3:], rtol=1e-8)
    assert top.hvps == top.lanczos_steps  # GGN products, counted per call
    full = hessian_spectrum(fisher_operator(mlp, W), None, method="exact")
    assert np.allclose(full.eigenvalues, exact, rtol=1e-8, atol=1e-10) and full.hvps == N_PARAMS
    tr = hessian_trace(op, None, num_matvecs=3 * N_PARAMS)
    # the sketch spans R^n, so the Hutchinson third is skipped: 2n products, the exact trace
    assert abs(tr.trace - np.trace(g)) < 1e-9 * np.trace(g) and tr.hvps == 2 * N_PARAMS
    d = hessian_density(op, None, num_probes=4, lanczos_steps=10, seed=0)
    assert abs(np.trapezoid(d.density, d.grid) - 1.0) < 1e-6 and d.hvps == 40
    with pytest.raises(SecondOrderError, match="x must be None"):
        hessian_spectrum(op, W, k=1)


def test_flatten_params_round_trips_and_differentiates():
    params = {"w": RNG.standard_normal((2, 3)), "b": [np.array(0.5), RNG.standard_normal(2)]}
    x, unflatten = flatten_params(params)
    assert x.shape == (9,) and x.dtype == np.float64
    back = unflatten(x)
    assert np.array_equal(back["w"], params["w"]) and np.array_equal(back["b"][1], params["b"][1])
    assert back["b"][0].shape == ()

    def loss(p):
        return tg.sum(p["w"] ** 2) * p["b"][0] + tg.sum(tg.exp(p["b"][1]))

    g = tg.grad(lambda z: loss(unflatten(z)))(tg.tensor(x)).numpy()
    expected = np.concatenate(
        [[np.sum(params["w"] ** 2)], np.exp(params["b"][1]), 2 * 0.5 * params["w"].ravel()]
    )  # leaves in tree order: dict keys sorted, so b before w
    assert np.allclose(g, expected, rtol=1e-12)
    with pytest.raises(DtypeError, match="flatten_params"):
        flatten_params({"a": np.array(["x"])})


def test_newton_cg_step_on_a_pytree_is_the_damped_newton_step():
    params = {"a": RNG.standard_normal(3), "c": (RNG.standard_normal((2, 2)),)}
    x, unflatten = flatten_params(params)
    f = convex_of_seven()

    def loss(p):
        return f(tg.concatenate([p["a"], tg.reshape(p["c"][0], (4,))]))

    new, r = newton_cg_step(loss, params, damping=0.1, tol=1e-12, maxiter=None)
    h = tg.hessian(f)(tg.tensor(x)).numpy()
    g = tg.grad(f)(tg.tensor(x)).numpy()
    step = np.linalg.solve(h + 0.1 * np.eye(7), -g)
    flat_new, _ = flatten_params(new)
    assert np.allclose(flat_new, x + step, rtol=1e-9, atol=1e-12)
    assert new["c"][0].shape == (2, 2) and r.method == "cg" and r.hvps == r.iterations
    assert loss(unflatten(tg.tensor(flat_new))).item() < loss(unflatten(tg.tensor(x))).item()


def convex_of_seven():
    m = tg.tensor(RNG.standard_normal((9, 7)))
    return lambda z: tg.logsumexp(tg.matmul(m, z)) + 0.5 * tg.sum(z * z)


def test_the_hessian_operator_records_the_gradient_once_and_replays_each_product():
    # f = sum(x^2 y^3) with x, y halves of one flat vector: a known Hessian; the operator
    # evaluates f once to check it, once more to record its gradient, and never again
    from tfgrad.second_order._operator import HessianOperator

    calls = []

    def f(z):
        calls.append(1)
        x, y = z[:3], z[3:]
        return tg.sum(x * x * y**3)

    z = np.array([0.5, -1.0, 2.0, 1.5, -0.5, 0.25])
    x, y = z[:3], z[3:]
    h = np.zeros((6, 6))
    h[:3, :3] = np.diag(2 * y**3)
    h[3:, 3:] = np.diag(6 * x * x * y)
    h[:3, 3:] = h[3:, :3] = np.diag(6 * x * y**2)
    op = HessianOperator(f, z, "test")
    rng = np.random.default_rng(0)
    for _ in range(4):
        v = rng.normal(size=6)
        np.testing.assert_allclose(op.matvec(v), h @ v, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(op.matvec(v), tg.hvp(f, tg.tensor(z), tg.tensor(v)).numpy())
    assert op.hvps == 8
    assert len(calls) == 2 + 4  # the check, the recording, and the four tg.hvp of the test
    linear = HessianOperator(lambda z: tg.sum(z * 3.0), z, "test")
    np.testing.assert_array_equal(linear.matvec(np.ones(6)), np.zeros(6))
