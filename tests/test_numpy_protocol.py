"""NumPy functions and ufuncs on tensors run tfgrad's ops (``__array_ufunc__`` and
``__array_function__``): the same NumPy expression gives NumPy's values on arrays and a Tensor
that differentiates (to second order, both modes) on tensors. What tfgrad lacks raises an error
that names it."""

from __future__ import annotations

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.errors import NumpyDispatchError

ROWS = np.array([1.0, -2.0, 0.5])
SQUARE = np.array([[2.0, -1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])

# name: (the NumPy expression, the shapes of its inputs, the input domain)
CASES = {
    "sin": (lambda x: np.sin(x), [(2, 3)]),
    "exp": (lambda x: np.exp(x), [(3,)]),
    "log": (lambda x: np.log(x), [(3,)], (0.5, 2.0)),
    "log1p/expm1": (lambda x: np.log1p(np.expm1(x) + 1.0), [(3,)]),
    "sqrt": (lambda x: np.sqrt(x), [(3,)], (0.5, 2.0)),
    "tan/tanh/cos": (lambda x: np.tan(x) * np.tanh(x) + np.cos(x), [(3,)], (-1.0, 1.0)),
    "abs/sign": (lambda x: np.abs(x) * np.sign(x) + np.absolute(x), [(3,)], (0.5, 2.0)),
    "square/negative/positive": (lambda x: np.square(x) - np.negative(x) + np.positive(x),
                                 [(3,)]),
    "add/subtract/multiply/divide": (
        lambda x, y: np.divide(np.add(x, y), np.multiply(np.subtract(x, 3.0), y)),
        [(2, 3), (3,)], (0.5, 2.0),
    ),
    "power": (lambda x, y: np.power(x, y) + np.true_divide(1.0, x), [(3,), (3,)], (0.5, 2.0)),
    "maximum/minimum": (lambda x, y: np.maximum(x, y) * np.minimum(x, 0.3), [(2, 3), (3,)]),
    "comparisons in where": (
        lambda x, y: np.where(np.greater(x, y), x, y) + np.where(x <= 0.1, x * x, 0.0),
        [(3,), (3,)],
    ),
    "sum": (lambda x: np.sum(x * x, axis=0), [(2, 3)]),
    "sum keepdims": (lambda x: np.sum(x**3, axis=(0, 1), keepdims=True), [(2, 3)]),
    "prod": (lambda x: np.prod(x), [(2, 3)]),
    "prod axis": (lambda x: np.prod(x, axis=1), [(2, 3)]),
    "max": (lambda x: np.max(x), [(2, 3)]),
    "amax axis": (lambda x: np.amax(x, axis=1, keepdims=True), [(2, 3)]),
    "min": (lambda x: np.min(x, axis=0), [(2, 3)]),
    "amin": (lambda x: np.amin(x), [(2, 3)]),
    "mean": (lambda x: np.mean(x**2), [(2, 3)]),
    "mean axis": (lambda x: np.mean(x, axis=-1), [(2, 3)]),
    "var": (lambda x: np.var(x, axis=0, ddof=1), [(3, 2)]),
    "cumsum": (lambda x: np.cumsum(x**2, axis=1), [(2, 3)]),
    "cumprod": (lambda x: np.cumprod(x, axis=0) * np.cumprod(x**2, axis=1), [(3, 2)]),
    "cumprod flattened": (lambda x: np.cumprod(x * x), [(2, 3)]),
    "clip": (lambda x: np.clip(x, -0.5, 0.6) * x, [(4,)]),
    "concatenate": (lambda x, y: np.concatenate([x, y * y], axis=0), [(2, 3), (1, 3)]),
    "stack": (lambda x, y: np.stack([x, x * y], axis=1), [(3,), (3,)]),
    "split": (lambda x: np.split(x, 2, axis=1)[1] ** 2, [(2, 4)]),
    "reshape": (lambda x: np.reshape(x, (3, 2)) ** 2, [(2, 3)]),
    "transpose": (lambda x: np.transpose(x**2, (2, 0, 1)), [(2, 3, 1)]),
    "expand_dims/squeeze": (lambda x: np.squeeze(np.expand_dims(x**2, 0)), [(3,)]),
    "broadcast_to": (lambda x: np.broadcast_to(x**2, (2, 3)), [(3,)]),
    "take": (lambda x: np.take(x**2, [5, 0, 0]), [(2, 3)]),
    "take axis": (lambda x: np.take(x**2, [2, 0], axis=1), [(2, 3)]),
    "matmul": (lambda a, b: np.matmul(a, b) ** 2, [(2, 3), (3, 4)]),
    "matmul vector": (lambda a, b: np.matmul(a, b) ** 2, [(3,), (3, 2)]),
    "dot": (lambda a, b: np.dot(a, b) ** 2, [(2, 3), (3,)]),
    "outer": (lambda a, b: np.outer(a, b) ** 2, [(2,), (3,)]),
    "diag/trace": (lambda x: np.diag(x) ** 2 + np.trace(x, 1) * np.trace(x), [(3, 3)]),
    "diag of a vector": (lambda x: np.diag(x**2, 1), [(2,)]),
    "linspace": (lambda a, b: np.linspace(a, b, 4) ** 2, [(), ()]),
    "add.reduce": (lambda x: np.add.reduce(x**2), [(2, 3)]),
    "multiply.reduce axis": (lambda x: np.multiply.reduce(x, axis=1), [(2, 3)]),
    "maximum/minimum.reduce": (lambda x: np.maximum.reduce(x) + np.minimum.reduce(x, axis=1,
                                                                                keepdims=True),
                               [(3, 3)]),
    "add.accumulate": (lambda x: np.add.accumulate(x**2, axis=1), [(2, 3)]),
    "multiply.accumulate": (lambda x: np.multiply.accumulate(x) * x, [(3, 2)]),
    "multiply.outer": (lambda x, y: np.multiply.outer(x, y) ** 2, [(2,), (2, 3)]),
    "array on the left": (lambda x: ROWS * x - ROWS / (x + 3.0) + np.abs(ROWS) ** x, [(2, 3)]),
    "array @ tensor": (lambda x: SQUARE @ x + (x @ SQUARE) ** 2, [(3, 3)]),
    "NumPy scalar on the left": (lambda x: np.float64(2.0) * x + np.float64(1.0) - x, [(3,)]),
}  # fmt: skip


def _inputs(case, dtype=np.float64):
    _, shapes, *domain = case
    lo, hi = domain[0] if domain else (-1.5, 1.5)
    rng = np.random.default_rng(len(shapes) + sum(len(s) for s in shapes))
    return [rng.uniform(lo, hi, size=shape).astype(dtype) for shape in shapes]


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_expressions_on_tensors_match_numpy_and_differentiate(backend, name):
    fn = CASES[name][0]
    arrays = _inputs(CASES[name])
    want = fn(*arrays)
    got = fn(*(tg.tensor(a) for a in arrays))
    assert isinstance(got, tg.Tensor), type(got)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-14)
    tg.gradcheck(fn, tuple(tg.tensor(a) for a in arrays), order=2)


@pytest.mark.parametrize("name", ["sin", "sum", "prod axis", "matmul", "array on the left"])
def test_numpy_expressions_under_jit_equal_eager(backend, name):
    fn = CASES[name][0]
    args = [tg.tensor(a) for a in _inputs(CASES[name])]
    loss = lambda *xs: tg.sum(fn(*xs))
    np.testing.assert_array_equal(tg.jit(fn)(*args).numpy(), fn(*args).numpy())
    for got, want in zip(tg.jit(tg.grad(loss, argnums=tuple(range(len(args)))))(*args),
                         tg.grad(loss, argnums=tuple(range(len(args))))(*args)):  # fmt: skip
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_numpy_keywords(backend):
    x = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert np.sum(x, dtype=np.float32).dtype == tg.float32
    assert np.mean(x, dtype="float32").dtype == tg.float32
    assert np.add(x, 1, dtype=np.float32).dtype == tg.float32
    assert np.concatenate([x, x], dtype=np.float32).dtype == tg.float32
    assert np.sum(x, out=None).item() == 10.0
    assert np.add(x, x, out=(None,)).numpy().tolist() == [[2.0, 4.0], [6.0, 8.0]]
    assert np.reshape(x, shape=(4,)).shape == (4,)
    assert np.clip(x, a_min=1.5, a_max=None).numpy().tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert np.linspace(tg.tensor(0.0), 1.0, num=3, endpoint=False).numpy().tolist() == [
        0.0, 1 / 3, 2 / 3]  # fmt: skip
    assert (np.shape(x), np.ndim(x), np.size(x), np.size(x, 1)) == ((2, 2), 2, 4, 2)
    assert np.all(x > 0).dtype == tg.bool_ and bool(np.any(x > 3.5, axis=0)[1])
    assert np.zeros_like(x, dtype="float32").dtype == tg.float32
    assert np.full_like(x, 7.0).numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]


@pytest.mark.parametrize(
    "call, fragments",
    [
        (lambda x: np.sum(x, out=np.zeros(())), ("numpy.sum", "out=", "immutable")),
        (lambda x: np.add(x, x, out=np.zeros(2)), ("numpy.add", "out=", "immutable")),
        (lambda x: np.max(x, initial=3.0), ("numpy.max", "initial=")),
        (lambda x: np.mean(x, where=np.array([True, False])), ("numpy.mean", "where=")),
        (lambda x: np.reshape(x, (2,), order="F"), ("numpy.reshape", "order=")),
        (lambda x: np.fft.fft(x), ("numpy.fft.fft", "no tfgrad counterpart", "x.numpy()")),
        (lambda x: np.linalg.svd(np.outer(x, x)), ("numpy.linalg.svd", "tfgrad.extend")),
        (lambda x: np.sort(x), ("numpy.sort", "shape (2,)")),
        (lambda x: np.arctan(x), ("numpy.arctan", "no tfgrad counterpart")),
        (lambda x: np.add.at(x, [0], 1.0), ("numpy.add.at",)),
        (lambda x: np.subtract.reduce(x), ("numpy.subtract.reduce",)),
        (lambda x: np.where(x > 0), ("numpy.where", "three-argument")),
    ],
)
def test_what_tfgrad_lacks_raises_an_error_naming_it(backend, call, fragments):
    x = tg.tensor([1.0, 2.0])
    for value in (x, None):  # a concrete tensor, and one being differentiated
        with pytest.raises(NumpyDispatchError) as info:
            if value is None:
                tg.grad(lambda v: tg.sum(call(v)))(x)
            else:
                call(value)
        for fragment in fragments:
            assert fragment in str(info.value)


def test_in_place_numpy_arithmetic_with_a_tensor_is_refused(backend):
    array = np.ones(2)
    with pytest.raises(NumpyDispatchError, match="immutable"):
        array += tg.tensor([1.0, 2.0])
    np.testing.assert_array_equal(array, [1.0, 1.0])  # untouched


def test_an_array_on_the_left_gives_a_tensor_that_differentiates(backend):
    weights = np.array([1.0, 2.0, 3.0])
    g = tg.grad(lambda x: tg.sum(weights * x + weights @ x + weights**x))(
        tg.tensor([0.0, 1.0, 0.5])
    )
    np.testing.assert_allclose(
        g.numpy(), 4 * weights + weights ** np.array([0.0, 1.0, 0.5]) * np.log(weights)
    )


def test_where_with_a_numpy_condition_differentiates(backend):
    condition = np.array([True, False, True])
    g = tg.grad(lambda t: tg.sum(np.where(condition, t, 0) * 3.0))(tg.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(g.numpy(), [3.0, 0.0, 3.0])
