"""The one table of ops that drives the op tests: each op beside its NumPy reference, the
shapes and parameters to draw, the input domain, and how often it is differentiable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tfgrad as tg


@dataclass(frozen=True)
class OpCase:
    name: str
    fn: Callable  # (*tfgrad tensors, **params) -> tensor
    ref: Callable  # (*numpy arrays, **params) -> array
    draw: Callable  # (hypothesis data, min_side) -> (shapes, params)
    domain: tuple = (-2.0, 2.0)  # inputs drawn uniformly here (per arg if a tuple of tuples)
    order: int = 2  # 0: not differentiable, 1: first derivatives only
    rtol32: float = 2e-5
    dtypes: tuple = ("float64", "float32")
    both_signs: bool = False  # draw from -domain too (ops with a kink at 0, kept away from it)

    def domains(self, n: int) -> list[tuple[float, float]]:
        if isinstance(self.domain[0], tuple):
            return list(self.domain)
        return [self.domain] * n

    def inputs(self, shapes, seed: int, dtype: str = "float64") -> list[np.ndarray]:
        """Arrays of ``shapes`` drawn uniformly from the op's domain (both signs if asked)."""
        rng = np.random.default_rng(seed)
        out = []
        for shape, (lo, hi) in zip(shapes, self.domains(len(shapes))):
            values = rng.uniform(lo, hi, size=shape)
            if self.both_signs:
                values *= rng.choice([-1.0, 1.0], size=shape)
            out.append(np.asarray(values, dtype=dtype))
        return out


# ---- Shape strategies ----
def unary(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=4))
    return [shape], {}


def broadcast(n):
    def draw(data, min_side):
        shapes = data.draw(
            hnp.mutually_broadcastable_shapes(
                num_shapes=n, min_dims=0, max_dims=3, min_side=min_side, max_side=3
            )
        )
        return list(shapes.input_shapes), {}

    return draw


def reduction(nonempty: bool = False):
    def draw(data, min_side):
        side = max(min_side, 1 if nonempty else 0)
        shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=side, max_side=4))
        nd = len(shape)
        axis = data.draw(
            st.one_of(
                st.none(),
                st.integers(-nd, nd - 1) if nd else st.none(),
                st.lists(st.integers(0, nd - 1), unique=True, max_size=nd).map(tuple)
                if nd
                else st.none(),
            )
        )
        return [shape], {"axis": axis, "keepdims": data.draw(st.booleans())}

    return draw


def one_axis(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=max(min_side, 1),
                                       max_side=4))  # fmt: skip
    return [shape], {"axis": data.draw(st.integers(-len(shape), len(shape) - 1))}


def scan_shapes(data, min_side):
    shapes, params = one_axis(data, min_side)
    return shapes, {**params, "reverse": data.draw(st.booleans()),
                    "exclusive": data.draw(st.booleans())}  # fmt: skip


def recurrence_shapes(data, min_side):
    shapes = data.draw(
        hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=3, min_side=min_side, max_side=4
        ).filter(lambda s: s.result_shape)  # the recurrence runs along an axis
    )
    ndim = len(shapes.result_shape)
    return list(shapes.input_shapes), {
        "axis": data.draw(st.integers(-ndim, ndim - 1)),
        "reverse": data.draw(st.booleans()),
    }


def matmul_shapes(data, min_side):
    m, k, n = (data.draw(st.integers(1, 4)) for _ in range(3))
    kind = data.draw(st.sampled_from(["mm", "mv", "vm", "vv", "batched", "broadcast"]))
    b = data.draw(st.integers(1, 3))
    shapes = {
        "mm": [(m, k), (k, n)],
        "mv": [(m, k), (k,)],
        "vm": [(k,), (k, n)],
        "vv": [(k,), (k,)],
        "batched": [(b, m, k), (b, k, n)],
        "broadcast": [(b, 1, m, k), (2, k, n)],
    }[kind]
    return shapes, {}


def conv2d_reference(x, w, stride=1, padding=0, dilation=1):
    """conv2d by its definition, one output position and kernel tap at a time (PyTorch's
    cross-correlation): y[n, o, i, j] = sum_{c,p,q} x_pad[n, c, i*sh + p*dh, j*sw + q*dw]
    w[o, c, p, q]."""
    (sh, sw), (ph, pw), (dh, dw) = (v if isinstance(v, tuple) else (v, v)
                                    for v in (stride, padding, dilation))  # fmt: skip
    (n, _, h, width), (o, _, kh, kw) = x.shape, w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (
        (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
        (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1,
    )
    out = np.zeros((n, o, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            for p in range(kh):
                for q in range(kw):
                    out[:, :, i, j] += xp[:, :, i * sh + p * dh, j * sw + q * dw] @ w[:, :, p, q].T
    return out


def conv2d_shapes(data, min_side):
    """Small NCHW images and OIHW kernels with strides, padding and dilation as ints or pairs
    (the kernel never larger than the padded image)."""
    pair = st.one_of(st.integers(1, 2), st.tuples(st.integers(1, 2), st.integers(1, 2)))
    stride, dilation = data.draw(pair), data.draw(pair)
    padding = data.draw(
        st.one_of(st.integers(0, 1), st.tuples(st.integers(0, 1), st.integers(0, 2)))
    )
    n, c, o = (
        data.draw(st.integers(min_side, 2)),
        data.draw(st.integers(1, 2)),
        data.draw(st.integers(1, 2)),
    )
    kernel, image = [], []
    for k in range(2):
        d = dilation if isinstance(dilation, int) else dilation[k]
        p = padding if isinstance(padding, int) else padding[k]
        kernel.append(data.draw(st.integers(1, 3)))
        image.append(data.draw(st.integers(max(1, d * (kernel[k] - 1) + 1 - 2 * p), 5)))
    shapes = [(n, c, *image), (o, c, *kernel)]
    return shapes, {"stride": stride, "padding": padding, "dilation": dilation}


def reshape_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=4))
    size = int(np.prod(shape))
    target = data.draw(st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (1, size)]))
    return [shape], {"shape": target}


def transpose_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=4))
    axes = data.draw(st.permutations(range(len(shape))))
    return [shape], {"axes": tuple(axes)}


def broadcast_to_shapes(data, min_side):
    shapes = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3,
                                                         min_side=min_side))  # fmt: skip
    return [shapes.input_shapes[0]], {"shape": shapes.result_shape}


def expand_dims_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=min_side, max_side=4))
    return [shape], {"axis": data.draw(st.integers(-len(shape) - 1, len(shape)))}


def squeeze_shapes(data, min_side):
    sides = st.sampled_from([1, 1, 2, 3]) if min_side else st.sampled_from([0, 1, 1, 2, 3])
    shape = tuple(data.draw(st.lists(sides, min_size=0, max_size=4)))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = data.draw(st.one_of(st.none(), st.sampled_from(ones))) if ones else None
    return [shape], {"axis": axis}


def concat_shapes(data, min_side):
    shape = list(data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)))
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = data.draw(st.integers(1, 3))
    shapes = []
    for _ in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(min_side, 3))
        shapes.append(tuple(s))
    return shapes, {"axis": axis}


def stack_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=min_side, max_side=3))
    n = data.draw(st.integers(1, 3))
    return [shape] * n, {"axis": data.draw(st.integers(-len(shape) - 1, len(shape)))}


def index_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    return [shape], {"key": key}


def array_index_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    idx = data.draw(st.lists(st.integers(-shape[axis], shape[axis] - 1), min_size=1, max_size=5))
    key = (slice(None),) * axis + (idx,)
    return [shape], {"key": key}


def take_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    idx_shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    idx = data.draw(hnp.arrays(np.int64, idx_shape, elements=st.integers(0, shape[axis] - 1)))
    return [shape], {"indices": idx, "axis": axis}


def scatter_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    n = data.draw(st.integers(1, 5))
    idx = np.array(data.draw(st.lists(st.integers(0, shape[axis] - 1), min_size=n, max_size=n)))
    updates = shape[:axis] + (n,) + shape[axis + 1 :]
    return [shape, updates], {"indices": idx, "axis": axis}


def split_shapes(data, min_side):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = data.draw(st.integers(0, len(shape) - 1))
    points = sorted(data.draw(st.lists(st.integers(0, shape[axis]), max_size=2)))
    return [shape], {"indices_or_sections": points, "axis": axis}


def linspace_shapes(data, min_side):
    shapes, _ = broadcast(2)(data, min_side)
    return shapes, {
        "num": data.draw(st.integers(min_side, 4)),
        "endpoint": data.draw(st.booleans()),
    }


def square_shapes(data, min_side):
    n = data.draw(st.integers(1, 4))
    m = data.draw(st.integers(1, 4))
    return [(n, m)], {"k": data.draw(st.integers(-2, 2))}


def vector_shapes(data, min_side):
    return [(data.draw(st.integers(1, 4)),)], {"k": data.draw(st.integers(-2, 2))}


def two_vectors(data, min_side):
    return [(data.draw(st.integers(1, 4)),), (data.draw(st.integers(1, 4)),)], {}


# ---- NumPy references for composites ----
def _np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True) if x.size else 0.0
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis if axis is not None else None)


def _np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _np_cumprod(x, axis, reverse, exclusive):
    rows = np.moveaxis(x, axis, 0)
    rows = rows[::-1] if reverse else rows
    out = np.cumprod(rows, axis=0)
    if exclusive:
        out = np.concatenate([np.ones_like(out[:1]), out[:-1]])
    return np.moveaxis(out[::-1] if reverse else out, 0, axis)


def _np_linear_recurrence(a, b, axis, reverse):
    a, b = np.broadcast_arrays(a, b)
    a_rows, b_rows = np.moveaxis(a, axis, 0), np.moveaxis(b, axis, 0)
    h = np.zeros(b_rows.shape, np.result_type(a, b))
    steps = range(len(h) - 1)
    for t in reversed(steps) if reverse else steps:  # h[t] from its neighbour towards the start
        src, dst = (t + 1, t) if reverse else (t, t + 1)
        h[dst] = a_rows[src] * h[src] + b_rows[src]
    return np.moveaxis(h, 0, axis)


def _np_scatter_add(x, updates, indices, axis):
    out = np.moveaxis(x.copy(), axis, 0)
    np.add.at(out, indices, np.moveaxis(updates, axis, 0))
    return np.moveaxis(out, 0, axis)


def _np_split(x, indices_or_sections, axis):
    return np.concatenate([p.ravel() for p in np.split(x, indices_or_sections, axis)])


def _tg_split(x, indices_or_sections, axis):
    return tg.concatenate([tg.reshape(p, (-1,)) for p in tg.split(x, indices_or_sections, axis)])


POSITIVE = (0.3, 2.0)
AWAY_FROM_ZERO = (0.3, 2.0)

OPS = [
    # ---- Unary ----
    OpCase("negative", tg.negative, np.negative, unary),
    OpCase("exp", tg.exp, np.exp, unary),
    OpCase("log", tg.log, np.log, unary, POSITIVE),
    OpCase("log1p", tg.log1p, np.log1p, unary, (-0.5, 2.0)),
    OpCase("expm1", tg.expm1, np.expm1, unary),
    OpCase("sin", tg.sin, np.sin, unary),
    OpCase("cos", tg.cos, np.cos, unary),
    OpCase("tan", tg.tan, np.tan, unary, (-1.2, 1.2)),
    OpCase("tanh", tg.tanh, np.tanh, unary),
    OpCase("sigmoid", tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), unary),
    OpCase("relu", tg.relu, lambda x: np.maximum(x, 0), unary, AWAY_FROM_ZERO, both_signs=True),
    OpCase("softplus", tg.softplus, lambda x: np.log1p(np.exp(x)), unary),
    OpCase("sqrt", tg.sqrt, np.sqrt, unary, POSITIVE),
    OpCase("square", tg.square, np.square, unary),
    OpCase("abs", tg.abs, np.abs, unary, AWAY_FROM_ZERO, both_signs=True),
    OpCase("sign", tg.sign, np.sign, unary, AWAY_FROM_ZERO, order=1, both_signs=True),
    # ---- Binary (broadcasting) ----
    OpCase("add", tg.add, np.add, broadcast(2)),
    OpCase("subtract", tg.subtract, np.subtract, broadcast(2)),
    OpCase("multiply", tg.multiply, np.multiply, broadcast(2)),
    OpCase("divide", tg.divide, np.divide, broadcast(2), ((-2.0, 2.0), POSITIVE)),
    OpCase("power", tg.power, np.power, broadcast(2), (POSITIVE, (-2.0, 2.0)), rtol32=1e-4),
    OpCase("maximum", tg.maximum, np.maximum, broadcast(2)),
    OpCase("minimum", tg.minimum, np.minimum, broadcast(2)),
    OpCase(
        "where",
        lambda c, x, y: tg.where(c > 0, x, y),
        lambda c, x, y: np.where(c > 0, x, y),
        broadcast(3),
    ),  # fmt: skip
    OpCase("clip", lambda x: tg.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7), unary),
    # ---- Reductions and scans ----
    OpCase("sum", tg.sum, np.sum, reduction()),
    OpCase("mean", tg.mean, np.mean, reduction(nonempty=True)),
    OpCase("var", tg.var, np.var, reduction(nonempty=True), rtol32=1e-4),
    OpCase("max", tg.max, np.max, reduction(nonempty=True)),
    OpCase("min", tg.min, np.min, reduction(nonempty=True)),
    OpCase("prod", tg.prod, np.prod, reduction(), (0.5, 1.5), rtol32=1e-4),
    OpCase("logsumexp", tg.logsumexp, _np_logsumexp, reduction(nonempty=True)),
    OpCase("softmax", tg.softmax, _np_softmax, one_axis),
    OpCase("log_softmax", tg.log_softmax, lambda x, axis: np.log(_np_softmax(x, axis)), one_axis),
    OpCase("cumsum", tg.cumsum, np.cumsum, one_axis, rtol32=1e-4),
    OpCase("cumprod", tg.cumprod, _np_cumprod, scan_shapes, (0.5, 1.5), rtol32=1e-4),
    OpCase(
        "linear_recurrence",
        tg.ops.linear_recurrence,
        _np_linear_recurrence,
        recurrence_shapes,
        ((-1.2, 1.2), (-2.0, 2.0)),
        rtol32=1e-4,
    ),
    # ---- Shapes and movement ----
    OpCase("reshape", tg.reshape, np.reshape, reshape_shapes),
    OpCase("transpose", tg.transpose, np.transpose, transpose_shapes),
    OpCase("broadcast_to", tg.broadcast_to, np.broadcast_to, broadcast_to_shapes),
    OpCase("expand_dims", tg.expand_dims, np.expand_dims, expand_dims_shapes),
    OpCase("squeeze", tg.squeeze, np.squeeze, squeeze_shapes),
    OpCase(
        "concatenate",
        lambda *xs, axis: tg.concatenate(xs, axis),
        lambda *xs, axis: np.concatenate(xs, axis),
        concat_shapes,
    ),  # fmt: skip
    OpCase(
        "stack",
        lambda *xs, axis: tg.stack(xs, axis),
        lambda *xs, axis: np.stack(xs, axis),
        stack_shapes,
    ),  # fmt: skip
    OpCase("split", _tg_split, _np_split, split_shapes),
    OpCase("linspace", tg.linspace, np.linspace, linspace_shapes),
    OpCase("getitem", lambda x, key: x[key], lambda x, key: x[key], index_shapes),
    OpCase("getitem_array", lambda x, key: x[key], lambda x, key: x[key], array_index_shapes),
    OpCase("take", tg.take, np.take, take_shapes),
    OpCase(
        "scatter_add",
        lambda x, u, indices, axis: tg.scatter_add(x, indices, u, axis),
        _np_scatter_add,
        scatter_shapes,
    ),  # fmt: skip
    # ---- Linear algebra ----
    OpCase("matmul", tg.matmul, np.matmul, matmul_shapes, rtol32=1e-4),
    OpCase("conv2d", tg.conv2d, conv2d_reference, conv2d_shapes, rtol32=1e-4),
    OpCase(
        "dot",
        tg.dot,
        np.dot,
        lambda d, s: ([(3,), (3,)], {}) if d.draw(st.booleans()) else ([(2, 3), (3,)], {}),
    ),  # fmt: skip
    OpCase("outer", tg.outer, np.outer, two_vectors),
    OpCase("diag_of_matrix", tg.diag, np.diag, square_shapes),
    OpCase("diag_of_vector", tg.diag, np.diag, vector_shapes),
    OpCase("trace", tg.trace, lambda x, k: np.trace(x, k), square_shapes),
]

OPS_BY_NAME = {case.name: case for case in OPS}
