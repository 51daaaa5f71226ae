"""The Tensor as users meet it: creation, dtypes and promotion, properties, operators,
indexing, gather/scatter and random generators, all compared with NumPy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tfgrad as tg
from tfgrad.errors import ShapeError, TfgradError

DTYPES = ("bool", "int32", "int64", "float16", "bfloat16", "float32", "float64")
NP_DTYPE = {name: np.dtype(ml_dtypes.bfloat16 if name == "bfloat16" else name) for name in DTYPES}


def assert_same(got: tg.Tensor, want, exact: bool = True, rtol: float = 1e-12) -> None:
    """``got`` has ``want``'s shape, dtype and values (exactly, or to ``rtol``)."""
    want = np.asarray(want)
    assert isinstance(got, tg.Tensor)
    assert got.shape == want.shape
    assert got.dtype.name == want.dtype.name
    if exact:
        np.testing.assert_array_equal(got.numpy(), want)
    else:
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=rtol)


# ---- Creation ----
@pytest.mark.parametrize(
    "data",
    [
        1,
        -2.5,
        True,
        [1, 2, 3],
        [[1.0, 2.0], [3.0, 4.0]],
        [True, False],
        [[1, 2.5]],
        [],
        np.arange(6, dtype=np.int32).reshape(2, 3),
        np.arange(6, dtype=np.int64),
        np.linspace(0, 1, 4, dtype=np.float32),
        np.array([1.5, -2.0], dtype=np.float16),
        np.float32(3.5),
        np.array(7),
    ],
    ids=repr,
)
def test_tensor_infers_dtype_as_numpy(backend, data):
    assert_same(tg.tensor(data), np.asarray(data))


@pytest.mark.parametrize(
    "spec, name",
    [
        ("float32", "float32"),
        (tg.float32, "float32"),
        (np.float32, "float32"),
        (np.dtype("float16"), "float16"),
        ("bfloat16", "bfloat16"),
        (ml_dtypes.bfloat16, "bfloat16"),
        ("int32", "int32"),
        (np.int64, "int64"),
        (int, "int64"),
        (float, "float64"),
        (bool, "bool"),
        ("bool_", "bool"),
        (tg.bool_, "bool"),
    ],
    ids=repr,
)
def test_tensor_takes_an_explicit_dtype(backend, spec, name):
    values = [[0.0, 1.0, 2.0], [3.0, 0.0, 5.0]]
    t = tg.tensor(values, dtype=spec)
    assert t.dtype is tg.dtypes.as_dtype(name)
    assert_same(t, np.array(values, dtype=NP_DTYPE[name]))


def test_tensor_of_a_tensor_is_the_same_value(backend):
    x = tg.tensor([1.0, 2.0])
    assert tg.tensor(x) is x
    assert_same(tg.tensor(x, dtype="float32"), np.array([1.0, 2.0], np.float32))


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@given(shape=shapes, dtype=st.sampled_from(DTYPES))
@settings(deadline=None, max_examples=15)
def test_zeros_ones_full_match_numpy(backend, shape, dtype):
    npd = NP_DTYPE[dtype]
    assert_same(tg.zeros(shape, dtype), np.zeros(shape, npd))
    assert_same(tg.ones(shape, dtype), np.ones(shape, npd))
    assert_same(tg.full(shape, 3, dtype), np.full(shape, 3, npd))
    like = tg.tensor(np.zeros(shape, npd))
    assert_same(tg.zeros_like(like), np.zeros_like(np.zeros(shape, npd)))
    assert_same(tg.ones_like(like), np.ones(shape, npd))
    assert_same(tg.full_like(like, 1), np.full(shape, 1, npd))
    assert_same(tg.full_like(like, 2, dtype="float64"), np.full(shape, 2.0))


@pytest.mark.parametrize("fill", [1.5, 7, True, -0.0])
def test_full_infers_dtype_from_the_fill_value(backend, fill):
    assert_same(tg.full((2, 3), fill), np.full((2, 3), fill))
    assert_same(tg.full(4, fill), np.full(4, fill))


def test_zeros_and_ones_default_to_float64(backend):
    assert_same(tg.zeros((2,)), np.zeros(2))
    assert_same(tg.ones(3), np.ones(3))


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((5,), {}),
        ((2, 11, 3), {}),
        ((10, 2, -3), {}),
        ((-3, 3), {}),
        ((0.0, 1.0, 0.1), {}),
        ((1, -1, -0.25), {}),
        ((2.5,), {}),
        ((3, 3), {}),
        ((5, 0), {}),
        ((0, 5, -1), {}),
        ((0, 5), {"dtype": "float32"}),
        ((0.5, 4.0, 0.5), {"dtype": "float32"}),
        ((6,), {"dtype": "int32"}),
    ],
    ids=repr,
)
def test_arange_matches_numpy(backend, args, kwargs):
    want = np.arange(*args, **kwargs)
    got = tg.arange(*args, **kwargs)
    rtol = 1e-6 if want.itemsize == 4 else 1e-15
    assert_same(got, want, exact=want.dtype.kind in "iu", rtol=rtol)


@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize(
    "start, stop, num", [(0.0, 1.0, 5), (-2.0, 3.7, 50), (1.0, -1.0, 7), (0.1, 0.3, 3),
                         (2.0, 5.0, 1), (2.0, 5.0, 0), (0.0, 1e-3, 11)]
)  # fmt: skip
def test_linspace_matches_numpy(backend, start, stop, num, endpoint):
    want = np.linspace(start, stop, num, endpoint=endpoint)
    got = tg.linspace(start, stop, num, endpoint=endpoint)
    assert_same(got, want, exact=False, rtol=1e-14)
    if endpoint and num > 1:
        assert got.numpy()[-1] == stop  # exactly, as NumPy
    if num > 0:
        assert got.numpy()[0] == start


def test_linspace_takes_a_dtype(backend):
    assert_same(tg.linspace(0, 1, 5, dtype="float32"), np.linspace(0, 1, 5, dtype=np.float32))


@given(
    n=st.integers(0, 5),
    m=st.one_of(st.none(), st.integers(0, 5)),
    k=st.integers(-6, 6),
    dtype=st.sampled_from(["float64", "float32", "int64", "bool"]),
)
@settings(deadline=None, max_examples=20)
def test_eye_matches_numpy(backend, n, m, k, dtype):
    assert_same(tg.eye(n, m, k, dtype=dtype), np.eye(n, m, k, dtype=NP_DTYPE[dtype]))


def test_eye_defaults(backend):
    assert_same(tg.eye(3), np.eye(3))


# ---- Dtypes ----
VALUES = [-2.5, -1.0, 0.0, 0.5, 1.0, 3.75, 100.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_round_trips(backend, dtype):
    array = np.array(VALUES, dtype=NP_DTYPE[dtype]).reshape(7, 1)
    t = tg.tensor(array)
    assert t.dtype.name == dtype and t.dtype.numpy == NP_DTYPE[dtype]
    assert_same(t, array)
    assert_same(tg.tensor(VALUES, dtype=dtype), np.array(VALUES).astype(NP_DTYPE[dtype]))


@pytest.mark.parametrize("src", DTYPES)
def test_astype_matches_numpy(backend, src):
    array = np.array(VALUES).astype(NP_DTYPE[src])
    t = tg.tensor(array)
    for dst in DTYPES:
        assert_same(t.astype(dst), array.astype(NP_DTYPE[dst]))
        assert_same(tg.astype(t, tg.dtypes.as_dtype(dst)), array.astype(NP_DTYPE[dst]))


# bfloat16 is not a NumPy dtype, so NumPy has no rule for it with float16 or integers;
# tfgrad/dtypes.py documents these (a float that holds both, as JAX; ints go to float64).
BFLOAT16_RULES = {
    ("bool", "bfloat16"): "bfloat16",
    ("bfloat16", "bfloat16"): "bfloat16",
    ("float16", "bfloat16"): "float32",
    ("bfloat16", "float32"): "float32",
    ("bfloat16", "float64"): "float64",
    ("int32", "bfloat16"): "float64",
    ("int64", "bfloat16"): "float64",
}


def expected_promotion(a: str, b: str) -> str:
    if "bfloat16" in (a, b):
        return BFLOAT16_RULES.get((a, b)) or BFLOAT16_RULES[(b, a)]
    return np.result_type(NP_DTYPE[a], NP_DTYPE[b]).name


@pytest.mark.parametrize("a", DTYPES)
def test_add_promotes_every_pair_as_numpy(backend, a):
    x = np.array([0.0, 1.0, 2.0]).astype(NP_DTYPE[a])
    for b in DTYPES:
        y = np.array([1.0, 0.0, 3.0]).astype(NP_DTYPE[b])
        out = tg.tensor(x) + tg.tensor(y)
        want = expected_promotion(a, b)
        assert out.dtype.name == want, (a, b)
        expected = x.astype(NP_DTYPE[want]) + y.astype(NP_DTYPE[want])
        np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize(
    "dtype, op, scalar, result",
    [
        ("float32", "mul", 0.5, "float32"),
        ("float16", "add", 1.5, "float16"),
        ("bfloat16", "mul", 2.0, "bfloat16"),
        ("float32", "add", 3, "float32"),
        ("int32", "add", 1, "int32"),
        ("int32", "mul", 0.5, "float64"),
        ("int64", "mul", 0.5, "float64"),
        ("bool", "add", 1, "int64"),
        ("bool", "mul", 0.5, "float64"),
        ("bool", "mul", True, "bool"),
        ("float64", "sub", True, "float64"),
    ],
)
def test_python_scalars_are_weak_as_in_numpy2(backend, dtype, op, scalar, result):
    x = np.array([1, 0, 1]).astype(NP_DTYPE[dtype])
    fn = {"add": lambda a, b: a + b, "mul": lambda a, b: a * b, "sub": lambda a, b: a - b}[op]
    t = tg.tensor(x)
    for got, want in ((fn(t, scalar), fn(x, scalar)), (fn(scalar, t), fn(scalar, x))):
        assert got.dtype.name == result
        if dtype != "bfloat16":  # NumPy itself applies NEP 50 to its own dtypes
            assert want.dtype.name == result
        np.testing.assert_array_equal(got.numpy(), want.astype(NP_DTYPE[result]))


@pytest.mark.parametrize("name", ["sum", "prod", "cumsum", "cumprod", "mean", "max", "min"])
def test_reductions_of_bools_take_numpys_dtypes(backend, name):
    x = np.array([[True, False, True], [True, True, True]])
    for axis in (None, 1):
        got, want = getattr(tg, name)(tg.tensor(x), axis=axis), getattr(np, name)(x, axis=axis)
        assert got.dtype.name == np.asarray(want).dtype.name
        np.testing.assert_array_equal(got.numpy(), want)


# ---- Properties ----
@given(shape=shapes)
@settings(deadline=None, max_examples=15)
def test_shape_ndim_size_dtype(backend, shape):
    array = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    t = tg.tensor(array)
    assert t.shape == array.shape and isinstance(t.shape, tuple)
    assert t.ndim == array.ndim
    assert t.size == array.size
    assert t.dtype is tg.float32
    np.testing.assert_array_equal(np.asarray(t), array)
    assert np.asarray(t).dtype == np.float32


def test_item_and_its_error(backend):
    assert tg.tensor(2.5).item() == 2.5 and isinstance(tg.tensor(2.5).item(), float)
    assert tg.tensor([[7]]).item() == 7 and isinstance(tg.tensor([[7]]).item(), int)
    assert tg.tensor(True).item() is True
    with pytest.raises(ShapeError, match=r"item\(\).*\(2,\)"):
        tg.tensor([1.0, 2.0]).item()
    with pytest.raises(ShapeError, match=r"item\(\).*\(0,\)"):
        tg.tensor([]).item()


def test_array_protocol(backend):
    t = tg.tensor([[1, 2], [3, 4]], dtype="int32")
    a = np.asarray(t)
    assert a.dtype == np.int32 and a.shape == (2, 2)
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    f = np.asarray(t, dtype=np.float64)
    assert f.dtype == np.float64
    np.testing.assert_array_equal(f, [[1.0, 2.0], [3.0, 4.0]])


def test_len_and_iteration(backend):
    array = np.arange(6.0).reshape(3, 2)
    t = tg.tensor(array)
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3
    for row, want in zip(rows, array):
        assert_same(row, want)
    assert [x.item() for x in tg.tensor([4, 5, 6])] == [4, 5, 6]
    with pytest.raises(TypeError, match="0-d"):
        len(tg.tensor(1.0))


def test_bool_float_int(backend):
    assert bool(tg.tensor([3])) is True
    assert bool(tg.tensor(0.0)) is False
    assert bool(tg.tensor([[True]])) is True
    with pytest.raises(ShapeError, match=r"\(2,\).*ambiguous"):
        bool(tg.tensor([1.0, 2.0]))
    with pytest.raises(ShapeError, match="ambiguous"):
        if tg.tensor([1, 2]) > 0:
            pass
    assert float(tg.tensor(2.5)) == 2.5 and isinstance(float(tg.tensor(2)), float)
    assert int(tg.tensor(3.9)) == 3 and isinstance(int(tg.tensor([3])), int)
    with pytest.raises(ShapeError):
        float(tg.tensor([1.0, 2.0]))


def test_repr_shows_values_and_dtype(backend):
    text = repr(tg.tensor([1.5, -2.25], dtype="float32"))
    assert "1.5" in text and "-2.25" in text and "dtype=float32" in text
    assert text.startswith("tensor(")
    assert "dtype=int64" in repr(tg.tensor([[1, 2], [3, 4]]))
    assert "dtype=bfloat16" in repr(tg.tensor(1.0, dtype="bfloat16"))


def test_hash_is_by_identity(backend):
    a, b = tg.tensor([1.0, 2.0]), tg.tensor([1.0, 2.0])
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b, a}) == 2
    assert hash(a) == hash(a) and hash(a) != hash(b)
    assert (a == b).dtype is tg.bool_  # == is elementwise, not identity


def test_tensors_are_immutable(backend):
    t = tg.tensor([1.0, 2.0, 3.0])
    with pytest.raises(TfgradError, match="immutable"):
        t[0] = 10.0
    with pytest.raises(TfgradError):
        t[1:] = tg.tensor([0.0, 0.0])
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0])
    copy = t.numpy()
    copy[0] = 99.0
    np.asarray(t)[1] = 99.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0])


def test_tensor_copies_its_input(backend):
    array = np.array([1.0, 2.0])
    t = tg.tensor(array)
    array[0] = 5.0
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


# ---- Operators ----
BINARY = {
    "+": (lambda a, b: a + b),
    "-": (lambda a, b: a - b),
    "*": (lambda a, b: a * b),
    "/": (lambda a, b: a / b),
    "**": (lambda a, b: a**b),
}
COMPARE = {
    "==": (lambda a, b: a == b),
    "!=": (lambda a, b: a != b),
    "<": (lambda a, b: a < b),
    "<=": (lambda a, b: a <= b),
    ">": (lambda a, b: a > b),
    ">=": (lambda a, b: a >= b),
}


def _values(seed: int, shape, low=0.5, high=2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape)


@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    seed=st.integers(0, 2**16),
)
@settings(deadline=None, max_examples=15)
def test_binary_operators_broadcast_as_numpy(backend, shapes, seed):
    a = _values(seed, shapes.input_shapes[0])
    b = _values(seed + 1, shapes.input_shapes[1])
    ta, tb = tg.tensor(a), tg.tensor(b)
    for name, fn in BINARY.items():
        got = fn(ta, tb)
        assert got.shape == shapes.result_shape, name
        assert_same(got, fn(a, b), exact=False)
    ints_a, ints_b = np.round(a), np.round(b)  # ties happen
    for fn in COMPARE.values():
        assert_same(fn(tg.tensor(ints_a), tg.tensor(ints_b)), fn(ints_a, ints_b))


def test_unary_operators(backend):
    a = np.array([[-1.5, 0.0], [2.0, -3.0]])
    assert_same(-tg.tensor(a), -a)
    assert_same(abs(tg.tensor(a)), np.abs(a))
    assert_same(+tg.tensor(a), a)
    ints = np.array([-3, 0, 4])
    assert_same(-tg.tensor(ints), -ints)
    assert_same(abs(tg.tensor(ints)), np.abs(ints))


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
     ((2, 1, 2, 3), (4, 3, 2)), ((4,), (2, 4, 3))],
)  # fmt: skip
def test_matmul_operator_matches_numpy(backend, shape_a, shape_b):
    a, b = _values(0, shape_a, -1, 1), _values(1, shape_b, -1, 1)
    assert_same(tg.tensor(a) @ tg.tensor(b), a @ b, exact=False)
    assert_same(a @ tg.tensor(b), a @ b, exact=False)  # reflected, NumPy on the left


@pytest.mark.parametrize("name", list(BINARY) + list(COMPARE))
def test_reflected_operators_with_scalars_and_arrays(backend, name):
    fn = {**BINARY, **COMPARE}[name]
    x = np.array([[0.5, 1.0, 2.0], [3.0, 1.5, 0.25]])
    t = tg.tensor(x)
    for left in (2.0, 3, np.array([1.0, 2.0, 0.5]), np.array(2.0)):
        got = fn(left, t)
        assert isinstance(got, tg.Tensor), (name, left)
        assert_same(got, fn(left, x), exact=False)
        assert_same(fn(t, left), fn(x, left), exact=False)


def test_integer_true_division_gives_float64(backend):
    a, b = np.array([1, 7, -3]), np.array([2, 2, 4])
    assert_same(tg.tensor(a) / tg.tensor(b), a / b)
    assert_same(tg.tensor(a) / 2, a / 2)
    assert_same(1 / tg.tensor(b), 1 / b)
    a32 = a.astype(np.int32)
    assert_same(tg.tensor(a32) / tg.tensor(a32), a32 / a32)


def test_integer_power_stays_integer(backend):
    a = np.array([1, 2, 3])
    assert_same(tg.tensor(a) ** 2, a**2)
    assert_same(2 ** tg.tensor(a), 2**a)


# ---- Indexing ----
@st.composite
def index_cases(draw):
    """A shape and a NumPy index into it: ints, slices (any step), None, Ellipsis, and at most
    one integer array or list."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5))
    ndim = len(shape)
    array_axis = draw(st.one_of(st.none(), st.integers(0, ndim - 1)))
    per_axis = []  # the index entries that consume each axis (a None may come first)
    for axis, n in enumerate(shape):
        entries = [None] if draw(st.integers(0, 4)) == 0 else []
        if axis == array_axis:
            idx = draw(st.lists(st.integers(-n, n - 1), min_size=0, max_size=4))
            entries.append(np.array(idx, dtype=np.int64) if draw(st.booleans()) else idx)
        elif draw(st.integers(0, 2)) == 0:
            entries.append(draw(st.integers(-n, n - 1)))
        else:
            bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
            step = draw(st.one_of(st.none(), st.integers(-3, 3).filter(bool)))
            entries.append(slice(draw(bound), draw(bound), step))
        per_axis.append(entries)
    if draw(st.booleans()):  # index leading and trailing axes around an Ellipsis
        a = draw(st.integers(0, ndim))
        b = draw(st.integers(a, ndim))
        groups = per_axis[:a] + [[Ellipsis]] + per_axis[b:]
    else:  # index the leading axes; the rest are taken whole
        groups = per_axis[: draw(st.integers(0, ndim))]
    return shape, tuple(entry for group in groups for entry in group)


@given(case=index_cases(), seed=st.integers(0, 100))
@settings(deadline=None, max_examples=40)
def test_indexing_matches_numpy(backend, case, seed):
    shape, key = case
    x = _values(seed, shape, -5, 5)
    assert_same(tg.tensor(x)[key], x[key])
    if len(key) == 1:
        assert_same(tg.tensor(x)[key[0]], x[key[0]])


@pytest.mark.parametrize(
    "key",
    [
        0, -1, 3, slice(None, None, -1), slice(3, 0, -2), slice(None, None, 2),
        slice(-2, None), slice(4, 2), (1, 2), (-1, -3), (slice(None), 1),
        (Ellipsis, 0), (None, 1), (slice(1, None), None, slice(None, None, -1)),
        (0, Ellipsis, None), [0, 2], [-1, 0, 0], (slice(None), [1, 0, 1]),
        (slice(None, None, -1), [3, 1]), (Ellipsis, [2]), (None, [1, 0]), ([], slice(None)),
        (0, slice(None), [1, 2]), (slice(None), 0, [1, 2]),
    ],
    ids=repr,
)  # fmt: skip
def test_index_examples_match_numpy(backend, key):
    x = np.arange(4 * 5 * 3, dtype=np.float64).reshape(4, 5, 3)
    assert_same(tg.tensor(x)[key], x[key])


def test_index_with_an_integer_tensor(backend):
    x = np.arange(12.0).reshape(3, 4)
    assert_same(tg.tensor(x)[tg.tensor([2, 0])], x[[2, 0]])
    assert_same(tg.tensor(x)[:, tg.tensor(np.array([[1, 3], [0, 0]]))], x[:, [[1, 3], [0, 0]]])
    assert_same(tg.tensor(x)[tg.tensor(1)], x[1])


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    index_shape=hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
    data=st.data(),
)
@settings(deadline=None, max_examples=20)
def test_take_matches_numpy(backend, shape, index_shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    indices = data.draw(hnp.arrays(np.int64, index_shape, elements=st.integers(-n, n - 1)))
    x = _values(0, shape, -3, 3)
    assert_same(tg.take(tg.tensor(x), indices, axis=axis), np.take(x, indices, axis=axis))
    assert_same(tg.take(tg.tensor(x), tg.tensor(indices), axis=axis), np.take(x, indices, axis))


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
    n_indices=st.integers(0, 6),
    data=st.data(),
)
@settings(deadline=None, max_examples=20)
def test_scatter_add_accumulates_repeated_indices(backend, shape, n_indices, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    indices = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=n_indices,
                                          max_size=n_indices)), dtype=np.int64)  # fmt: skip
    x = _values(1, shape, -3, 3)
    updates = _values(2, shape[:axis] + (n_indices,) + shape[axis + 1 :], -3, 3)
    want = np.moveaxis(x.copy(), axis, 0)
    np.add.at(want, indices, np.moveaxis(updates, axis, 0))
    want = np.moveaxis(want, 0, axis)
    got = tg.scatter_add(tg.tensor(x), indices, tg.tensor(updates), axis=axis)
    assert_same(got, want, exact=False)


def test_scatter_add_repeats_add_up(backend):
    got = tg.scatter_add(tg.zeros(4), [1, 1, 3, 1, -1], tg.tensor([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert_same(got, np.array([0.0, 7.0, 0.0, 8.0]))
    ints = tg.scatter_add(tg.zeros(3, dtype="int64"), [0, 0], tg.tensor([2, 3]))
    assert_same(ints, np.array([5, 0, 0]))


# ---- Random numbers ----
def test_same_seed_same_numbers_and_the_counter_advances(backend):
    a, b = tg.random.Generator(42), tg.random.Generator(42)
    first_a, first_b = a.uniform((100,)), b.uniform((100,))
    np.testing.assert_array_equal(first_a.numpy(), first_b.numpy())
    second_a = a.uniform((100,))
    assert not np.array_equal(first_a.numpy(), second_a.numpy())
    assert a.counter == 200
    np.testing.assert_array_equal(second_a.numpy(), b.uniform((100,)).numpy())
    n1, n2 = a.normal((3, 4)), b.normal((3, 4))
    np.testing.assert_array_equal(n1.numpy(), n2.numpy())
    assert not np.array_equal(n1.numpy(), a.normal((3, 4)).numpy())


def test_different_seeds_differ(backend):
    draws = [tg.random.Generator(seed).uniform((50,)).numpy() for seed in (0, 1, 2, 2**40)]
    for i in range(len(draws)):
        for j in range(i + 1, len(draws)):
            assert not np.any(draws[i] == draws[j])
    assert not np.array_equal(
        tg.random.Generator(0).normal((50,)).numpy(), tg.random.Generator(1).normal((50,)).numpy()
    )


def test_uniform_statistics(backend):
    u = tg.random.Generator(7).uniform((10_000,)).numpy()
    assert u.dtype == np.float64 and u.shape == (10_000,)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.02  # the standard error is 0.003
    assert abs(u.var() - 1 / 12) < 0.01
    v = tg.random.Generator(8).uniform((10_000,), low=-2.0, high=3.0).numpy()
    assert v.min() >= -2.0 and v.max() < 3.0 and abs(v.mean() - 0.5) < 0.1


def test_normal_statistics(backend):
    z = tg.random.Generator(11).normal((100, 100)).numpy()
    assert z.shape == (100, 100) and z.dtype == np.float64 and np.isfinite(z).all()
    assert abs(z.mean()) < 0.05  # the standard error is 0.01
    assert abs(z.std() - 1.0) < 0.05
    assert abs(np.mean(np.abs(z) < 1.0) - 0.6827) < 0.03
    w = tg.random.Generator(12).normal((10_000,), mean=3.0, std=0.5).numpy()
    assert abs(w.mean() - 3.0) < 0.05 and abs(w.std() - 0.5) < 0.03


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_random_dtype_is_honoured(backend, dtype):
    rng = tg.random.Generator(3)
    for t in (rng.uniform((1000,), dtype=dtype), rng.normal((1000,), dtype=dtype)):
        assert t.dtype.name == dtype and t.numpy().dtype == NP_DTYPE[dtype]
    u = tg.random.Generator(5).uniform((1000,), dtype=dtype).numpy().astype(np.float64)
    u64 = tg.random.Generator(5).uniform((1000,)).numpy()
    # the same stream, truncated to the dtype's significand: never rounded up to 1.0
    bits = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}[dtype]
    assert u.min() >= 0.0 and u.max() < 1.0
    assert np.all(u <= u64) and np.all(u64 - u < 2.0**-bits)


def test_random_scalar_shape(backend):
    assert tg.random.Generator(0).uniform().shape == ()
    assert tg.random.Generator(0).normal(3).shape == (3,)


def test_random_is_the_same_on_numpy_and_taichi():
    results = {}
    for name in ("numpy", "taichi"):
        with tg.use_backend(name):
            rng = tg.random.Generator(2024)
            results[name] = (
                rng.uniform((257,)).numpy(),
                rng.normal((3, 65)).numpy(),
                rng.uniform((33,), dtype="float32").numpy(),
                rng.counter,
            )
    (u_np, n_np, f_np, c_np), (u_ti, n_ti, f_ti, c_ti) = results["numpy"], results["taichi"]
    np.testing.assert_array_equal(u_ti, u_np)
    np.testing.assert_allclose(n_ti, n_np, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(f_ti, f_np)
    assert c_ti == c_np == 257 + 2 * 195 + 33
