"""Every Taichi kernel agrees with the NumPy reference backend.

One table (``TABLE``) lists, for every backend op, the dtypes it takes and the inputs and
parameters to try: shapes (), (0,), (1,), (7,), (3, 5), (2, 3, 4), broadcasting pairs, axes.
Each case runs on both backends and compares: exactly for integers, bools, moves, gathers,
casts and creation; within a few ulps (scaled by the magnitudes summed) for floating math.
Hypothesis draws further shapes and axes for the ops where layout is the hard part.

``TFGRAD_TEST_ARCH`` (default ``cpu``) picks the Taichi arch, e.g. ``cuda`` on a GPU machine.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfgrad.backends.numpy_backend import NumpyBackend
from tfgrad.backends.taichi.backend import DeviceArray, TaichiBackend
from tfgrad.errors import BackendError, DtypeError, MissingKernelError, ShapeError, TfgradError
from tfgrad.ops import BACKEND_OPS

ARCH = os.environ.get("TFGRAD_TEST_ARCH", "cpu")
REFERENCE = NumpyBackend()

DTYPES = {
    "bool": np.dtype(np.bool_),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}
FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int32", "int64")
ALL = ("bool",) + INTS + FLOATS
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4)]

# Relative tolerance of one result (a few ulps; halves: one ulp of the half dtype, since both
# backends compute in float32 and round once) and the accumulator's unit roundoff.
RTOL = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2e-6, "float64": 1e-14}
ATOL = {"float16": 2.0**-24, "bfloat16": 1e-38, "float32": 1e-38, "float64": 1e-300}
ACCUMULATOR_EPS = {
    "float16": 2.0**-24,
    "bfloat16": 2.0**-24,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
}

_rng = np.random.default_rng(20261124)


def draw(dtype: str, shape, low: float = -2.0, high: float = 2.0, rng=None) -> np.ndarray:
    """Values of ``dtype`` and ``shape``: bools at random, integers in [low, high], floats
    uniform in [low, high) (rounded to the dtype)."""
    rng = _rng if rng is None else rng
    shape = tuple(shape)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in INTS:
        return rng.integers(int(low), int(high) + 1, shape).astype(DTYPES[dtype])
    return np.asarray(rng.uniform(low, high, shape)).astype(DTYPES[dtype])


def draw_whole(dtype: str, shape, low: int = -2, high: int = 2, rng=None) -> np.ndarray:
    """Whole numbers in any dtype (so comparisons and maximum see ties)."""
    if dtype == "bool":
        return draw("bool", shape, rng=rng)
    return draw("int64", shape, low, high, rng=rng).astype(DTYPES[dtype])


def seeded(data) -> np.random.Generator:
    """A generator whose seed hypothesis draws, so a failing example replays exactly."""
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))


# ---- The table: op -> cases (args, params) per dtype, and how to compare ----
@dataclass
class Spec:
    dtypes: tuple[str, ...]
    cases: Callable[[str], list[tuple[tuple[np.ndarray, ...], dict[str, Any]]]]
    compare: str = "exact"  # exact | close | sum | prod | matmul | conv | normal


def _unary(low, high, others=()):
    def cases(dtype):
        out = [((draw(dtype, s, low, high),), {}) for s in SHAPES]
        if dtype in INTS:
            info = np.iinfo(DTYPES[dtype])
            out.append(((np.array([info.min, info.max, 0, -1, 1], DTYPES[dtype]),), {}))
        return out

    return Spec(FLOATS + others, cases, "close")


BROADCAST_PAIRS = [
    ((3, 5), (3, 5)),
    ((3, 1), (1, 4)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 1, 4), (3, 1)),
    ((0,), (1,)),
    ((0, 3), (1, 3)),
    ((7,), (7,)),
]


def _binary(dtypes, make, compare="close"):
    def cases(dtype):
        return [((*make(dtype, a, b),), {}) for a, b in BROADCAST_PAIRS]

    return Spec(dtypes, cases, compare)


def _plain(dtype, a, b):
    return draw(dtype, a, -3, 3), draw(dtype, b, -3, 3)


def _ties(dtype, a, b):
    return draw_whole(dtype, a), draw_whole(dtype, b)


def _divisor(dtype, a, b):
    y = draw(dtype, b, 1, 3)
    sign = draw("bool", b)
    return draw(dtype, a, -3, 3), np.where(sign, -y, y).astype(DTYPES[dtype])


def _power(dtype, a, b):
    if dtype == "bool":
        return draw(dtype, a), draw(dtype, b)
    if dtype in INTS:
        return draw(dtype, a, -4, 4), draw(dtype, b, 0, 5)
    return draw(dtype, a, 0.1, 3), draw(dtype, b, -2, 2)


WHERE_SHAPES = [
    ((3, 5), (3, 5), (3, 5)),
    ((3, 1), (1, 5), ()),
    ((), (2, 3), (2, 1)),
    ((0,), (0,), ()),
    ((2, 3, 4), (4,), (3, 1)),
    ((1,), (7,), (7,)),
]


def _where_cases(dtype):
    return [((draw("bool", c), draw(dtype, x), draw(dtype, y)), {}) for c, x, y in WHERE_SHAPES]


def _cast_source(dtype: str) -> list[np.ndarray]:
    """Values of ``dtype`` that convert to every dtype without undefined behaviour."""
    if dtype == "bool" or dtype in INTS:
        return [draw(dtype, s, -100, 100) for s in [(), (0,), (3, 5)]]
    values = [draw(dtype, s, -100, 100) for s in [(), (0,), (3, 5)]]
    values.append(np.array([0.0, -0.0, 0.5, -1.5, 2.5, 99.75, -99.9], DTYPES[dtype]))
    return values


def _cast_cases(dtype):
    out = [((x,), {"dtype": DTYPES[target]}) for x in _cast_source(dtype) for target in ALL]
    if dtype in FLOATS:  # NaN and infinities convert to floats and bools (to ints: undefined)
        specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 7.0], DTYPES[dtype])
        out += [((specials,), {"dtype": DTYPES[t]}) for t in ("bool",) + FLOATS]
    return out


def _axes_subsets(ndim):
    return [c for r in range(ndim + 1) for c in itertools.combinations(range(ndim), r)]


def _reduction_cases(dtype):
    low, high = (-3, 3) if dtype in INTS else (-2, 2)
    out = []
    for shape in SHAPES + [(3, 0), (1, 4, 1)]:
        x = draw(dtype, shape, low, high)
        for axes in _axes_subsets(len(shape)):
            for keepdims in (False, True):
                out.append(((x,), {"axes": axes, "keepdims": keepdims}))
    return out


def _cumsum_cases(dtype):
    out = []
    for shape in SHAPES:
        x = draw(dtype, shape, -3, 3)
        for axis in range(max(len(shape), 1)):
            # NOTE: a 0-d input is one element along axis 0 (NumPy's cumsum); the reference's
            # np.flip refuses 0-d arrays, so reverse is compared from 1-d up (reported).
            for reverse in (False, True) if shape else (False,):
                out.append(((x,), {"axis": axis, "reverse": reverse}))
    return out


def _cumprod_cases(dtype):
    out = []
    for shape in SHAPES:
        x = draw(dtype, shape, -2, 2)
        for axis in range(max(len(shape), 1)):
            for reverse, exclusive in itertools.product((False, True), repeat=2):
                if shape or not reverse:  # 0-d: see _cumsum_cases
                    out.append(((x,), {"axis": axis, "reverse": reverse, "exclusive": exclusive}))
    return out


def _recurrence_cases(dtype):
    out = []
    for shape in SHAPES[1:] + [(130, 3), (2, 70)]:  # longer than a NumPy block of steps
        a, b = draw(dtype, shape, -1.2, 1.2), draw(dtype, shape, -2, 2)
        for axis in range(len(shape)):
            for reverse in (False, True):
                out.append(((a, b), {"axis": axis, "reverse": reverse}))
    # a of b's trailing axes: the same coefficients for every index of the leading ones
    for a_shape, b_shape, axis in [((5,), (3, 5), 1), ((3, 4), (2, 3, 4), 1), ((70,), (4, 70), 1)]:
        a, b = draw(dtype, a_shape, -1.2, 1.2), draw(dtype, b_shape, -2, 2)
        for reverse in (False, True):
            out.append(((a, b), {"axis": axis, "reverse": reverse}))
    return out


def _reshape_cases(dtype):
    pairs = [
        ((), (1,)),
        ((0,), (0, 3)),
        ((7,), (7, 1)),
        ((3, 5), (5, 3)),
        ((2, 3, 4), (4, -1)),
        ((2, 3, 4), (24,)),
        ((1,), ()),
    ]
    return [((draw(dtype, a),), {"shape": b}) for a, b in pairs]


def _transpose_cases(dtype):
    out = [((draw(dtype, (2, 3, 4)),), {"axes": p}) for p in itertools.permutations(range(3))]
    out += [
        ((draw(dtype, (3, 5)),), {"axes": (1, 0)}),
        ((draw(dtype, ()),), {"axes": ()}),
        ((draw(dtype, (0, 3)),), {"axes": (1, 0)}),
        ((draw(dtype, (7,)),), {"axes": (0,)}),
        ((draw(dtype, (2, 1, 3)),), {"axes": (1, 2, 0)}),
    ]
    return out


def _broadcast_cases(dtype):
    pairs = [
        ((), (2, 3)),
        ((1,), (4,)),
        ((3, 1), (2, 3, 4)),
        ((7,), (7,)),
        ((0,), (2, 0)),
        ((1, 4), (0, 4)),
        ((3, 1), (3, 0)),
        ((), ()),
        ((2, 1, 4), (2, 3, 4)),
    ]
    return [((draw(dtype, a),), {"shape": b}) for a, b in pairs]


def _slice_cases(dtype):
    specs = [
        ((7,), ((1, 6, 2),)),
        ((7,), ((6, -1, -2),)),
        ((7,), ((0, 7, 1),)),
        ((7,), ((3, 3, 1),)),
        ((7,), ((6, 0, -3),)),
        ((3, 5), ((2, -1, -1), (4, 0, -2))),
        ((3, 5), ((0, 3, 2), (1, 5, 3))),
        ((2, 3, 4), ((1, 2, 1), (0, 3, 1), (3, -1, -2))),
        ((0,), ((0, 0, 1),)),
        ((), ()),
        ((1,), ((0, 1, 1),)),
    ]
    return [((draw(dtype, shape),), {"index": index}) for shape, index in specs]


def _concatenate_cases(dtype):
    groups = [
        ([(3, 5), (3, 2)], 1),
        ([(2, 3, 4)] * 3, 0),
        ([(0,), (7,), (1,)], 0),
        ([(2, 0), (2, 3)], 1),
        ([(7,)], 0),
        ([(3, 5), (0, 5)], -2),
        ([(2, 3, 4), (2, 1, 4)], 1),
        ([(0, 3), (0, 3)], 0),
    ]
    return [(tuple(draw(dtype, s) for s in shapes), {"axis": axis}) for shapes, axis in groups]


def _take_cases(dtype):
    specs = [
        ((7,), [0, 6, -1, 3, 3], 0),
        ((3, 5), [[0, 2], [1, 1]], 0),
        ((3, 5), [4, 0, -5], 1),
        ((2, 3, 4), [2, 2, 0], 2),
        ((2, 3, 4), np.zeros(0, np.int64), 1),
        ((0, 3), [0, 1], 1),
        ((7,), np.array(3), 0),
        ((1,), [0, 0], 0),
    ]
    return [
        ((draw(dtype, shape), np.asarray(idx, np.int64)), {"axis": axis})
        for shape, idx, axis in specs
    ]


def _scatter_add_cases(dtype):
    specs = [
        ((7,), [0, 6, 6, 3, 0, 0], 0),
        ((3, 5), [4, 0, 4], 1),
        ((2, 3, 4), [[1, 1], [0, 2]], 1),
        ((3, 5), np.zeros(0, np.int64), 0),
        ((3, 0), [1, 2], 0),
        ((1,), np.array(0), 0),
        ((4, 3), [-1, 3, 0], 0),
    ]
    out = []
    for shape, idx, axis in specs:
        idx = np.asarray(idx, np.int64)
        updates = shape[:axis] + idx.shape + shape[axis + 1 :]
        out.append(((draw(dtype, shape), idx, draw(dtype, updates)), {"axis": axis}))
    return out


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((1, 1), (1, 1)),
    ((2, 3, 4), (2, 4, 5)),
    ((4,), (4,)),
    ((4,), (4, 3)),
    ((3, 4), (4,)),
    ((0, 3), (3, 2)),
    ((3, 0), (0, 2)),
    ((2, 0, 3), (2, 3, 4)),
    ((5, 7), (7, 6)),
    ((9, 13), (13, 11)),
]


def _matmul_cases(dtype):
    return [((draw(dtype, a, -3, 3), draw(dtype, b, -3, 3)), {}) for a, b in MATMUL_SHAPES]


# (x, w, stride, padding, dilation): one image and several, strides, padding past the kernel,
# dilation, a 1x1 kernel, and empty batches and channels
CONV_SHAPES = [
    ((1, 1, 5, 5), (1, 1, 3, 3), 1, 0, 1),
    ((2, 3, 6, 7), (4, 3, 3, 2), (2, 1), (1, 2), 1),
    ((2, 2, 7, 6), (3, 2, 2, 3), (1, 3), 0, (2, 1)),
    ((1, 2, 4, 4), (2, 2, 1, 1), 2, 3, 1),
    ((0, 2, 4, 4), (3, 2, 3, 3), 1, 1, 1),
    ((2, 0, 4, 4), (3, 0, 3, 3), 1, 0, 1),
]


def _conv_cases(op):
    def cases(dtype):
        out = []
        for x_shape, w_shape, *pairs in CONV_SHAPES:
            stride, padding, dilation = ((v, v) if isinstance(v, int) else v for v in pairs)
            params = {"stride": stride, "padding": padding, "dilation": dilation}
            x, w = draw(dtype, x_shape, -3, 3), draw(dtype, w_shape, -3, 3)
            y_shape = REFERENCE.run("conv2d", x, w, **params).shape
            g = draw(dtype, y_shape, -3, 3)
            if op == "conv2d":
                out.append(((x, w), params))
            elif op == "conv2d_input_grad":
                out.append(((g, w), {"input_size": x_shape[2:], **params}))
            else:
                out.append(((x, g), {"kernel_size": w_shape[2:], **params}))
        return out

    return Spec(FLOATS, cases, "conv")


def _full_cases(dtype):
    values = {"bool": [True, 0], "int32": [7, -3, 2.9], "int64": [-(2**40), 5]}.get(
        dtype, [0.1, -0.0, 1e30, -2.5, 1 + 2**-11 + 2**-40]
    )
    return [
        ((), {"shape": s, "value": v, "dtype": DTYPES[dtype]})
        for s in [(), (0,), (3, 5)]
        for v in values
    ]


def _arange_cases(dtype):
    triples = [(0, 1, 5), (0.5, 0.1, 7), (-3, 2, 0), (10, -0.25, 9), (1, 1, 1), (0, 1 / 3, 12)]
    return [((), {"start": a, "step": b, "n": n, "dtype": DTYPES[dtype]}) for a, b, n in triples]


def _eye_cases(dtype):
    specs = [(3, 3, 0), (3, 5, 1), (4, 2, -1), (0, 0, 0), (3, 0, 0), (1, 1, 0), (3, 4, 7)]
    return [((), {"n": n, "m": m, "k": k, "dtype": DTYPES[dtype]}) for n, m, k in specs]


def _random_cases(dtype):
    streams = [(0, 0), (2**64 - 1, 2**63 + 5), (12345, 7)]
    return [
        ((), {"shape": s, "seed": seed, "counter": c, "dtype": DTYPES[dtype]})
        for s in [(), (0,), (7,), (3, 5), (1000,)]
        for seed, c in streams
    ]


TABLE: dict[str, Spec] = {
    "neg": _unary(-3, 3, INTS),
    "exp": _unary(-3, 3),
    "log": _unary(0.05, 4),
    "log1p": _unary(-0.9, 3),
    "expm1": _unary(-3, 3),
    "sin": _unary(-3, 3),
    "cos": _unary(-3, 3),
    "tan": _unary(-1.2, 1.2),
    "tanh": _unary(-3, 3),
    "sqrt": _unary(0, 4),
    "abs": _unary(-3, 3, INTS + ("bool",)),
    "sign": _unary(-3, 3, INTS),
    "add": _binary(ALL, _plain),
    "sub": _binary(INTS + FLOATS, _plain),
    "mul": _binary(ALL, _plain),
    "div": _binary(INTS + FLOATS, _divisor),
    "pow": _binary(ALL, _power),
    "maximum": _binary(ALL, _ties),
    "minimum": _binary(ALL, _ties),
    **{op: _binary(ALL, _ties, "exact") for op in ("eq", "ne", "lt", "le", "gt", "ge")},
    "where": Spec(ALL, _where_cases),
    "cast": Spec(ALL, _cast_cases),
    "sum": Spec(ALL, _reduction_cases, "sum"),
    "max": Spec(ALL, _reduction_cases),
    "prod": Spec(ALL, _reduction_cases, "prod"),
    "cumsum": Spec(ALL, _cumsum_cases),
    "cumprod": Spec(ALL, _cumprod_cases),
    "linear_recurrence": Spec(FLOATS, _recurrence_cases),
    "reshape": Spec(ALL, _reshape_cases),
    "transpose": Spec(ALL, _transpose_cases),
    "broadcast_to": Spec(ALL, _broadcast_cases),
    "slice": Spec(ALL, _slice_cases),
    "concatenate": Spec(ALL, _concatenate_cases),
    "take": Spec(ALL, _take_cases),
    "scatter_add": Spec(ALL, _scatter_add_cases),
    "matmul": Spec(ALL, _matmul_cases, "matmul"),
    **{op: _conv_cases(op) for op in ("conv2d", "conv2d_input_grad", "conv2d_weight_grad")},
    "full": Spec(ALL, _full_cases),
    "arange": Spec(ALL, _arange_cases),
    "eye": Spec(ALL, _eye_cases),
    "random_uniform": Spec(FLOATS, _random_cases),
    "random_normal": Spec(FLOATS, _random_cases, "normal"),
}


def _describe(args, params) -> str:
    shapes = "x".join(str(tuple(a.shape)).replace(" ", "") for a in args)
    extra = ",".join(f"{k}={v}" for k, v in params.items() if k != "dtype")
    return f"{shapes}{'-' if shapes and extra else ''}{extra}".replace(" ", "")


CASES = [
    pytest.param(op, dtype, args, params, id=f"{op}-{dtype}-{_describe(args, params)}")
    for op, spec in TABLE.items()
    for dtype in spec.dtypes
    for args, params in spec.cases(dtype)
]


# ---- Comparison ----
def _as_float(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def assert_agrees(op: str, got: np.ndarray, want: np.ndarray, args, params, compare: str):
    assert got.shape == want.shape, f"{op}: shape {got.shape}, NumPy {want.shape}"
    assert got.dtype == want.dtype, f"{op}: dtype {got.dtype}, NumPy {want.dtype}"
    name = want.dtype.name
    if compare == "exact" or name not in FLOATS:
        if name in FLOATS:
            np.testing.assert_array_equal(_as_float(got), _as_float(want), err_msg=op)
        else:
            np.testing.assert_array_equal(got, want, err_msg=op)
        return
    g, w = _as_float(got), _as_float(want)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{op}: NaN positions")
    inf = np.isinf(w)
    np.testing.assert_array_equal(g[inf], w[inf], err_msg=f"{op}: infinities")
    finite = ~np.isnan(w) & ~inf
    rtol, atol = RTOL[name], ATOL[name]
    if compare == "normal" and name == "float64":
        rtol = 1e-12
    bound = rtol * np.abs(w) + atol
    eps = ACCUMULATOR_EPS[name]
    if compare == "sum":  # summation error: terms x rounding per term, scaled by sum |x|
        x = _as_float(args[0])
        axes = params["axes"]
        n = math.prod(x.shape[a] for a in axes)
        bound = bound + n * eps * np.sum(np.abs(x), axis=axes, keepdims=params["keepdims"])
    elif compare == "prod":
        n = math.prod(args[0].shape[a] for a in params["axes"])
        bound = bound + n * eps * np.abs(w)
    elif compare == "matmul":
        a, b = (np.abs(_as_float(v)) for v in args[:2])
        k = a.shape[-1]
        bound = bound + k * eps * np.matmul(a, b)
    elif compare == "conv":  # as matmul: terms x rounding per term, scaled by the |a| |b| op
        a, b = (np.abs(_as_float(v)) for v in args[:2])
        terms = max(a.size, b.size)  # at least the terms of one output element
        bound = bound + terms * eps * REFERENCE.run(op, a, b, **params)
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: checked above
        err = np.abs(g - w)
    bad = finite & ~(err <= bound)
    assert not bad.any(), (
        f"{op} ({name}): {bad.sum()} of {w.size} elements off; worst got {g[bad][:5]}, "
        f"NumPy {w[bad][:5]}"
    )


def run_both(backend, op: str, args, params):
    """Run ``op`` on NumPy and Taichi; check the inputs are untouched. Returns both results
    (or the NumPy exception, which Taichi must match with a TfgradError)."""
    bufs = [backend.from_numpy(a) for a in args]
    try:
        want = REFERENCE.run(op, *[np.array(a) for a in args], **params)
    except (ValueError, IndexError, TypeError) as err:
        with pytest.raises(TfgradError):
            backend.run(op, *bufs, **params)
        return err, None
    got = backend.to_numpy(backend.run(op, *bufs, **params))
    for a, buf in zip(args, bufs):  # run() never writes to its inputs
        after = backend.to_numpy(buf).reshape(-1).view(np.uint8)
        np.testing.assert_array_equal(after, a.reshape(-1).view(np.uint8), err_msg=op)
    return want, got


@pytest.fixture(scope="module")
def taichi():
    return TaichiBackend(ARCH)


@pytest.mark.parametrize("op, dtype, args, params", CASES)
def test_agrees_with_numpy(taichi, op, dtype, args, params):
    want, got = run_both(taichi, op, args, params)
    if got is not None:
        assert_agrees(op, got, want, args, params, TABLE[op].compare)


def test_table_covers_every_backend_op():
    assert set(TABLE) == set(BACKEND_OPS)
    covered = {(p.values[0], p.values[1]) for p in CASES}
    for op, spec in TABLE.items():
        assert all((op, d) in covered for d in spec.dtypes), op


# ---- The GPU-resident path (DeviceArray buffers), run on the CPU too ----
NDARRAY_CASES = [p for p in CASES if p.values[1] in ("bool", "bfloat16", "float32", "int64")][::3]


@pytest.fixture(scope="module")
def taichi_ndarray():
    return TaichiBackend(ARCH, buffers="ndarray")


@pytest.mark.parametrize("op, dtype, args, params", NDARRAY_CASES)
def test_device_buffers_agree_with_numpy(taichi_ndarray, op, dtype, args, params):
    want, got = run_both(taichi_ndarray, op, args, params)
    if got is not None:
        assert_agrees(op, got, want, args, params, TABLE[op].compare)


# ---- IEEE corners: NaN, infinities, signed zeros, huge and tiny values ----
SPECIALS = [
    np.nan,
    np.inf,
    -np.inf,
    0.0,
    -0.0,
    1e-30,
    -1e-30,
    1e-10,
    -1e-10,
    0.4,
    -0.6,
    30.0,
    -30.0,
    800.0,
    -800.0,
    1e4,
    -1e4,
    1e-310,
    -1e-320,
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "op",
    ["neg", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt", "abs", "sign"],
)
def test_unary_special_values(taichi, op, dtype):
    x = np.array(SPECIALS + [-1.0, -2.0, 1.0, 2.0], DTYPES[dtype])
    want, got = run_both(taichi, op, (x,), {})
    assert_agrees(op, got, want, (x,), {}, "close")


@pytest.mark.parametrize("dtype", FLOATS)
def test_tanh_saturates_and_sign_keeps_nan(taichi, dtype):
    x = taichi.from_numpy(np.array([1e4, -1e4, 50.0, -50.0, np.inf, -np.inf], DTYPES[dtype]))
    np.testing.assert_array_equal(
        _as_float(taichi.to_numpy(taichi.run("tanh", x))), [1, -1, 1, -1, 1, -1]
    )
    zeros_nan = taichi.from_numpy(np.array([0, -0.0, np.nan, -3], DTYPES[dtype]))
    s = taichi.to_numpy(taichi.run("sign", zeros_nan))
    assert _as_float(s)[:2].tolist() == [0, 0] and np.isnan(_as_float(s)[2]) and s[3] == -1


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(
    "op",
    ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"],
)
def test_binary_special_values(taichi, op, dtype):
    values = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, -2.0, 2.0, 0.5, 1e-30]
    x, y = (np.array(v, DTYPES[dtype]) for v in zip(*itertools.product(values, values)))
    want, got = run_both(taichi, op, (x, y), {})
    assert_agrees(op, got, want, (x, y), {}, "close")


@pytest.mark.parametrize("dtype", FLOATS)
def test_pow_follows_numpy_for_negative_bases(taichi, dtype):
    x = np.array([-2.0, -2.0, -8.0, -3.0, -0.5, 0.0, 1.0, -1.0], DTYPES[dtype])
    y = np.array([2.0, 0.5, 1 / 3, 3.0, -2.0, -1.0, np.nan, np.inf], DTYPES[dtype])
    got = _as_float(taichi.to_numpy(taichi.run("pow", taichi.from_numpy(x), taichi.from_numpy(y))))
    assert got[0] == 4 and np.isnan(got[1]) and np.isnan(got[2]) and got[3] == -27
    assert got[4] == 4 and got[5] == np.inf and got[6] == 1 and got[7] == 1


@pytest.mark.parametrize("dtype", INTS)
def test_integer_pow_with_negative_exponent_raises(taichi, dtype):
    x, y = np.array([2, 3], DTYPES[dtype]), np.array([1, -1], DTYPES[dtype])
    with pytest.raises(ValueError):
        REFERENCE.run("pow", x, y)
    with pytest.raises(DtypeError, match="negative integer powers"):
        taichi.run("pow", taichi.from_numpy(x), taichi.from_numpy(y))


def test_float64_rounds_once_to_float16(taichi):
    # Ties of float16 that a float32 intermediate would break the wrong way.
    x = np.array([1 + 2**-11 + 2**-40, -(1 + 2**-11 + 2**-40), 1 + 2**-11, 2049 + 2**-30])
    want = x.astype(np.float16)
    got = taichi.to_numpy(taichi.run("cast", taichi.from_numpy(x), dtype=np.dtype(np.float16)))
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


def test_float64_rounds_once_to_bfloat16(taichi):
    # 127.74999999999999 is nearer 127.5; through float32 (127.75, a tie) it would give 128.
    x = np.array([127.74999999999999, -(1 + 2**-8 + 2**-40), 1 + 2**-8, 1 + 3 * 2**-8 - 2**-30])
    want = x.astype(ml_dtypes.bfloat16)
    assert want[0] == 127.5
    for got in (
        taichi.run("cast", taichi.from_numpy(x), dtype=DTYPES["bfloat16"]),
        taichi.run("arange", start=127.74999999999999, step=0.0, n=1, dtype=DTYPES["bfloat16"]),
    ):
        got = taichi.to_numpy(got).view(np.uint16)
        np.testing.assert_array_equal(got, want.view(np.uint16)[: got.size])


def test_bfloat16_rounds_to_nearest_even_and_keeps_nan(taichi):
    x = np.array(
        [1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, np.nan, -np.nan, 3.4e38, -np.inf, 1e-40],
        np.float32,
    )
    want = x.astype(ml_dtypes.bfloat16)
    got = taichi.to_numpy(taichi.run("cast", taichi.from_numpy(x), dtype=DTYPES["bfloat16"]))
    np.testing.assert_array_equal(_as_float(got), _as_float(want))


# ---- Hypothesis: shapes and axes where layout is the hard part ----
def _axes_strategy(ndim):
    return st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim).map(tuple)


@settings(max_examples=25, deadline=None)
@given(
    data=st.data(),
    op=st.sampled_from(["sum", "max", "prod"]),
    dtype=st.sampled_from(["float64", "float16", "int64", "bool"]),
)
def test_reductions_any_axes(taichi, data, op, dtype):
    rng = seeded(data)
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    axes = data.draw(_axes_strategy(len(shape)))
    x = draw(dtype, shape, -2, 2, rng=rng)
    params = {"axes": axes, "keepdims": data.draw(st.booleans())}
    want, got = run_both(taichi, op, (x,), params)
    if got is not None:
        assert_agrees(op, got, want, (x,), params, TABLE[op].compare)


def _normalised_slice(n):
    """(start, stop, step) as slice.indices gives them, the form the slice op takes."""
    bound = st.one_of(st.none(), st.integers(-n - 1, n + 1))
    step = st.sampled_from([1, 2, -1, -3])
    return st.tuples(bound, bound, step).map(lambda t: slice(*t).indices(n))


@settings(max_examples=25, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float32", "bfloat16", "int32", "bool"]))
def test_movement_any_layout(taichi, data, dtype):
    rng = seeded(data)
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    x = draw(dtype, shape, rng=rng)
    ndim = len(shape)
    perm = tuple(data.draw(st.permutations(range(ndim))))
    index = tuple(data.draw(_normalised_slice(n)) for n in shape)
    axis = data.draw(st.integers(0, max(ndim - 1, 0)))
    reverse = ndim > 0 and data.draw(st.booleans())  # 0-d: see _cumsum_cases
    exclusive = data.draw(st.booleans())
    for op, params in [
        ("transpose", {"axes": perm}),
        ("slice", {"index": index}),
        ("cumsum", {"axis": axis, "reverse": reverse}),
        ("cumprod", {"axis": axis, "reverse": reverse, "exclusive": exclusive}),
    ]:
        want, got = run_both(taichi, op, (x,), params)
        assert got is not None, op
        assert_agrees(op, got, want, (x,), params, "exact")


@settings(max_examples=20, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float64", "float32", "bfloat16"]))
def test_linear_recurrence_any_layout(taichi, data, dtype):
    rng = seeded(data)
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    params = {
        "axis": data.draw(st.integers(0, len(shape) - 1)),
        "reverse": data.draw(st.booleans()),
    }
    args = (draw(dtype, shape, -1.2, 1.2, rng=rng), draw(dtype, shape, rng=rng))
    want, got = run_both(taichi, "linear_recurrence", args, params)
    assert got is not None
    assert_agrees("linear_recurrence", got, want, args, params, "exact")


@settings(max_examples=20, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float64", "float16", "int32", "bool"]))
def test_broadcasting_binary_and_where(taichi, data, dtype):
    rng = seeded(data)
    shapes = data.draw(
        hnp.mutually_broadcastable_shapes(
            num_shapes=3, min_dims=0, max_dims=4, min_side=0, max_side=3
        )
    )
    c, xs, ys = shapes.input_shapes
    x, y = draw_whole(dtype, xs, rng=rng), draw_whole(dtype, ys, rng=rng)
    for op, args in [
        ("add", (x, y)),
        ("maximum", (x, y)),
        ("lt", (x, y)),
        ("where", (draw("bool", c, rng=rng), x, y)),
        ("broadcast_to", (x,)),
    ]:
        params = {"shape": shapes.result_shape} if op == "broadcast_to" else {}
        want, got = run_both(taichi, op, args, params)
        assert got is not None, op
        assert_agrees(op, got, want, args, params, "exact")


@pytest.mark.parametrize(
    "x_shape, y_shape, layout",
    [
        ((4, 6), (4, 6), ("whole", "whole")),
        ((4, 6), (), ("whole", "scalar")),
        ((1, 1), (4, 6), ("scalar", "whole")),
        ((6,), (1, 6), ("whole", "whole")),  # only leading 1s differ: the same flat order
        ((4, 6), (6,), ("whole", "block")),  # a bias row
        ((4, 1), (4, 6), ("block", "whole")),  # a keepdims column
        ((2, 3, 5), (3, 1), ("whole", "block")),  # a middle axis
        ((3, 1), (1, 5), ("block", "block")),  # an outer product
        ((2, 3, 5), (2, 1, 5), ("whole", "materialised")),  # two runs of axes
    ],
)
def test_binary_kernels_read_broadcasts_in_place(taichi, x_shape, y_shape, layout):
    # Each input is read whole, as one element, or as a block of axes at (i // s) % m; any
    # other broadcast is materialised first. Every op with the layouts: NumPy's values.
    from tfgrad.backends.taichi import elementwise as ew

    rng = np.random.default_rng(3)
    x, y = draw("float32", x_shape, rng=rng), draw("float32", y_shape, 0.5, 2.0, rng=rng)
    shape = np.broadcast_shapes(x_shape, y_shape)
    bufs = [taichi.from_numpy(a) for a in (x, y)]
    *_, modes = ew._operands(taichi, bufs, shape)
    names = {ew.WHOLE: "whole", ew.SCALAR: "scalar", ew.BLOCK: "block"}
    expected = tuple("whole" if m == "materialised" else m for m in layout)
    assert tuple(names[m] for m in modes) == expected
    condition = draw("bool", shape[-1:], rng=rng)
    for op, args in [("add", (x, y)), ("sub", (y, x)), ("pow", (y, x)), ("lt", (x, y)),
                     ("where", (condition, x, y))]:  # fmt: skip
        want, got = run_both(taichi, op, args, {})
        assert_agrees(op, got, want, args, {}, "close" if op == "pow" else "exact")  # libm pow


@settings(max_examples=20, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(["float64", "float16", "int64", "bool"]))
def test_gather_scatter_concatenate_any_axis(taichi, data, dtype):
    rng = seeded(data)
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    idx_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    idx = np.asarray(data.draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(-n, n - 1))))
    x = draw(dtype, shape, rng=rng)
    a = axis % len(shape)
    updates = draw(dtype, shape[:a] + idx.shape + shape[a + 1 :], rng=rng)
    other = draw(dtype, shape[:a] + (data.draw(st.integers(0, 3)),) + shape[a + 1 :], rng=rng)
    # scatter_add takes a normalised axis (the reference moves axes by number)
    for op, args, ax in [
        ("take", (x, idx), axis),
        ("scatter_add", (x, idx, updates), a),
        ("concatenate", (x, other, x), axis),
    ]:
        want, got = run_both(taichi, op, args, {"axis": ax})
        assert got is not None, op
        assert_agrees(op, got, want, args, {"axis": ax}, "exact")


def test_empty_backward_slice(taichi):
    x = np.arange(3.0)
    for key in [slice(-5, None, -1), slice(-4, -6, -2)]:
        index = (key.indices(3),)
        got = taichi.to_numpy(taichi.run("slice", taichi.from_numpy(x), index=index))
        assert got.shape == x[key].shape == (0,), index


# ---- Errors ----
def test_max_of_nothing_is_a_shape_error(taichi):
    for shape, axes in [((0,), (0,)), ((0, 3), (0,)), ((2, 0), (0, 1)), ((0, 0), (0,))]:
        x = taichi.from_numpy(np.zeros(shape))
        with pytest.raises(ShapeError, match=r"max.*\(" + str(shape[0])):
            taichi.run("max", x, axes=axes, keepdims=False)
    # ... while empty outputs, empty sums and products are fine
    assert taichi.to_numpy(
        taichi.run("max", taichi.from_numpy(np.zeros((3, 0))), axes=(0,), keepdims=False)
    ).shape == (0,)
    assert taichi.to_numpy(
        taichi.run("prod", taichi.from_numpy(np.zeros((0, 2))), axes=(0,), keepdims=False)
    ).tolist() == [1, 1]


def test_index_out_of_range_is_a_shape_error(taichi):
    x = taichi.from_numpy(np.arange(5.0))
    for bad in ([5], [-6], [0, 9]):
        idx = taichi.from_numpy(np.array(bad, np.int64))
        with pytest.raises(ShapeError, match="out of range"):
            taichi.run("take", x, idx, axis=0)
        with pytest.raises(ShapeError, match="out of range"):
            taichi.run("scatter_add", x, idx, taichi.from_numpy(np.ones(len(bad))), axis=0)


def test_unknown_op_is_a_missing_kernel(taichi):
    with pytest.raises(MissingKernelError, match="no kernel for op 'fft'"):
        taichi.run("fft", taichi.from_numpy(np.ones(3)))
    assert {taichi.implementation(op) for op in BACKEND_OPS} == {"taichi"}


@pytest.mark.parametrize("op", ["exp", "tanh", "log"])
def test_float_math_refuses_integers(taichi, op):
    with pytest.raises(DtypeError, match=op):
        taichi.run(op, taichi.from_numpy(np.arange(3)))


# ---- Determinism ----
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_reductions_are_bitwise_stable(taichi, dtype):
    """The same bits on every run and whatever runs serially or in parallel (fixed blocks,
    serial combine, no atomics)."""
    x = draw(dtype, (300_007,), -1, 1)
    near_one = draw(dtype, (300_007,), 0.999, 1.001)  # a product that stays finite
    m = draw(dtype, (601, 503), -1, 1)
    tall = draw(dtype, (20_001, 3), -1, 1)  # few outputs, long columns: blocks, then partials
    parallel = TaichiBackend(ARCH, serial_below=0)
    serial = TaichiBackend(ARCH, serial_below=10**12)
    for op, value, params in [
        ("sum", x, {"axes": (0,), "keepdims": False}),
        ("prod", near_one, {"axes": (0,), "keepdims": False}),
        ("max", x, {"axes": (0,), "keepdims": False}),
        ("sum", m, {"axes": (0,), "keepdims": True}),
        ("sum", m, {"axes": (1,), "keepdims": False}),
        ("sum", tall, {"axes": (0,), "keepdims": False}),
        ("max", tall, {"axes": (0,), "keepdims": True}),
        ("prod", tall, {"axes": (0, 1), "keepdims": False}),
        ("cumsum", m, {"axis": 0, "reverse": True}),
        ("cumprod", near_one, {"axis": 0, "reverse": True, "exclusive": True}),
    ]:
        results = [
            b.to_numpy(b.run(op, b.from_numpy(value), **params)).reshape(-1).view(np.uint8)
            for b in (taichi, taichi, parallel, serial)
        ]
        for other in results[1:]:
            np.testing.assert_array_equal(results[0], other, err_msg=op)
        want, got = run_both(taichi, op, (value,), params)
        assert_agrees(op, got, want, (value,), params, TABLE[op].compare)


# ---- Buffers and the Taichi runtime ----
def test_buffers_are_copies_and_cpu_results_are_zero_copy(taichi):
    x = np.arange(12.0).reshape(3, 4)
    buf = taichi.from_numpy(x)
    x[0, 0] = 99.0
    assert taichi.to_numpy(buf)[0, 0] == 0.0  # from_numpy copied
    if taichi.device == "cpu":
        assert isinstance(buf, np.ndarray) and buf.flags.c_contiguous
        assert taichi.to_numpy(buf) is buf  # no copy out
        view = taichi.run("reshape", buf, shape=(4, 3))
        assert np.shares_memory(view, buf)  # reshape is a view of the same memory
        out = taichi.run("neg", buf)
        assert not np.shares_memory(out, buf)
    else:
        assert isinstance(buf, DeviceArray) and buf.shape == (3, 4)
        assert taichi.run("reshape", buf, shape=(4, 3)).array is buf.array
    np.testing.assert_array_equal(taichi.to_numpy(taichi.run("neg", buf)), -taichi.to_numpy(buf))


def test_device_array_reports_shape_and_dtype(taichi_ndarray):
    buf = taichi_ndarray.from_numpy(np.zeros((2, 0, 3), ml_dtypes.bfloat16))
    assert isinstance(buf, DeviceArray)
    assert (buf.shape, buf.ndim, buf.size, buf.dtype) == ((2, 0, 3), 3, 0, DTYPES["bfloat16"])
    assert taichi_ndarray.to_numpy(buf).shape == (2, 0, 3)


def test_backends_share_one_taichi_runtime(taichi):
    again = TaichiBackend(ARCH)
    assert again.device == taichi.device and again._generation == taichi._generation
    assert (taichi.name, taichi.arch) == ("taichi", ARCH)


def test_gpu_arch_without_a_gpu_says_so():
    if ARCH == "cpu":  # this machine has no GPU: asking for one is a clear BackendError
        with pytest.raises(BackendError, match=r"no GPU.*arch='cpu'"):
            TaichiBackend("gpu")
        with pytest.raises(BackendError, match="arch='cpu'"):
            TaichiBackend("cuda")
    else:
        assert TaichiBackend("gpu").device in ("cuda", "vulkan", "metal")
    with pytest.raises(BackendError, match="unknown arch"):
        TaichiBackend("tpu")
    with pytest.raises(BackendError, match="unknown option"):
        TaichiBackend(ARCH, fast=True)


def test_results_do_not_depend_on_the_thread_count():
    """Re-initialising Taichi with one thread gives the same bits (CPU buffers survive)."""
    x = draw("float32", (200_003,), -1, 1)
    params = {"axes": (0,), "keepdims": False}
    results = []
    for threads in (1, 2):
        backend = TaichiBackend("cpu", cpu_max_num_threads=threads, serial_below=0)
        results.append(backend.to_numpy(backend.run("sum", backend.from_numpy(x), **params)))
    TaichiBackend("cpu")  # back to the default runtime for what runs next
    np.testing.assert_array_equal(
        results[0].reshape(-1).view(np.uint32), results[1].reshape(-1).view(np.uint32)
    )
