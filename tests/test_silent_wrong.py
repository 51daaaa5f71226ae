"""Inputs that once gave a wrong number without an error (found by running HIPS autograd's own
tests against tfgrad): each is now right or raises. The rule behind the fixes: a traced value
never turns into plain numbers silently."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.errors import ShapeError, TracerConversionError, TracingError


def rev(f):
    """The derivative of a scalar function of a scalar, by reverse mode."""
    return tg.grad(f)


def fwd(f):
    """The same derivative by forward mode (one tangent)."""
    return lambda x: tg.jvp(f, (x,), (tg.ones_like(x),))[1]


def derivative(f, modes: tuple):
    """``f`` differentiated once per mode, the last mode outermost."""
    for mode in modes:
        f = mode(f)
    return f


# Every order up to three, in every order of modes (reverse over forward over reverse, ...)
MODE_CHAINS = [chain for k in (1, 2, 3) for chain in itertools.product((rev, fwd), repeat=k)]


def chain_id(chain) -> str:
    return "-".join(mode.__name__ for mode in reversed(chain))


# ---- Lists and tuples of tensors ----
def test_lists_of_tracked_tensors_keep_their_derivative(backend):
    x = tg.tensor(0.0)
    assert tg.grad(lambda x: tg.mean([x, x + 2.0]))(x).item() == 1.0
    assert tg.grad(lambda x: tg.sum(tg.tensor([x, 2.0 * x])))(tg.tensor(1.0)).item() == 3.0
    assert tg.grad(lambda x: tg.sum([x, x]))(tg.tensor(1.0)).item() == 2.0
    assert tg.grad(lambda x: tg.sum((x, 3.0 * x)))(tg.tensor(1.0)).item() == 4.0


@pytest.mark.parametrize("chain", MODE_CHAINS[:6], ids=chain_id)
def test_lists_of_tensors_differentiate_again(backend, chain):
    # sum([x², x³]) at x = 1.5: derivatives 2x + 3x², 2 + 6x, 6
    f = lambda x: tg.sum(tg.tensor([x**2, x**3]))
    want = {1: 2 * 1.5 + 3 * 1.5**2, 2: 2 + 6 * 1.5, 3: 6.0}[len(chain)]
    got = derivative(f, chain)(tg.tensor(1.5)).item()
    assert got == pytest.approx(want, rel=1e-12)


def test_nested_lists_are_stacked_with_numbers_as_weak_scalars(backend):
    def f(x):
        m = tg.tensor([[x, 1.0], [2.0, x * x]])
        assert m.shape == (2, 2) and m.dtype == x.dtype
        return tg.sum(m @ m)

    for dtype in ("float64", "float32"):
        x = tg.tensor(3.0, dtype=dtype)
        # m @ m = [[x² + 2, x + x²], [2x + 2x², 2 + x⁴]]; d/dx of the sum = 2x + 1 + 6x + 2 + 4x³
        assert tg.grad(f)(x).item() == pytest.approx(2 * 3 + 1 + 6 * 3 + 2 + 4 * 27)
    np.testing.assert_array_equal(
        tg.tensor([[tg.tensor(1.0), 2.0], [3.0, 4.0]]).numpy(), [[1.0, 2.0], [3.0, 4.0]]
    )


def test_every_op_takes_lists_of_tensors(backend):
    x = tg.tensor([1.0, 2.0])
    cases = {
        "multiply": (lambda x: tg.sum(tg.multiply([x[0], x[1]], 3.0)), [3.0, 3.0]),
        "where": (lambda x: tg.sum(tg.where([True, False], [x[0], x[1]], 0.0)), [1.0, 0.0]),
        "matmul": (lambda x: tg.sum(tg.matmul([[x[0], 0.0], [0.0, x[1]]], [1.0, 1.0])), [1.0, 1.0]),
        "exp": (lambda x: tg.sum(tg.exp([x[0], 2.0])), [math.e, 0.0]),
        "concatenate": (lambda x: tg.sum(tg.concatenate([[x[0]], [x[1], x[1]]])), [1.0, 2.0]),
        "operator": (lambda x: tg.sum(x * [x[1], x[0]]), [4.0, 2.0]),
        "dtype": (lambda x: tg.sum(tg.tensor([x[0], x[1]], dtype="float32")), [1.0, 1.0]),
    }
    for name, (f, want) in cases.items():
        np.testing.assert_allclose(tg.grad(f)(x).numpy(), want, rtol=1e-6, err_msg=name)
    # and forward mode and tfgrad.jit see the same
    tangent = tg.jvp(lambda x: tg.tensor([x[0], x[0] * x[1]]), (x,), (tg.tensor([1.0, 0.0]),))[1]
    np.testing.assert_array_equal(tangent.numpy(), [1.0, 2.0])
    jitted = tg.jit(tg.grad(lambda x: tg.sum(tg.tensor([x[0] * x[1], x[1]]))))
    np.testing.assert_array_equal(jitted(x).numpy(), [2.0, 2.0])


def test_a_ragged_list_of_tensors_fails_before_recording_anything(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([1.0, 2.0]))
        with pytest.raises(ShapeError, match=r"\(2,\), \(\)"):
            tg.tensor([x, 1.0])
        with pytest.raises(ShapeError):
            x + [x, [x]]
        assert tape.records == []


# ---- linspace with tensor endpoints ----
def test_linspace_differentiates_in_its_endpoints(backend):
    w = tg.arange(1.0, 6.0)
    f = lambda a, b: tg.sum(tg.linspace(a, b, 5) * w)
    grads = tg.grad(f, argnums=(0, 1))(tg.tensor(1.2), tg.tensor(3.4))
    assert [g.item() for g in grads] == pytest.approx([5.0, 10.0], rel=1e-14)
    np.testing.assert_array_equal(
        tg.linspace(tg.tensor(1.2), tg.tensor(3.4), 5).numpy(), np.linspace(1.2, 3.4, 5)
    )
    # nonlinear in the endpoints: first and second order, both modes
    g = lambda a, b: tg.sum(tg.linspace(a, b, 4, endpoint=False) ** 3)
    tg.gradcheck(g, (tg.tensor(0.7), tg.tensor(-1.3)), order=2)


def test_linspace_with_array_endpoints_and_dtypes(backend):
    start, stop = np.array([0.0, 1.0]), np.array([[2.0, 3.0], [4.0, -1.0]])
    got = tg.linspace(tg.tensor(start), tg.tensor(stop), 3)
    np.testing.assert_array_equal(got.numpy(), np.linspace(start, stop, 3))
    f32 = tg.linspace(tg.tensor(0.5, dtype="float32"), 2.0, 7)
    assert f32.dtype == tg.float32
    np.testing.assert_array_equal(f32.numpy(), np.linspace(np.float32(0.5), 2.0, 7))
    for num in (0, 1):
        np.testing.assert_array_equal(
            tg.linspace(tg.tensor(start), 2.0, num).numpy(), np.linspace(start, 2.0, num)
        )
    tg.gradcheck(lambda a, b: tg.linspace(a, b, 3) * tg.linspace(b, a, 3), (
        tg.tensor(start), tg.tensor(stop)), order=2)  # fmt: skip


# ---- NumPy functions on tracked tensors ----
def test_numpy_functions_on_tracked_tensors_differentiate(backend):
    base = tg.tensor([1.0, 2.0, 0.5])
    a = tg.tensor([0.3, -0.2, 0.1])
    g = tg.grad(lambda a: np.prod(tg.exp(a) * base))(a)
    np.testing.assert_allclose(g.numpy(), np.prod(np.exp(a.numpy()) * base.numpy()) * np.ones(3))
    x = tg.tensor([[1.0, 3.0], [2.0, -1.0]])
    assert np.max(x).item() == 3.0 and np.min(x).item() == -1.0 and np.mean(x).item() == 1.25
    np.testing.assert_array_equal(tg.grad(np.max)(x).numpy(), [[0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(tg.grad(np.min)(x).numpy(), [[0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(tg.grad(np.mean)(x).numpy(), np.full((2, 2), 0.25))


# ---- power at zero, to every order ----
@pytest.mark.parametrize("chain", MODE_CHAINS, ids=chain_id)
def test_power_derivatives_at_special_points(backend, chain):
    k = len(chain)
    for n, x0 in itertools.product((0, 1, 2, 3), (0.0, -1.5, 2.0)):
        # d^k/dx^k x^n = n!/(n-k)! x^(n-k), zero past n; at 0, 0^0 = 1
        want = 0.0 if k > n else math.perm(n, k) * x0 ** (n - k)
        for exponent in (float(n), n, tg.tensor(float(n))):  # a float, a weak int, a tensor
            got = derivative(lambda x: x**exponent, chain)(tg.tensor(x0)).item()
            assert got == pytest.approx(want, rel=1e-12, abs=1e-300), (n, x0, exponent)


def test_power_of_zero_second_derivative_is_zero():
    assert tg.grad(tg.grad(lambda x: x**0.0))(tg.tensor(0.0)).item() == 0.0
    assert tg.hessian(lambda x: x**0.0)(tg.tensor(0.0)).item() == 0.0


@pytest.mark.parametrize("chain", [c for c in MODE_CHAINS if len(c) == 1], ids=chain_id)
@pytest.mark.parametrize("outer", [rev, fwd], ids=["rev", "fwd"])
def test_power_mixed_derivatives_in_base_and_exponent(backend, chain, outer):
    # d²(x^y)/dx dy = x^(y-1) (1 + y log x); at y = 0 it is 1/x (a pinned-to-zero rule said 0)
    for x0, y0 in ((2.0, 0.0), (2.0, 1.5), (0.5, 3.0), (3.0, -1.0)):

        def dx(y):
            return derivative(lambda x: x**y, chain)(tg.tensor(x0))

        got = outer(dx)(tg.tensor(y0)).item()
        assert got == pytest.approx(x0 ** (y0 - 1) * (1 + y0 * math.log(x0)), rel=1e-12)
    # d/dy x^y = x^y log x, and 0 (not NaN) at x = 0
    assert outer(lambda y: tg.tensor(2.0) ** y)(tg.tensor(1.5)).item() == pytest.approx(
        2**1.5 * math.log(2.0), rel=1e-12
    )
    assert outer(lambda y: tg.tensor(0.0) ** y)(tg.tensor(2.0)).item() == 0.0


# ---- tfgrad.all and tfgrad.any ----
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_all_and_any_match_numpy(backend, axis, keepdims):
    values = np.array([[0.0, 1.0, np.nan], [2.0, -3.0, 0.5]])
    integers = np.array([[0, 4, -1], [2, 0, 0]])
    for tfgrad_fn, numpy_fn in ((tg.all, np.all), (tg.any, np.any)):
        for array in (values, values == 0.0, np.zeros((2, 3)), integers):
            got = tfgrad_fn(tg.tensor(array), axis=axis, keepdims=keepdims)
            assert got.dtype == tg.bool_
            np.testing.assert_array_equal(got.numpy(), numpy_fn(array, axis, keepdims=keepdims))
    empty = tg.zeros((0, 2))
    assert bool(tg.all(empty)) and not bool(tg.any(empty))


def test_all_and_any_on_a_tracked_tensor_are_plain_bools(backend):
    def f(x):
        assert type(tg.all(x > 0)) is tg.Tensor  # nothing to differentiate, nothing recorded
        return tg.where(tg.any(x > 1.5), x * x, x)

    np.testing.assert_array_equal(tg.grad(lambda x: tg.sum(f(x)))(tg.tensor([1.0, 2.0])).numpy(),
                                  [2.0, 4.0])  # fmt: skip


def test_the_truth_value_error_names_functions_that_exist():
    with pytest.raises(ShapeError, match="tfgrad.all / tfgrad.any") as info:
        bool(tg.tensor([1.0, 2.0]))
    assert "tfgrad.all" in str(info.value)
    assert callable(tg.all) and callable(tg.any)


# ---- A traced value never becomes plain numbers implicitly ----
def _under_each_trace():
    """(name, runner): runner(f) calls f on a traced value of [1.5, -2.0] and returns f's result."""
    x = tg.tensor([1.5, -2.0])
    return {
        "tape": lambda f: tg.grad(lambda v: (f(v), tg.sum(v))[1])(x),
        "forward": lambda f: tg.jvp(lambda v: (f(v), v)[1], (x,), (tg.ones(2),)),
        "jit": lambda f: tg.jit(lambda v: (f(v), v)[1])(x),
    }


@pytest.mark.parametrize("trace", ["tape", "forward", "jit"])
@pytest.mark.parametrize(
    "convert",
    [np.asarray, np.array, lambda v: np.array([v[0], v[1]]), lambda v: math.exp(v[0]),
     lambda v: float(v[0]), lambda v: np.float64(v[1]), lambda v: complex(v[0])],
    ids=["asarray", "array", "list-to-array", "math.exp", "float", "np.float64", "complex"],
)  # fmt: skip
def test_converting_a_tracer_to_plain_numbers_raises(backend, trace, convert):
    # A jit tracer has no value to read at all: TracingError, as before
    kind = TracingError if trace == "jit" else TracerConversionError
    with pytest.raises(kind) as info:
        _under_each_trace()[trace](convert)
    if trace != "jit":
        message = str(info.value)
        assert ".numpy()" in message and "np.sin(x)" in message and "differentiated" in message


def test_explicit_reads_and_concrete_tensors_still_convert(backend):
    x = tg.tensor([1.5, -2.0])
    np.testing.assert_array_equal(np.asarray(x), [1.5, -2.0])
    assert float(x[0]) == 1.5 and math.exp(x[1]) == math.exp(-2.0)

    def f(v):
        # explicit reads: the values, as constants (no derivative through them)
        assert v.numpy().tolist() == [1.5, -2.0] and v[0].item() == 1.5
        assert np.asarray(tg.stop_gradient(v)).tolist() == [1.5, -2.0]
        assert int(v[0]) == 1  # int() and bool() are piecewise constant: nothing is lost
        return tg.sum(v * v)

    np.testing.assert_array_equal(tg.grad(f)(x).numpy(), [3.0, -4.0])


def test_the_new_errors_are_tfgrad_errors_and_type_errors():
    from tfgrad.errors import NumpyDispatchError, TfgradError

    for kind in (TracerConversionError, NumpyDispatchError):
        assert issubclass(kind, TfgradError) and issubclass(kind, TypeError)
