"""tfgrad.second_order's derivatives are exact: Hessians (any argument structure, JAX's nested
layout), HVPs, the diagonal, both Laplacians, vᵀHv, against analytic second derivatives in
float64; and bad input gets named errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from known_functions import rosenbrock, rosenbrock_hessian

import tfgrad as tg
import tfgrad.second_order as so
from tfgrad.errors import OptionError, ShapeError, TfgradError

RTOL = 1e-10


def close(actual, expected, rtol=RTOL):
    actual = actual.numpy() if isinstance(actual, tg.Tensor) else np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def raises(kind, *fragments):
    assert issubclass(kind, TfgradError)
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(kind, match=re.compile(pattern, re.DOTALL))


# ---- functions with known Hessians ----
def quadratic(a):
    return lambda x: tg.dot(x, tg.matmul(tg.tensor(a), x)), a + a.T


def log_sum_exp(x):
    p = np.exp(x - x.max())
    p /= p.sum()
    return lambda x_: tg.logsumexp(x_), np.diag(p) - np.outer(p, p)


def tanh_mlp(w, c, v, x):
    """f(x) = Σ_j v_j tanh(z_j), z = x W + c: H = W diag(v ⊙ tanh''(z)) Wᵀ,
    tanh''(z) = -2 tanh(z) (1 - tanh²(z))."""
    t = np.tanh(x @ w + c)
    h = w @ np.diag(v * -2.0 * t * (1.0 - t**2)) @ w.T
    W, C, V = tg.tensor(w), tg.tensor(c), tg.tensor(v)
    return lambda x_: tg.sum(tg.tanh(tg.matmul(x_, W) + C) * V), h


def cases(rng, n):
    x = rng.normal(size=n)
    a = rng.normal(size=(n, n))
    w, c, v = rng.normal(size=(n, 5)), rng.normal(size=5), rng.normal(size=5)
    yield "rosenbrock", rosenbrock, rosenbrock_hessian(x), x
    f, h = quadratic(a)
    yield "quadratic", f, h, x
    f, h = log_sum_exp(x)
    yield "logsumexp", f, h, x
    f, h = tanh_mlp(w, c, v, x)
    yield "tanh-mlp", f, h, x


def test_hessians_equal_the_analytic_ones(backend):
    rng = np.random.default_rng(0)
    for _name, f, h, x in cases(rng, 4):
        H = so.hessian(f)(tg.tensor(x))
        close(H, h)
        # symmetric to rounding (forward-over-reverse sums the two mixed partials in different
        # orders, so the last bit may differ)
        close(H, H.numpy().T, rtol=1e-14)


def test_the_mlp_hessian_against_finite_differences_of_its_analytic_gradient():
    # an independent check of the hand-derived MLP Hessian itself
    rng = np.random.default_rng(1)
    w, c, v, x = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=4), rng.normal(size=3)

    def g(x):  # analytic gradient: W (v ⊙ (1 - tanh²(z)))
        return w @ (v * (1.0 - np.tanh(x @ w + c) ** 2))

    eps = 1e-6
    fd = np.stack([(g(x + eps * e) - g(x - eps * e)) / (2 * eps) for e in np.eye(3)], axis=1)
    f, h = tanh_mlp(w, c, v, x)
    np.testing.assert_allclose(h, fd, atol=1e-8)
    close(so.hessian(f)(tg.tensor(x)), h)


@given(n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_every_second_order_tool_agrees_with_the_full_hessian(n, seed):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=n)
    for _name, f, h, x in cases(rng, n):
        xt, ut = tg.tensor(x), tg.tensor(u)
        H = so.hessian(f)(xt).numpy()
        close(H, h)
        close(H, H.T)
        close(so.hvp(f, xt, ut), h @ u)
        close(so.directional_second_derivative(f, xt, ut), u @ h @ u)
        for method in ("hessian", "forward"):
            close(so.hessian_diagonal(f, method=method)(xt), np.diag(h))
            close(so.laplacian(f, method=method)(xt), np.trace(h))
        close(so.laplacian(f, chunk_size=2)(xt), np.trace(h))
        close(so.hessian_diagonal(f, method="forward", chunk_size=2)(xt), np.diag(h))


def test_the_forward_laplacian_on_every_backend_and_with_its_value_and_gradient(backend):
    rng = np.random.default_rng(2)
    for _name, f, h, x in cases(rng, 5):
        value, g, lap = so.value_grad_and_laplacian(f)(tg.tensor(x))
        ref_value, ref_g = tg.value_and_grad(f)(tg.tensor(x))
        close(value, ref_value.numpy())
        close(g, ref_g.numpy())
        close(lap, np.trace(h))
        close(so.laplacian(f)(tg.tensor(x)), np.trace(h))
        close(so.hessian_diagonal(f, method="forward")(tg.tensor(x)), np.diag(h))


def test_the_forward_laplacian_through_ops_that_mix_directions():
    # matmul with both operands varying, max, prod, cumprod, broadcasting, 2-D inputs: the
    # generic second-order term (JVP of each primitive's JVP rule) must stay exact
    rng = np.random.default_rng(3)
    a = tg.tensor(rng.normal(size=(2, 3)))
    fns = [
        lambda x: tg.sum(tg.matmul(x, tg.transpose(x)) ** 2),
        lambda x: tg.max(x * x) + tg.prod(x),
        lambda x: tg.sum(tg.cumprod(tg.reshape(x, (-1,)))),
        lambda x: tg.sum(tg.sin(x) * tg.reshape(x[:, :1], (2, 1)) * a),
        lambda x: tg.sum(tg.softmax(x, axis=-1) * a) + tg.sum(tg.where(x > 0, x**3, tg.exp(x))),
    ]
    x = tg.tensor(rng.normal(size=(2, 3)))
    for f in fns:
        h = so.hessian(f)(x).numpy().reshape(6, 6)
        close(so.laplacian(f)(x), np.trace(h))
        close(so.hessian_diagonal(f, method="forward")(x), np.diag(h).reshape(2, 3))


def test_the_forward_laplacian_shortcuts_give_the_same_exact_results(monkeypatch):
    # x @ W (x a vector) takes W's rows as its tangents and never builds the n x n identity;
    # a pointwise op with tangents on one input (broadcast against a constant of higher rank,
    # or a reshaped input) takes g' and g'' from one unbatched pass; where the unit basis
    # reaches another op it is built after all. Every chunking must give the exact values.
    from tfgrad.second_order import taylor

    rng = np.random.default_rng(5)
    w, c = tg.tensor(rng.normal(size=(4, 3))), tg.tensor(rng.normal(size=(2, 4)))
    x = tg.tensor(rng.normal(size=4))
    fns = [
        lambda x: tg.sum(tg.tanh(tg.matmul(x, w)) ** 3),
        lambda x: tg.sum(tg.sin(x * c) * c),  # x (4,) broadcast against c (2, 4)
        lambda x: tg.sum(tg.exp(tg.reshape(x, (2, 2))) / (1.0 + tg.reshape(x, (2, 2)) ** 2)),
        lambda x: tg.sum(tg.matmul(x, w)) * tg.sum(tg.sin(x)),
    ]
    for f in fns:
        h = so.hessian(f)(x).numpy()
        for chunk in (None, 1, 3):
            close(so.laplacian(f, chunk_size=chunk)(x), np.trace(h))
            close(so.hessian_diagonal(f, method="forward", chunk_size=chunk)(x), np.diag(h))
            close(so.value_grad_and_laplacian(f, chunk_size=chunk)(x)[1], tg.grad(f)(x).numpy())
    built = []
    monkeypatch.setattr(taylor, "eye", lambda *a, **k: built.append(a) or tg.eye(*a, **k))
    close(so.laplacian(fns[0])(x), np.trace(so.hessian(fns[0])(x).numpy()))
    assert built == []  # only the product with W read the basis
    so.laplacian(fns[1])(x)
    assert built == [(4, 4)]  # sin(x * c) needs the basis itself


def test_the_forward_laplacian_composes_with_reverse_mode():
    # d/dx Σ_i ∂²(x_i⁴)/∂x_i² = d/dx Σ 12 x_i² = 24 x
    x = np.array([0.5, -1.0, 2.0])
    g = tg.grad(lambda x: so.laplacian(lambda y: tg.sum(y**4))(x))(tg.tensor(x))
    close(g, 24.0 * x)


def test_the_forward_laplacian_of_functions_that_differentiate_inside():
    # a gradient (a tape) and an HVP (a tape under a forward pass) inside the Taylor pass
    g = lambda x: tg.sum(tg.sin(x) * tg.exp(x[::-1]))
    x = tg.tensor([0.3, -0.5, 1.1])
    for f in (
        lambda x: tg.sum(tg.grad(g)(x) ** 2),
        lambda x: tg.sum(so.hvp(g, x, tg.ones(3)) * x),
    ):
        h = so.hessian(f)(x).numpy()
        close(so.laplacian(f)(x), np.trace(h))
        close(so.hessian_diagonal(f, method="forward")(x), np.diag(h))


def test_edge_cases_scalar_input_constant_function_float32():
    s = tg.tensor(0.7)
    f = lambda x: tg.sin(x) * x
    exact = 2 * np.cos(0.7) - 0.7 * np.sin(0.7)
    close(so.laplacian(f)(s), exact)
    close(so.hessian_diagonal(f, method="forward")(s), exact)
    value, g, lap = so.value_grad_and_laplacian(f)(s)
    close(g, np.sin(0.7) + 0.7 * np.cos(0.7))
    x = tg.tensor([1.0, 2.0])
    constant = lambda x: tg.sum(tg.ones(3))
    for method in ("forward", "hessian"):
        close(so.laplacian(constant, method=method)(x), 0.0)
        close(so.hessian_diagonal(constant, method=method)(x), [0.0, 0.0])
    lap32 = so.laplacian(lambda x: tg.sum(x**3))(tg.tensor([1.0, 2.0], dtype="float32"))
    assert lap32.dtype == tg.float32 and lap32.item() == 18.0


# ---- argument structures ----
def two_args(a, b):
    return tg.sum(tg.sin(a)) * tg.sum(b * b) + tg.sum(a) ** 2


def two_args_blocks(a, b):
    sb, ss = np.sum(b * b), np.sum(np.sin(a))
    h_aa = np.diag(-np.sin(a)) * sb + 2.0
    h_ab = np.cos(a)[:, None, None] * 2.0 * b[None]
    h_bb = 2.0 * ss * np.eye(b.size).reshape(b.shape + b.shape)
    return h_aa, h_ab, np.moveaxis(h_ab, 0, -1), h_bb


def test_tuple_argnums_give_jaxs_nested_layout(backend):
    a, b = np.array([0.3, -1.1, 2.0]), np.array([[1.0, -2.0], [0.5, 3.0]])
    h_aa, h_ab, h_ba, h_bb = two_args_blocks(a, b)
    (Haa, Hab), (Hba, Hbb) = so.hessian(two_args, argnums=(0, 1))(tg.tensor(a), tg.tensor(b))
    assert (Haa.shape, Hab.shape, Hba.shape, Hbb.shape) == ((3, 3), (3, 2, 2), (2, 2, 3),
                                                            (2, 2, 2, 2))  # fmt: skip
    for got, want in ((Haa, h_aa), (Hab, h_ab), (Hba, h_ba), (Hbb, h_bb)):
        close(got, want)
    # the order of argnums is the order of the blocks
    (Hbb2, Hba2), (Hab2, Haa2) = so.hessian(two_args, argnums=(1, 0))(a, b)
    close(Hbb2, h_bb)
    close(Hba2, h_ba)
    # a single argnum is tfgrad.hessian
    close(so.hessian(two_args, argnums=1)(a, b), h_bb)
    close(so.hessian(two_args, argnums=1)(a, b), tg.hessian(two_args, argnums=1)(a, b).numpy())


def test_an_argument_that_is_a_container_nests_the_same_way():
    a, b = np.array([0.3, -1.1, 2.0]), np.array([[1.0, -2.0], [0.5, 3.0]])
    h_aa, h_ab, h_ba, h_bb = two_args_blocks(a, b)
    H = so.hessian(lambda p, scale: scale * two_args(p["a"], p["b"]))({"a": a, "b": b}, 2.0)
    assert set(H) == {"a", "b"} and set(H["a"]) == {"a", "b"}
    close(H["a"]["b"], 2.0 * h_ab)
    close(H["b"]["a"], 2.0 * h_ba)
    close(H["b"]["b"], 2.0 * h_bb)
    ((Haa, Hab), (Hba, Hbb)) = so.hessian(lambda ab: two_args(*ab))((a, b))
    close(Hab, h_ab)


def test_hvp_with_several_arguments_is_the_blocks_times_v():
    a, b = np.array([0.3, -1.1, 2.0]), np.array([[1.0, -2.0], [0.5, 3.0]])
    va, vb = np.array([1.0, 0.5, -2.0]), np.array([[0.1, 0.2], [-0.3, 1.0]])
    h_aa, h_ab, h_ba, h_bb = two_args_blocks(a, b)
    ha, hb = so.hvp(two_args, (tg.tensor(a), tg.tensor(b)), (tg.tensor(va), tg.tensor(vb)))
    close(ha, h_aa @ va + np.tensordot(h_ab, vb, 2))
    close(hb, np.tensordot(h_ba, va, 1) + np.tensordot(h_bb, vb, 2))
    vhv = va @ h_aa @ va + 2 * va @ np.tensordot(h_ab, vb, 2) + np.tensordot(
        vb, np.tensordot(h_bb, vb, 2), 2)  # fmt: skip
    close(so.directional_second_derivative(two_args, (a, b), (va, vb)), vhv)


# ---- jacobian tells its choice ----
def test_jacobian_says_which_mode_auto_chose_and_why():
    x = tg.tensor([0.3, -0.2, 0.5])
    wide = so.jacobian(lambda x: tg.reshape(tg.sum(tg.exp(x)), (1,)))
    close(wide(x), np.exp(x.numpy())[None])
    assert wide.last_mode == "rev"
    assert wide.last_choice.startswith("rev: 1 output element <= 3 input elements")
    tall = so.jacobian(lambda x: tg.outer(tg.sin(x), tg.arange(4.0)))
    tall(x)
    assert tall.last_mode == "fwd"
    assert tall.last_choice.startswith("fwd: 3 input elements < 12 output elements")
    forced = so.jacobian(lambda x: tg.sin(x), mode="fwd")
    forced(x)
    assert forced.last_choice.startswith("fwd: asked for")


# ---- bad input ----
def test_bad_input_gets_named_errors():
    x, v = tg.tensor([1.0, 2.0, 3.0]), tg.tensor([1.0, 2.0])
    vector = lambda x: x * x
    for what, call in [
        ("hessian", lambda: so.hessian(vector)(x)),
        ("hessian", lambda: so.hessian(lambda a, b: a * b, (0, 1))(x, x)),
        ("hvp", lambda: so.hvp(vector, x, x)),
        ("hessian_diagonal", lambda: so.hessian_diagonal(vector)(x)),
        ("hessian_diagonal", lambda: so.hessian_diagonal(vector, method="forward")(x)),
        ("laplacian", lambda: so.laplacian(vector)(x)),
        ("laplacian", lambda: so.laplacian(vector, method="hessian")(x)),
        ("directional_second_derivative", lambda: so.directional_second_derivative(vector, x, x)),
    ]:
        with raises(ShapeError, what, "one number", "(3,)", "tfgrad.sum"):
            call()
    for what, call in [
        ("hvp", lambda: so.hvp(rosenbrock, x, v)),
        (
            "directional_second_derivative",
            lambda: so.directional_second_derivative(rosenbrock, x, v),
        ),
    ]:
        with raises(ShapeError, what, "(2,)", "(3,)", "must have x's shape"):
            call()
    with raises(ShapeError, "hvp", "2 tensors", "same structure"):
        so.hvp(two_args, (x, x), (x,))
    with raises(OptionError, "hessian", "(0, 0)", "once"):
        so.hessian(two_args, argnums=(0, 0))(x, x)
    with raises(OptionError, "laplacian", "'taylor'", "'hessian', 'forward'"):
        so.laplacian(rosenbrock, method="taylor")
    with raises(OptionError, "hessian_diagonal", "'hutchinson'"):
        so.hessian_diagonal(rosenbrock, method="hutchinson")
    with raises(OptionError, "jacobian", "'both'", "'auto', 'fwd' or 'rev'"):
        so.jacobian(rosenbrock, mode="both")
    assert issubclass(OptionError, ValueError)  # as the ValueError jacobian raised before


def test_the_package_is_a_feature_layer_the_core_does_not_import():
    import subprocess
    import sys

    code = "import sys, tfgrad; print('tfgrad.second_order' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
