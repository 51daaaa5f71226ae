"""The reference backend: every backend op in plain NumPy.

This is the executable definition of each op (see :mod:`tfgrad.backends.base`); the Taichi
kernels are tested for agreement with it. It is also the backend where Taichi cannot run.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from . import base, pool, rng

try:  # NumPy 2: np.errstate sets this context variable; setting a prebuilt value is ~5x cheaper
    from numpy._core._ufunc_config import _extobj_contextvar as FP_STATE

    with np.errstate(all="ignore"):
        FP_IGNORE = FP_STATE.get()  # inf/NaN follow IEEE rules, as in every kernel: no warnings
except (ImportError, AttributeError):  # pragma: no cover - another NumPy: errstate per call
    FP_STATE = FP_IGNORE = None

HALF = (np.dtype(np.float16), np.dtype("bfloat16"))
F32 = np.dtype(np.float32)
# Big float results are written (ufunc ``out=``) into buffers of the pool (.pool), whose pages
# stay faulted in between steps; the rest allocate as NumPy does.
POOLED = (F32, np.dtype(np.float64))
BOOL_RESULT = frozenset(
    (np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal)
)


def _copy(x: np.ndarray) -> np.ndarray:
    # A C-contiguous copy that keeps 0-d arrays 0-d (np.ascontiguousarray makes them 1-d).
    if x.nbytes >= pool.MIN_BYTES:
        out = pool.empty(x.shape, x.dtype)
        np.copyto(out, x)
        return out
    return np.array(x, order="C", copy=True)


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    # NOTE: float16/bfloat16 are storage types; arithmetic and accumulation run in float32.
    return F32 if dtype in HALF else dtype


F16 = np.dtype(np.float16)
# float16 -> float32 of every bit pattern (astype's own values: the same bits, NaN payloads
# too). NumPy's cast widens float16 subnormals ~11x slower than normal values (the small
# gradients of a float16 sweep); a lookup costs the same whatever the values, and from
# WIDEN_BY_TABLE elements no more than astype's fast path (benchmarks/README.md, "float16
# casts").
_F16_AS_F32 = np.arange(1 << 16, dtype=np.uint16).view(F16).astype(F32)
WIDEN_BY_TABLE = 4096


def widen(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x.astype(dtype, copy=False)``, a large float16 ``x`` widened by table lookup."""
    if x.dtype == F16 and dtype == F32 and x.size >= WIDEN_BY_TABLE:
        # into the pool: a fresh big array faults its pages in, which doubled the lookup's time
        return np.take(_F16_AS_F32, x.view(np.uint16), out=pool.empty(x.shape, F32))
    return x.astype(dtype, copy=False)


def _unary(fn, big=pool.MIN_BYTES):
    def run(x):
        if x.nbytes >= big and x.dtype in POOLED:
            return fn(x, out=pool.empty(x.shape, x.dtype))
        return fn(widen(x, _compute_dtype(x.dtype))).astype(x.dtype, copy=False)

    run.ufunc = fn  # the whole op where the compute dtype is the dtype (float32, float64)
    return run


def _binary(fn, big=pool.MIN_BYTES):
    def run(x, y):
        if (x.nbytes >= big or y.nbytes >= big) and x.dtype == y.dtype in POOLED:
            dtype = np.dtype(np.bool_) if fn in BOOL_RESULT else x.dtype
            return fn(x, y, out=pool.empty(np.broadcast_shapes(x.shape, y.shape), dtype))
        c = _compute_dtype(x.dtype)
        out = fn(widen(x, c), widen(y, c))
        return out if out.dtype == np.bool_ else out.astype(x.dtype, copy=False)

    run.ufunc = fn  # the whole op for two inputs of one dtype, float32 or float64
    return run


def _reduction(fn):
    def run(x, axes, keepdims):
        out = fn(widen(x, _compute_dtype(x.dtype)), axis=axes, keepdims=keepdims)
        return np.asarray(out).astype(x.dtype, copy=False)

    return run


def _scan(fn, identity):
    """A running reduction along one axis (``np.cumsum``, ``np.cumprod``; ``identity`` is its
    value over no elements), from the end when ``reverse``; ``exclusive``: each result leaves
    its own element out (the running result one step back, ``identity`` first)."""

    def run(x, axis, reverse, exclusive=False):
        c = widen(x, _compute_dtype(x.dtype))
        if reverse:
            c = np.flip(c, axis)
        out = fn(c, axis=axis)
        if exclusive:
            rows = np.moveaxis(out, axis, 0)
            first = np.full((1,) + rows.shape[1:], identity, rows.dtype)
            out = np.moveaxis(np.concatenate([first, rows])[: len(rows)], 0, axis)
        if reverse:
            out = np.flip(out, axis)
        return _copy(out).astype(x.dtype, copy=False)

    return run


# From this many elements ``where`` selects by bit masks: np.where branches on every element,
# and a random mask (ReLU's, on activations) costs it ~3.5 ns an element in mispredictions
# (65,536 elements: 238 us, against 31 us by masks; benchmarks/README.md, "where by masks").
SELECT_BY_MASKS = 6144  # the measured crossover lies between 4,096 and 6,144


def _select(c: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``np.where(c, x, y)``, the elements copied as stored (NaN payloads, -0.0 kept): from
    SELECT_BY_MASKS elements without a branch, ``y ^ ((x ^ y) & m)`` on the bits, ``m`` all
    ones where ``c``."""
    shape = np.broadcast_shapes(c.shape, x.shape, y.shape)
    if x.dtype != y.dtype or math.prod(shape) < SELECT_BY_MASKS:
        return np.where(c, x, y)
    bits = np.dtype(f"u{x.dtype.itemsize}")
    mask = np.negative(c.view(np.int8)).astype(f"i{x.dtype.itemsize}").view(bits)
    xb, yb = x.view(bits), y.view(bits)
    out = pool.empty(shape, bits)
    if y.size == 1 and not yb.any():  # where(c, x, 0): ReLU and its gradient
        np.bitwise_and(xb, mask, out=out)
    else:
        np.bitwise_and(np.bitwise_xor(xb, yb), mask, out=out)
        np.bitwise_xor(out, yb, out=out)
    return out.view(x.dtype)


# Steps of a recurrence copied to contiguous rows at a time: a block of steps stays in cache,
# so a scan along a strided axis (the last one of a batch of tangents) costs no full transpose.
RECURRENCE_BLOCK = 64


def _linear_recurrence(a, b, axis, reverse):
    # h[0] = 0 and h[t] = a[t - 1] * h[t - 1] + b[t - 1] along axis (the state before step t;
    # from the end when reverse), one step at a time over all other axes at once, the state in
    # the compute dtype and each h[t] rounded once. a may have the shape of b's trailing axes:
    # the same coefficients for every index of the leading ones (a batch of tangents).
    dtype, c = a.dtype, _compute_dtype(a.dtype)
    out = np.empty(b.shape, c)
    repeated = a.shape != b.shape
    a, b = np.broadcast_to(widen(a, c), b.shape), widen(b, c)
    a_rows, b_rows, h_rows = (np.moveaxis(v, axis, 0) for v in (a, b, out))
    if reverse:
        a_rows, b_rows, h_rows = a_rows[::-1], b_rows[::-1], h_rows[::-1]
    state = np.zeros(b_rows.shape[1:], c)
    for start in range(0, len(b_rows), RECURRENCE_BLOCK):
        block = slice(start, start + RECURRENCE_BLOCK)
        a_block = a_rows[block] if repeated else np.ascontiguousarray(a_rows[block])
        b_block = np.ascontiguousarray(b_rows[block])
        h_block = np.empty_like(b_block)
        for t in range(len(h_block)):
            h_block[t] = state
            state = a_block[t] * state + b_block[t]
        h_rows[block] = h_block
    return out.astype(dtype, copy=False)


def _slice(x, index):
    # Triples come from slice.indices(n): a negative stop (only with a negative step) means
    # "past the front", which Python's slice syntax spells None.
    key = tuple(
        slice(a, b if b >= 0 else None, c) if len(range(a, b, c)) else slice(0, 0, 1)
        for a, b, c in index
    )
    return _copy(x[key])


# Square tiles of a big matrix transpose: a tile's rows, read and written, stay in cache (the
# plain copy strides the source by a whole row per element; 3x slower at 1024 x 1024).
TRANSPOSE_TILE = 128


def _transpose(x, axes):
    view = np.transpose(x, axes)
    if x.ndim != 2 or x.nbytes < pool.MIN_BYTES or tuple(axes) != (1, 0):
        return _copy(view)
    out, t = pool.empty(view.shape, x.dtype), TRANSPOSE_TILE
    for i in range(0, out.shape[0], t):
        for j in range(0, out.shape[1], t):
            out[i : i + t, j : j + t] = view[i : i + t, j : j + t]
    return out


def _concatenate(*xs, axis):
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    dtype = np.result_type(*xs)
    if dtype in POOLED and math.prod(shape) * dtype.itemsize >= pool.MIN_BYTES:
        return np.concatenate(xs, axis=axis, out=pool.empty(tuple(shape), dtype))
    return np.concatenate(xs, axis=axis)


def _scatter_add(operand, indices, updates, axis):
    # updates has shape operand.shape[:axis] + indices.shape + operand.shape[axis + 1:]
    k = indices.ndim
    out = np.moveaxis(operand.copy(), axis, 0)
    moved = np.moveaxis(updates, tuple(range(axis, axis + k)), tuple(range(k)))
    if k == 1 and indices.size > 1 and indices[0] >= 0 and (np.diff(indices) > 0).all():
        out[indices] += moved  # distinct indices (a slice's gradient): one add each, faster
    else:
        np.add.at(out, indices, moved)
    return _copy(np.moveaxis(out, 0, axis))


def _matmul(a, b):
    dtype, c = a.dtype, _compute_dtype(a.dtype)
    a, b = widen(a, c), widen(b, c)
    out = _ordered_matmul(a, b) if base.fixed_order() else np.matmul(a, b)
    return out.astype(dtype, copy=False)


def _ordered_matmul(a, b):
    """``a @ b`` with every sum taken p = 0, 1, ..., k-1 in one accumulator: the order of the
    Taichi matmul kernel, so the two give the same bits (tests/test_determinism.py), on any
    thread count. BLAS (``np.matmul``) blocks the sum along k by its thread count instead.

    Costs k NumPy calls over the ``m * n`` outputs (an outer product each): some 10-100 times
    BLAS's time (benchmarks/determinism_cost.py); deterministic mode only."""
    vector_a, vector_b = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if vector_a else a
    b2 = b[:, None] if vector_b else b
    shape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
    acc = np.zeros(shape, a.dtype)
    term = np.empty(shape, a.dtype)
    for p in range(a2.shape[-1]):
        np.multiply(a2[..., :, p : p + 1], b2[..., p : p + 1, :], out=term)
        acc += term
    if vector_a:
        acc = acc[..., 0, :]
    if vector_b:
        acc = acc[..., 0]
    return acc


# ---- Convolution: conv2d and its two transposes (see tfgrad.ops.conv for the math) ----
# Stride 1 on small maps (OW < WIDE_BELOW) runs on "wide rows": the padded input flattened
# per channel, so a tap (p, q) reads one contiguous run of OH * Wp elements (output rows at the
# padded width Wp, the last Wp - OW of each row garbage, cropped after the product) instead of
# OH runs of OW. At the digits CNN's 8x8 maps that copy is 2.4x faster and the convolution and
# its weight gradient 0.7-0.8x the im2col's time; at 28x28 the longer product costs more than
# the copy saves (1.1-1.16x), so wider maps keep im2col. The input transpose at stride 1 is the
# forward convolution of the gradient with the flipped kernel (0.3-0.7x the tap-by-tap adds
# from 4 input channels; below, the adds stay: 1.5x at one channel). Measured one thread,
# `benchmarks/README.md` ("Issue 12 ... the convolutions").
WIDE_BELOW = 16


def _wide_cols(x, kernel_size, padding, dilation):
    """``(cols, oh, wp)``: stride 1's columns (N, C*KH*KW, OH*Wp) over the padded width."""
    (ph, pw), (dh, dw) = padding, dilation
    kh, kw = kernel_size
    n, c, h, v = x.shape
    hp, wp = h + 2 * ph, v + 2 * pw
    oh = hp - dh * (kh - 1)
    xp = np.zeros((n, c, hp + 1, wp), x.dtype)  # a spare row: the last taps' garbage columns
    xp[:, :, ph : ph + h, pw : pw + v] = x
    flat = xp.reshape(n, c, (hp + 1) * wp)
    run = oh * wp
    cols = np.empty((n, c, kh, kw, run), x.dtype)
    for p in range(kh):
        for q in range(kw):
            start = p * dh * wp + q * dw
            cols[:, :, p, q] = flat[:, :, start : start + run]
    return cols.reshape(n, c * kh * kw, run), oh, wp


def _im2col(x, kernel_size, stride, padding, dilation):
    """``x`` (N, C, H, W) as the columns (N, C*KH*KW, OH*OW) of the windows its output
    positions read: ``cols[n, (c, p, q), (i, j)] = x_pad[n, c, i*sh + p*dh, j*sw + q*dw]``
    (zero padding). The copy runs along output rows, contiguous runs of OW elements."""
    (ph, pw), (sh, sw), (dh, dw) = padding, stride, dilation
    kh, kw = kernel_size
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, KH, KW), a strided view
    n, c, oh, ow = windows.shape[:4]
    return np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3)).reshape(
        n, c * kh * kw, oh * ow
    )


def _conv2d(x, w, stride, padding, dilation):
    # y[n, o, i, j] = sum_{c, p, q} x_pad[n, c, i*sh + p*dh, j*sw + q*dw] w[o, c, p, q]
    # y[n] = w (O, C*KH*KW) @ cols[n]: one batched product, already NCHW
    dtype, c = x.dtype, _compute_dtype(x.dtype)
    x, (n, _, h, v), o = widen(x, c), x.shape, w.shape[0]
    w2 = widen(w.reshape(o, int(np.prod(w.shape[1:]))), c)
    oh, ow = _conv_out(h, v, w.shape[2:], stride, padding, dilation)
    if stride == (1, 1) and ow < WIDE_BELOW:
        cols, _, wp = _wide_cols(x, w.shape[2:], padding, dilation)
        out = np.matmul(w2, cols).reshape(n, o, oh, wp)[..., :ow]
        return _copy(out).astype(dtype, copy=False)
    out = np.matmul(w2, _im2col(x, w.shape[2:], stride, padding, dilation))
    return out.reshape(n, o, oh, ow).astype(dtype, copy=False)


def _conv_out(h, v, kernel_size, stride, padding, dilation):
    return tuple(
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip((h, v), kernel_size, stride, padding, dilation)
    )


def _conv2d_input_grad(g, w, input_size, stride, padding, dilation):
    (ph, pw), (dh, dw) = padding, dilation
    (n, _, oh, ow), (_, channels, kh, kw) = g.shape, w.shape
    flipped = ((kh - 1) * dh - ph, (kw - 1) * dw - pw)
    if stride == (1, 1) and min(flipped) >= 0 and channels >= 4:
        # dx = g (padded by the kernel's span less the padding) convolved with w flipped in
        # both taps, its channel axes swapped: the "full" convolution of the gradient
        wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return _conv2d(g, wf, stride, flipped, dilation)
    # dx[n, c, h, v] = sum over o, p, q and the (i, j) with i*sh + p*dh - ph = h and
    # j*sw + q*dw - pw = v of g[n, o, i, j] w[o, c, p, q]: one product gives every tap's
    # columns; each tap (p, q) adds its own to the strided window of the padded input it read
    dtype = g.dtype
    c = _compute_dtype(dtype)
    g, w = widen(g, c), widen(w, c)
    sh, sw = stride
    h, v = input_size
    out = np.zeros((n, channels, h + 2 * ph, v + 2 * pw), c)
    # (N, OH, OW, C, KH, KW) -> (N, C, KH, KW, OH, OW)
    taps = np.tensordot(g, w, axes=((1,), (0,))).transpose(0, 3, 4, 5, 1, 2)
    for p in range(kh):
        for q in range(kw):
            rows = slice(p * dh, p * dh + sh * (oh - 1) + 1, sh)
            cols = slice(q * dw, q * dw + sw * (ow - 1) + 1, sw)
            out[:, :, rows, cols] += taps[:, :, p, q]
    return _copy(out[:, :, ph : ph + h, pw : pw + v]).astype(dtype, copy=False)


def _conv2d_weight_grad(x, g, kernel_size, stride, padding, dilation):
    # dw[o, c, p, q] = sum_{n, i, j} x_pad[n, c, i*sh + p*dh, j*sw + q*dw] g[n, o, i, j]
    # dw = sum_n g[n] (O, OH*OW) @ cols[n]ᵀ (BLAS reads the transpose in place)
    dtype, c = x.dtype, _compute_dtype(x.dtype)
    x, g = widen(x, c), widen(g, c)
    n, o, oh, ow = g.shape
    if stride == (1, 1) and ow < WIDE_BELOW:
        cols, _, wp = _wide_cols(x, kernel_size, padding, dilation)
        wide = np.zeros((n, o, oh, wp), c)  # the garbage columns' gradient is 0
        wide[..., :ow] = g
        g3 = wide.reshape(n, o, oh * wp)
    else:
        cols = _im2col(x, kernel_size, stride, padding, dilation)
        g3 = g.reshape(n, o, oh * ow)
    out = np.matmul(g3, cols.transpose(0, 2, 1)).sum(axis=0)
    return out.reshape((o, x.shape[1]) + tuple(kernel_size)).astype(dtype, copy=False)


def _arange(start, step, n, dtype):
    return (start + step * np.arange(n, dtype=np.float64)).astype(dtype)


def _random_uniform(shape, seed, counter, dtype):
    return rng.uniform(seed, counter, int(np.prod(shape)), dtype).reshape(shape)


def _random_normal(shape, seed, counter, dtype):
    return rng.normal(seed, counter, int(np.prod(shape)), dtype).reshape(shape)


def _pointwise(fn):
    """An op defined by its scalar math (``OpInfo.scalar``), run on whole arrays."""

    def run(*xs):
        c = _compute_dtype(xs[0].dtype)
        out = np.asarray(fn(*(widen(x, c) for x in xs)))
        return out if out.dtype == np.bool_ else out.astype(xs[0].dtype, copy=False)

    return run


# One table per family (see tfgrad.backends.base); an op is one entry in its family's table.
ELEMENTWISE = {
    "neg": _unary(np.negative),
    "abs": _unary(np.abs),
    "sign": _unary(np.sign),
    "sqrt": _unary(np.sqrt),
    "add": _binary(np.add),
    "sub": _binary(np.subtract),
    "mul": _binary(np.multiply),
    "div": _binary(np.divide),
    "maximum": _binary(np.maximum),
    "minimum": _binary(np.minimum),
    "where": lambda c, x, y: _select(c, x, y),
}
TRANSCENDENTAL = {
    "exp": _unary(np.exp),
    "log": _unary(np.log),
    "log1p": _unary(np.log1p),
    "expm1": _unary(np.expm1),
    "sin": _unary(np.sin),
    "cos": _unary(np.cos),
    "tan": _unary(np.tan),
    "tanh": _unary(np.tanh),
    "pow": _binary(np.power),
}
COMPARISON = {
    "eq": _binary(np.equal),
    "ne": _binary(np.not_equal),
    "lt": _binary(np.less),
    "le": _binary(np.less_equal),
    "gt": _binary(np.greater),
    "ge": _binary(np.greater_equal),
}
CAST = {"cast": lambda x, dtype: widen(x, dtype) if dtype != x.dtype else x.astype(dtype)}
REDUCTION = {
    "sum": _reduction(np.sum),
    "max": _reduction(np.max),
    "prod": _reduction(np.prod),
    "cumsum": _scan(np.cumsum, 0),
    "cumprod": _scan(np.cumprod, 1),
    "linear_recurrence": _linear_recurrence,
}
MOVEMENT = {
    "reshape": lambda x, shape: x.reshape(shape),
    "transpose": _transpose,
    "broadcast_to": lambda x, shape: _copy(np.broadcast_to(x, shape)),
    "slice": _slice,
    "concatenate": _concatenate,
}
INDEXING = {
    "take": lambda x, indices, axis: np.take(x, indices, axis=axis),
    "scatter_add": _scatter_add,
}
LINALG = {
    "matmul": _matmul,
    "conv2d": _conv2d,
    "conv2d_input_grad": _conv2d_input_grad,
    "conv2d_weight_grad": _conv2d_weight_grad,
}
CREATION = {
    "full": lambda shape, value, dtype: np.full(shape, value, dtype=dtype),
    "arange": _arange,
    "eye": lambda n, m, k, dtype: np.eye(n, m, k, dtype=dtype),
    "random_uniform": _random_uniform,
    "random_normal": _random_normal,
}
TABLES = {
    base.ELEMENTWISE: ELEMENTWISE,
    base.TRANSCENDENTAL: TRANSCENDENTAL,
    base.COMPARISON: COMPARISON,
    base.CAST: CAST,
    base.REDUCTION: REDUCTION,
    base.MOVEMENT: MOVEMENT,
    base.INDEXING: INDEXING,
    base.LINALG: LINALG,
    base.CREATION: CREATION,
}


class NumpyBackend:
    """Arrays are NumPy arrays; each op is the NumPy expression that defines it."""

    name = "numpy"
    device = "cpu"

    def __init__(self, **options):
        self.options = options
        self.kernels = base.KernelTables(self.name, TABLES, lambda op: _pointwise(op.scalar))

    def from_numpy(self, array: np.ndarray) -> np.ndarray:
        return np.array(array, copy=True, order="C")

    def to_numpy(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def implementation(self, op: base.OpInfo | str) -> str:
        return "numpy"

    def run(self, op: base.OpInfo | str, *bufs, **params):
        fn = (self.kernels.found.get(op) or self.kernels.find(op))[1]
        if FP_STATE is None:  # pragma: no cover
            with np.errstate(all="ignore"):
                return fn(*bufs, **params)
        token = FP_STATE.set(FP_IGNORE)  # np.errstate(all="ignore"), prebuilt
        try:
            return fn(*bufs, **params)
        finally:
            FP_STATE.reset(token)

    def kernel_for(self, op: base.OpInfo | str, *bufs, indices_checked: bool = False, **params):
        """``(fn, "numpy")`` with ``fn(*bufs)`` computing the op (see ``TaichiBackend``'s)."""
        fn = self.kernels.find(op)[1]
        return (partial(fn, **params) if params else fn), "numpy"

    def __repr__(self) -> str:
        return "NumpyBackend()"
