"""tfgrad.conv2d: the forward against its definition (a loop over output positions and kernel
taps) on every backend setting, first and second derivatives against central differences and
against the exact bilinear algebra, the rules' transposes, batched and compiled use, and the
errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_table import conv2d_reference, conv2d_shapes

import tfgrad as tg
from tfgrad.errors import DtypeError, ShapeError, TfgradError
from tfgrad.ops.conv import conv2d_input_grad_p, conv2d_weight_grad_p
from tfgrad.primitive import bind


def _draw(data, min_side=0):
    shapes, params = conv2d_shapes(data, min_side)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    return [rng.uniform(-2, 2, size=s) for s in shapes], params, rng


def _pairs(params):
    return {k: (v, v) if isinstance(v, int) else tuple(v) for k, v in params.items()}


@given(data=st.data())
def test_forward_matches_the_loop_definition(backend, data):
    (x, w), params, _ = _draw(data)
    for dtype, rtol in (("float64", 1e-12), ("float32", 1e-5)):
        xd, wd = x.astype(dtype), w.astype(dtype)
        got = tg.conv2d(tg.tensor(xd), tg.tensor(wd), **params)
        want = conv2d_reference(xd, wd, **params)
        assert got.shape == want.shape and got.dtype.name == dtype
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=rtol)


def test_the_dispatch_policy_picks_and_shows_the_implementation():
    x, w = tg.ones((2, 3, 6, 6), "float32"), tg.ones((4, 3, 3, 3), "float32")
    for setting, implementation in (
        ({"backend": "taichi", "dispatch": "taichi-only"}, "taichi"),
        ({"backend": "taichi", "dispatch": "auto"}, "blas"),
        ({"backend": "numpy"}, "numpy"),
    ):
        with tg.use_backend(**setting), tg.GradientTape() as tape:
            xt = tape.watch(x)
            y = tg.conv2d(xt, w, padding=1)
        (record,) = [r for r in tape.records if r.op == "conv2d"]
        assert record.implementation == implementation, setting
        np.testing.assert_allclose(y.numpy(), conv2d_reference(x.numpy(), w.numpy(), padding=1))


@given(data=st.data())
@settings(max_examples=5)
def test_derivatives_match_central_differences_to_second_order(backend, data):
    (x, w), params, _ = _draw(data, 1)
    args = [tg.tensor(x), tg.tensor(w)]
    assert tg.gradcheck(lambda a, b: tg.conv2d(a, b, **params), args, order=2)
    # and each input alone, through a nonlinearity (second derivatives that do not vanish)
    assert tg.gradcheck(lambda a: tg.tanh(tg.conv2d(a, args[1], **params)), args[:1], order=2)
    assert tg.gradcheck(lambda b: tg.tanh(tg.conv2d(args[0], b, **params)), args[1:], order=2)


def _linear_map(fn, shape):
    """The matrix of a linear NumPy function on arrays of ``shape``, column by column."""
    size = int(np.prod(shape))
    return np.stack([fn(np.eye(size)[k].reshape(shape)).ravel() for k in range(size)], axis=1)


@given(data=st.data())
@settings(max_examples=4)
def test_hessians_are_the_exact_bilinear_algebra(backend, data):
    # f(x, w) = <c, conv2d(x, w)> + 1/2 |conv2d(x, w0)|^2: the Hessian's x-x block is A^T A with
    # A the matrix of x -> conv2d(x, w0); its x-w block is the matrix of the bilinear form
    # <c, conv2d(x, w)>; its w-w block is zero. All from the loop definition, no differences.
    (x, w), params, rng = _draw(data, 1)
    w0 = rng.uniform(-1, 1, size=w.shape)
    c = rng.uniform(-1, 1, size=conv2d_reference(x, w, **params).shape)
    tw0, tc = tg.tensor(w0), tg.tensor(c)

    def f(z):
        xs, ws = tg.reshape(z[: x.size], x.shape), tg.reshape(z[x.size :], w.shape)
        return tg.sum(tc * tg.conv2d(xs, ws, **params)) + 0.5 * tg.sum(
            tg.conv2d(xs, tw0, **params) ** 2
        )

    got = tg.hessian(f)(tg.tensor(np.concatenate([x.ravel(), w.ravel()]))).numpy()
    a = _linear_map(lambda v: conv2d_reference(v, w0, **params), x.shape)
    mixed = np.stack(
        [
            _linear_map(
                lambda v: np.sum(c * conv2d_reference(e.reshape(x.shape), v, **params)), w.shape
            )[0]
            for e in np.eye(x.size)
        ]  # fmt: skip
    )  # (x.size, w.size): d2 f / dx dw
    want = np.block([[a.T @ a, mixed], [mixed.T, np.zeros((w.size, w.size))]])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_hessian_equals_differences_of_the_gradient(backend):
    rng = np.random.default_rng(3)
    x, w = rng.uniform(-1, 1, (2, 2, 5, 4)), rng.uniform(-1, 1, (3, 2, 3, 2))
    params = {"stride": (2, 1), "padding": 1, "dilation": (1, 2)}

    def f(wv):
        return tg.sum(tg.tanh(tg.conv2d(tg.tensor(x), tg.reshape(wv, w.shape), **params)) ** 2)

    grad = tg.grad(f)
    h = tg.hessian(f)(tg.tensor(w.ravel())).numpy()
    eps = 1e-5
    for k in range(0, w.size, 5):
        e = np.zeros(w.size)
        e[k] = eps
        column = grad(tg.tensor(w.ravel() + e)).numpy() - grad(tg.tensor(w.ravel() - e)).numpy()
        np.testing.assert_allclose(h[:, k], column / (2 * eps), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, h.T, atol=1e-12)


@given(data=st.data())
@settings(max_examples=4)
def test_the_transposes_are_adjoint(backend, data):
    # <g, conv2d(x, w)> = <conv2d_input_grad(g, w), x> = <conv2d_weight_grad(x, g), w>
    (x, w), params, rng = _draw(data, 1)
    p = _pairs(params)
    y = conv2d_reference(x, w, **params)
    g = rng.uniform(-1, 1, size=y.shape)
    tx, tw, tgr = tg.tensor(x), tg.tensor(w), tg.tensor(g)
    dx = bind(conv2d_input_grad_p, tgr, tw, input_size=x.shape[2:], **p).numpy()
    dw = bind(conv2d_weight_grad_p, tx, tgr, kernel_size=w.shape[2:], **p).numpy()
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(np.vdot(dx, x), np.vdot(g, y), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.vdot(dw, w), np.vdot(g, y), rtol=1e-10, atol=1e-10)


def test_jit_and_the_laplacian_go_through(backend):
    from tfgrad.second_order import laplacian

    rng = np.random.default_rng(5)
    x, w = tg.tensor(rng.normal(size=(2, 1, 6, 6))), tg.tensor(rng.normal(size=(3, 1, 3, 3)))

    def loss(w):
        return tg.sum(tg.tanh(tg.conv2d(x, w, stride=2, padding=1)))

    np.testing.assert_allclose(tg.jit(tg.grad(loss))(w).numpy(), tg.grad(loss)(w).numpy(),
                               rtol=1e-12)  # fmt: skip
    flat = tg.tensor(w.numpy().ravel())

    def on_flat(v):
        return loss(tg.reshape(v, w.shape))

    trace = np.trace(tg.hessian(on_flat)(flat).numpy())
    np.testing.assert_allclose(laplacian(on_flat)(flat).numpy(), trace, rtol=1e-10)


# (x shape, w shape, stride, padding, dilation): stride 1 from 4 channels (the flipped-kernel
# input transpose), with padding and dilation per axis, a map wider than WIDE_BELOW, stride 2
# and one channel (the tap-by-tap adds)
LAYOUT_CASES = [
    ((2, 5, 6, 7), (3, 5, 3, 3), 1, 1, 1),
    ((2, 4, 5, 18), (2, 4, 3, 2), 1, (1, 0), (1, 2)),
    ((1, 5, 7, 6), (2, 5, 2, 3), 1, (0, 2), (2, 1)),
    ((1, 4, 4, 4), (2, 4, 2, 2), 1, (1, 1), 1),
    ((2, 6, 5, 5), (3, 6, 3, 3), 2, 1, 1),
    ((1, 1, 6, 6), (2, 1, 3, 3), 1, 1, 1),
]


@pytest.mark.parametrize("wide", [True, False], ids=["wide rows", "im2col"])
@pytest.mark.parametrize("case", LAYOUT_CASES, ids=lambda c: "x".join(map(str, c[0])))
def test_every_numpy_layout_is_the_definition(case, wide, monkeypatch):
    # The NumPy kernels pick a layout by shape (stride 1 on narrow maps: "wide rows"; the input
    # transpose from 4 channels: the flipped-kernel convolution): each layout, forced on shapes
    # that would take the other, against the loop definition and, for the transposes, the
    # loop definition of the gradients (every entry, not only the adjoint identity).
    from tfgrad.backends import numpy_backend as nb

    xs, ws, stride, padding, dilation = case
    monkeypatch.setattr(nb, "WIDE_BELOW", 10**6 if wide else 0)
    rng = np.random.default_rng(len(xs) + sum(xs))
    x, w = rng.uniform(-2, 2, xs), rng.uniform(-2, 2, ws)
    params = {"stride": stride, "padding": padding, "dilation": dilation}
    p = _pairs(params)
    y = conv2d_reference(x, w, **params)
    g = rng.uniform(-1, 1, size=y.shape)
    got = nb._conv2d(x, w, p["stride"], p["padding"], p["dilation"])
    dx = nb._conv2d_input_grad(g, w, x.shape[2:], p["stride"], p["padding"], p["dilation"])
    dw = nb._conv2d_weight_grad(x, g, w.shape[2:], p["stride"], p["padding"], p["dilation"])
    np.testing.assert_allclose(got, y, rtol=1e-12, atol=1e-12)
    # the gradients by their definition: <g, conv(x, w)> is linear in x and in w
    dx_want = np.array([np.vdot(g, conv2d_reference(e.reshape(xs), w, **params))
                        for e in np.eye(x.size)]).reshape(xs)  # fmt: skip
    dw_want = np.array([np.vdot(g, conv2d_reference(x, e.reshape(ws), **params))
                        for e in np.eye(w.size)]).reshape(ws)  # fmt: skip
    np.testing.assert_allclose(dx, dx_want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_want, rtol=1e-12, atol=1e-12)


def test_empty_batches_and_channels(backend):
    y = tg.conv2d(tg.ones((0, 2, 4, 4)), tg.ones((3, 2, 3, 3)))
    assert y.shape == (0, 3, 2, 2)
    y = tg.conv2d(tg.ones((2, 0, 4, 4)), tg.ones((3, 0, 3, 3)))
    assert y.shape == (2, 3, 2, 2) and not y.numpy().any()
    dw = tg.grad(lambda w: tg.sum(tg.conv2d(tg.ones((0, 2, 4, 4)), w)))(tg.ones((3, 2, 3, 3)))
    assert dw.shape == (3, 2, 3, 3) and not dw.numpy().any()


# ---- Errors: the op, the shapes or dtypes, the fix; nothing recorded ----
def _raises(kind, *words):
    return pytest.raises(kind, match="(?s)" + "".join(f"(?=.*{re.escape(w)})" for w in words))


def test_errors_name_the_op_shapes_and_fix():
    x, w = tg.ones((1, 3, 5, 5)), tg.ones((2, 3, 3, 3))
    with _raises(ShapeError, "conv2d", "(3, 5, 5)", "(2, 3, 3, 3)", "expand_dims"):
        tg.conv2d(tg.ones((3, 5, 5)), w)
    with _raises(ShapeError, "conv2d", "(1, 3, 5, 5)", "(2, 3, 3)"):
        tg.conv2d(x, tg.ones((2, 3, 3)))
    with _raises(ShapeError, "conv2d", "3 channels", "(2, 4, 3, 3)", "in_channels = 3"):
        tg.conv2d(x, tg.ones((2, 4, 3, 3)))
    with _raises(ShapeError, "conv2d", "height", "(1, 3, 5, 5)", "padding"):
        tg.conv2d(x, tg.ones((2, 3, 7, 3)))
    with _raises(ShapeError, "conv2d", "width", "spanning 7 with dilation 3"):
        tg.conv2d(x, w, dilation=(1, 3))
    with _raises(DtypeError, "conv2d", "int64", "astype"):
        tg.conv2d(tg.tensor(np.ones((1, 3, 5, 5), np.int64)), w)
    with _raises(DtypeError, "conv2d", "bool"):
        tg.conv2d(x, tg.ones((2, 3, 3, 3)) > 0)
    for bad in ({"stride": 0}, {"stride": (1, 2, 3)}, {"padding": -1}, {"dilation": 1.5}):
        with _raises(ShapeError, "conv2d", next(iter(bad))):
            tg.conv2d(x, w, **bad)
    assert issubclass(ShapeError, TfgradError) and issubclass(DtypeError, TfgradError)


def test_a_failed_conv_leaves_the_tape_usable(backend):
    x = tg.tensor(np.arange(25.0).reshape(1, 1, 5, 5))
    with tg.GradientTape() as tape:
        w = tape.watch(tg.ones((1, 1, 3, 3)))
        with pytest.raises(ShapeError):
            tg.conv2d(x, tg.ones((1, 2, 3, 3)) * w)  # a tracked kernel with 2 channels, not 1
        failed = [r.op for r in tape.records]
        y = tg.sum(tg.conv2d(x, w))
    assert "conv2d" not in failed and "cast" not in failed  # nothing of the failed conv
    (dw,) = tape.gradient(y, [w])
    # d sum(y) / dw[p, q] = the sum of the input window each tap reads
    windows = np.lib.stride_tricks.sliding_window_view(x.numpy()[0, 0], (3, 3))
    np.testing.assert_allclose(dw.numpy()[0, 0], windows.sum(axis=(0, 1)))


def test_dtypes_promote_and_arrays_and_lists_are_taken(backend):
    x = np.arange(32.0).reshape(1, 2, 4, 4)
    w = np.ones((1, 2, 2, 2), np.float32)
    y = tg.conv2d(tg.tensor(x.astype(np.float32)), tg.tensor(w.astype(np.float64)), stride=2)
    assert y.dtype.name == "float64" and y.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(y.numpy(), conv2d_reference(x, w.astype(np.float64), 2))
    z = tg.conv2d(x.tolist(), w, padding=[1, 0])  # a list, an array, a padding given as a list
    np.testing.assert_array_equal(z.numpy(), conv2d_reference(x, w.astype(np.float64), 1, (1, 0)))
