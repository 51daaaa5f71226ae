"""prod's derivatives are exact to every order, in every mode, with any number of zeros.

Each output of ``prod(x * y, axis)`` is a polynomial in x: the product of its group's y times
prod_j x_j ** c_j (c_j: how often element j of x appears in the group, after broadcasting).
Its derivatives are known in closed form (d^m x^c = c! / (c - m)! x^(c - m)), so the Hessian
and third derivative of F(x) = sum(w * prod(x * y, axis, keepdims)) are compared with that
formula at points with 0, 1, 2 and 3 zeros, for every order of forward and reverse mode: a
division by x (prod / x_i) or a rule that treats "two zeros" as a constant 0 fails here.
Values are small integers, so every result is exact in float64.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tfgrad as tg


def prod_derivative(x, y, axis, keepdims, w, order):
    """The order-th derivative tensor (shape ``x.shape * order``) of
    F(x) = sum(w * prod(x * y, axis, keepdims)), from the closed form above."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    ndim = len(shape)
    if axis is None:
        axes = tuple(range(ndim))
    else:
        axes = tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))
    kept = [k for k in range(ndim) if k not in axes]
    coords = np.indices(shape)
    kept_shape = tuple(shape[k] for k in kept)
    group = np.ravel_multi_index([coords[k] for k in kept], kept_shape) if kept else 0
    group = np.broadcast_to(group, shape).reshape(-1)
    source = np.broadcast_to(np.arange(x.size).reshape(x.shape), shape).reshape(-1)
    n_groups = math.prod(kept_shape)
    counts = np.zeros((n_groups, x.size), np.int64)
    np.add.at(counts, (group, source), 1)
    scale = np.ones(n_groups)
    np.multiply.at(scale, group, np.broadcast_to(y, shape).reshape(-1))
    scale *= np.asarray(w, np.float64).reshape(-1)
    flat = x.reshape(-1)
    out = np.zeros((x.size,) * order)
    for index in itertools.product(range(x.size), repeat=order):
        m = np.bincount(index, minlength=x.size)
        falling = np.ones_like(counts)  # c (c - 1) ... (c - m + 1): zero when m > c
        for r in range(order):
            falling *= np.where(r < m, counts - r, 1)
        powers = flat ** np.maximum(counts - m, 0)  # 0 ** 0 = 1
        out[index] = np.sum(scale * np.prod(falling * powers, axis=1))
    return out.reshape(x.shape * order)


def compose(modes: str, f):
    """``"rf"`` is jacrev(jacfwd(f)): one Jacobian transformation per letter, the last letter
    innermost (``f`` is scalar, so the innermost gives the gradient); ``"1"`` is jacfwd with one
    tangent at a time (unbatched replay), ``"f"`` pushes them all at once (batched)."""
    make = {"r": tg.jacrev, "f": tg.jacfwd, "1": lambda g: tg.jacfwd(g, chunk_size=1)}
    for mode in reversed(modes):
        f = make[mode](f)
    return f


@st.composite
def prod_problem(draw, zeros: int, max_size: int):
    """x (with exactly ``zeros`` zeros, the other values +-1, +-2), a constant y that broadcasts
    with it, an axis (None, one, several, or none at all) and weights for prod's outputs."""
    shapes = draw(
        hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, min_side=1, max_side=3).filter(
            lambda s: (
                zeros <= math.prod(s.input_shapes[0]) <= max_size
                and math.prod(s.result_shape) <= 3 * max_size
            )
        )
    )
    x_shape, y_shape = shapes.input_shapes
    ndim = len(shapes.result_shape)
    axis = draw(
        st.one_of(
            st.none(),
            st.integers(-ndim, ndim - 1) if ndim else st.none(),
            st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(tuple)
            if ndim
            else st.none(),
        )
    )
    keepdims = draw(st.booleans())
    size = math.prod(x_shape)
    values = draw(st.lists(st.sampled_from([1.0, -1.0, 2.0, -2.0]), min_size=size, max_size=size))
    at = draw(st.sets(st.integers(0, size - 1), min_size=zeros, max_size=zeros))
    x = np.array([0.0 if i in at else v for i, v in enumerate(values)]).reshape(x_shape)
    y_size = math.prod(y_shape)
    y = np.array(draw(st.lists(st.sampled_from([1.0, -1.0, 2.0, 0.5]), min_size=y_size,
                               max_size=y_size))).reshape(y_shape)  # fmt: skip
    out_shape = np.prod(np.ones(shapes.result_shape), axis=axis, keepdims=keepdims).shape
    w = np.array(draw(st.lists(st.sampled_from([1.0, -1.0, 3.0]), min_size=math.prod(out_shape),
                               max_size=math.prod(out_shape)))).reshape(out_shape)  # fmt: skip
    return x, y, axis, keepdims, w


def objective(y, axis, keepdims, w):
    y, w = tg.tensor(y), tg.tensor(w)
    return lambda x: tg.sum(w * tg.prod(x * y, axis=axis, keepdims=keepdims))


def assert_exact(got, want, what):
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("zeros", [0, 1, 2, 3])
@given(data=st.data())
@settings(max_examples=6)
def test_hessian_in_every_mode_order(backend, zeros, data):
    x, y, axis, keepdims, w = data.draw(prod_problem(zeros, max_size=8))
    f = objective(y, axis, keepdims, w)
    want = prod_derivative(x, y, axis, keepdims, w, 2)
    point = tg.tensor(x)
    for modes in ["ff", "fr", "rf", "rr", "1r", "r1"]:
        assert_exact(compose(modes, f)(point), want, modes)
    assert_exact(tg.hessian(f)(point), want, "hessian")
    # Directional second derivatives v' H u through tfgrad.jvp's forward trace: forward over
    # reverse (hvp), forward over forward, reverse over forward.
    rng = np.random.default_rng(zeros)
    u, v = (tg.tensor(rng.integers(-2, 3, x.shape).astype(np.float64)) for _ in range(2))
    vhu = np.tensordot(v.numpy(), np.tensordot(want, u.numpy(), x.ndim), x.ndim)
    (hu,) = tg.hvp(f, (point,), (u,))
    assert_exact(tg.sum(hu * v), vhu, "hvp")
    directional = lambda p: tg.jvp(f, (p,), (u,))[1]  # noqa: E731
    assert_exact(tg.jvp(directional, (point,), (v,))[1], vhu, "jvp of jvp")
    assert_exact(tg.sum(tg.grad(directional)(point) * v), vhu, "grad of jvp")


@pytest.mark.parametrize("zeros", [0, 1, 2, 3])
@given(data=st.data())
@settings(max_examples=3)
def test_third_derivative_in_every_mode_order(backend, zeros, data):
    x, y, axis, keepdims, w = data.draw(prod_problem(zeros, max_size=5))
    f = objective(y, axis, keepdims, w)
    want = prod_derivative(x, y, axis, keepdims, w, 3)
    point = tg.tensor(x)
    for modes in map("".join, itertools.product("fr", repeat=3)):
        assert_exact(compose(modes, f)(point), want, modes)


def test_the_case_that_was_silently_wrong(backend):
    # d^2 prod / dx0 dx1 at [0, 0, 3] is x2 = 3 (tfgrad gave 0 before exclusive products).
    x = tg.tensor([0.0, 0.0, 3.0])
    want = np.array([[0.0, 3.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    for hessian in (
        tg.hessian(tg.prod),
        tg.jacrev(tg.grad(tg.prod)),
        tg.jacfwd(tg.jacfwd(tg.prod)),
    ):
        np.testing.assert_array_equal(hessian(x).numpy(), want)
    third = tg.jacfwd(tg.hessian(tg.prod))(tg.tensor([0.0, 0.0, 0.0, 5.0]))
    assert third.numpy()[0, 1, 2] == 5.0 and third.numpy()[0, 1, 3] == 0.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_every_float_dtype(backend, dtype):
    # Small integers: every product is exact in each dtype, so the results are exact too.
    x = np.array([[0.0, 2.0, 0.0, -1.0], [3.0, 0.0, 1.0, 2.0]])
    w = np.array([1.0, -2.0])
    f = objective(np.ones(()), 1, False, w)
    point = tg.tensor(x, dtype=dtype)
    g, h = tg.grad(f)(point), tg.hessian(f)(point)
    assert g.dtype.name == h.dtype.name == dtype
    np.testing.assert_array_equal(
        g.numpy().astype(np.float64), prod_derivative(x, np.ones(()), 1, False, w, 1)
    )
    np.testing.assert_array_equal(
        h.numpy().astype(np.float64), prod_derivative(x, np.ones(()), 1, False, w, 2)
    )
