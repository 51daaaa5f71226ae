"""The reduction family: sum, max, prod over one block of axes, and the scans along one axis
(cumsum, cumprod, linear_recurrence); the kernels, their host adapters and the table.

The adapter views the input as ``(outer, size, inner)`` with the reduced axes in the middle
(transposing first when they are not adjacent). Each output element combines ``block``
consecutive elements of its column in one thread, in a fixed order (``LANES`` interleaved
partials, then a fixed tree): with ``block >= size`` that is the whole reduction; a long
reduction into few outputs runs twice, first over fixed blocks (``(outer, n_blocks, inner)``
partials), then over the partials. Block boundaries depend on the sizes alone, never on threads,
and nothing is combined with atomics, so results are bitwise identical across runs and thread
counts.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import math

import taichi as ti

from ...errors import ShapeError
from .buffers import ACCUMULATOR
from .codec import accumulate_zero, is_nan, load, store
from .creation import fill
from .movement import transpose

LANES = 8  # independent partial results per output (a power of two)
# Few outputs that each reduce many elements (a full sum) combine fixed blocks of this many
# elements first, so that both cores work; the block size never depends on the thread count.
REDUCE_BLOCK = 4096
SPLIT_BELOW_OUTPUTS = 64
TREE = (4, 2, 1)  # lanes combine pairwise: [0..3] += [4..7], [0, 1] += [2, 3], [0] += [1]


@ti.func
def block_of(t, size, inner, block):
    """Output ``t`` of ``(outer, n_blocks, inner)``: the index of its block's first input
    element (the next ones follow ``inner`` apart) and how many elements the block holds."""
    n_blocks = (size + block - 1) // block
    o = t // (n_blocks * inner)
    b = (t // inner) % n_blocks
    start = b * block
    count = ti.min(size, start + block) - start
    return (o * size + start) * inner + t % inner, count


@ti.func
def combine(acc, v, op: ti.template()):
    """acc + v, acc * v, or max(acc, v) with NaN propagating."""
    if ti.static(op == "sum"):
        return acc + v
    elif ti.static(op == "prod"):
        return acc * v
    else:
        return v if (v > acc or is_nan(v)) else acc


@ti.func
def reduce_block(x: ti.template(), first, count, inner, start, op: ti.template()):
    """Combine ``count`` elements of ``x`` from ``first``, ``inner`` apart, in LANES running
    partials (element r goes to lane r % LANES; a sequential chain would wait on each add),
    then the lanes in a fixed tree order: the same bits on every run."""
    lanes = ti.Vector([start for _ in ti.static(range(LANES))])
    rounds = count // LANES
    for q in range(rounds):
        for lane in ti.static(range(LANES)):
            lanes[lane] = combine(lanes[lane], load(x, first + (q * LANES + lane) * inner), op)
    for r in range(rounds * LANES, count):
        lanes[0] = combine(lanes[0], load(x, first + r * inner), op)
    for width in ti.static(TREE):
        for lane in ti.static(range(width)):
            lanes[lane] = combine(lanes[lane], lanes[lane + width], op)
    return lanes[0]


@ti.kernel
def reduce_kernel(
    x: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    size: ti.i32,
    inner: ti.i32,
    block: ti.i32,
    serial: ti.template(),
    op: ti.template(),
):
    # out[o, b, i] = op_{r in block b} x[o, r, i] for op "sum", "prod" or "max" (compiled once
    # per op). sum and prod accumulate in f32 (halves, float32), f64 or i64 (integers; bools
    # count, stored as count != 0, as NumPy's sum then astype). max is NaN if any element is
    # NaN: every lane starts from the block's first element (blocks are non-empty).
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for t in range(out.shape[0]):
        first, count = block_of(t, size, inner, block)
        if ti.static(op == "max"):
            store(out, t, reduce_block(x, first, count, inner, load(x, first), op))
        elif ti.static(op == "prod"):
            store(out, t, reduce_block(x, first, count, inner, accumulate_zero(x) + 1, op))
        else:
            store(out, t, reduce_block(x, first, count, inner, accumulate_zero(x), op))


@ti.func
def scan_index(c, s, size, inner, reverse):
    """The flat index of step ``s`` of column ``c`` of an ``(outer, size, inner)`` array, for
    a scan that visits the column from its end when ``reverse``."""
    r = size - 1 - s if reverse else s
    return ((c // inner) * size + r) * inner + c % inner


@ti.kernel
def scan_kernel(
    x: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    n_columns: ti.i32,
    size: ti.i32,
    inner: ti.i32,
    reverse: ti.i32,
    exclusive: ti.i32,
    serial: ti.template(),
    op: ti.template(),
):
    # out[o, r, i] = op_{s <= r} x[o, s, i] (s >= r when reverse; s < r, s > r when exclusive)
    # for op "sum" or "prod" (compiled once per op), one running result per column (o, i) in
    # the accumulator dtype of reduce_kernel's, each result rounded once to the dtype
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for c in range(n_columns):
        acc = accumulate_zero(x)
        if ti.static(op == "prod"):
            acc += 1
        for s in range(size):
            i = scan_index(c, s, size, inner, reverse)
            after = combine(acc, load(x, i), op)
            store(out, i, acc if exclusive else after)
            acc = after


@ti.kernel
def linear_recurrence_kernel(
    a: ti.types.ndarray(ndim=1),
    b: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    n_columns: ti.i32,
    size: ti.i32,
    inner: ti.i32,
    reverse: ti.i32,
    serial: ti.template(),
):
    # out[o, 0, i] = 0, out[o, r, i] = a[o, r - 1, i] * out[o, r - 1, i] + b[o, r - 1, i] (r + 1,
    # from the end, when reverse): the state before each step, carried in the accumulator dtype
    # (float32 for halves), each result rounded once to the dtype. a may hold b's trailing axes
    # only (repeated over the leading ones): element i of b goes with element i % a.size of a.
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for c in range(n_columns):
        h = accumulate_zero(b)
        for s in range(size):
            i = scan_index(c, s, size, inner, reverse)
            store(out, i, h)
            h = load(a, i % a.shape[0]) * h + load(b, i)


# ---- Host adapters ----
def _layout(backend, x, axes, kept):
    """``x`` (transposed if needed) and ``inner`` such that it reads as (outer, size, inner)
    with the reduced elements in the middle."""
    # Length-1 dimensions do not matter: are the other reduced ones adjacent?
    dims = [(s, k in axes) for k, s in enumerate(x.shape) if s != 1]
    flags = [reduced for _, reduced in dims]
    first = flags.index(True)
    last = len(flags) - 1 - flags[::-1].index(True)
    if all(flags[first : last + 1]):
        return x, math.prod(s for s, _ in dims[last + 1 :])
    return transpose(backend, None, x, tuple(kept) + axes), 1


class Reduction:
    """A reduction over axes: ``combine`` is the kernel's combine step ("sum", "max" or
    "prod"), ``empty`` the result over no elements (``None``: undefined, refused), and
    ``accumulates``: partial results in the wider accumulator dtype (sums and products)."""

    def __init__(self, combine: str, empty, accumulates: bool):
        self.combine, self.empty, self.accumulates = combine, empty, accumulates

    def __call__(self, backend, op, x, axes, keepdims):
        axes = tuple(axes)
        kept = [k for k in range(x.ndim) if k not in axes]
        if keepdims:
            out_shape = tuple(1 if k in axes else s for k, s in enumerate(x.shape))
        else:
            out_shape = tuple(x.shape[k] for k in kept)
        size = math.prod(x.shape[k] for k in axes)
        if self.empty is None and size == 0:
            raise ShapeError(
                f"{op.name}: no elements to reduce (shape {x.shape}, axes {axes}); "
                f"{op.name} over an empty set is undefined. Reduce over non-empty axes."
            )
        n_out = math.prod(out_shape)
        if n_out == 0:
            return backend.empty(out_shape, x.dtype)
        if size == 0:  # the empty sum is 0, the empty product 1
            return fill(backend, out_shape, self.empty, x.dtype)
        if size == 1:  # one element per output: the values themselves
            return x.reshape(out_shape)
        source, inner = _layout(backend, x, axes, kept)
        partial_dtype = ACCUMULATOR[x.dtype] if self.accumulates else x.dtype
        out = backend.empty(out_shape, x.dtype)
        serial = backend.serial(x.size)
        combine, arg = self.combine, backend.arg
        if n_out < SPLIT_BELOW_OUTPUTS and size > 2 * REDUCE_BLOCK:
            n_blocks = -(-size // REDUCE_BLOCK)
            partials = backend.empty((n_out * n_blocks,), partial_dtype)
            reduce_kernel(arg(source), arg(partials), size, inner, REDUCE_BLOCK, serial, combine)
            reduce_kernel(arg(partials), arg(out), n_blocks, inner, n_blocks, True, combine)
        else:
            reduce_kernel(arg(source), arg(out), size, inner, size, serial, combine)
        return out


def _columns(shape, axis):
    """``(n_columns, size, inner)``: a scan along ``axis`` reads ``shape`` as (outer, size,
    inner) and runs once per column (outer * inner of them)."""
    size, inner = shape[axis], math.prod(shape[axis + 1 :])
    return math.prod(shape) // size, size, inner


class Scan:
    """A running reduction along one axis: ``combine`` is the kernel's combine step ("sum" or
    "prod")."""

    def __init__(self, combine: str):
        self.combine = combine

    def __call__(self, backend, op, x, axis, reverse, exclusive=False):
        if x.ndim == 0:  # NumPy treats a 0-d array as one element along axis 0
            x = x.reshape((1,))
        axis %= x.ndim
        out = backend.empty(x.shape, x.dtype)
        if out.size:
            arg = backend.arg
            scan_kernel(arg(x), arg(out), *_columns(x.shape, axis), int(bool(reverse)),
                        int(bool(exclusive)), backend.serial(x.size), self.combine)  # fmt: skip
        return out


def linear_recurrence(backend, op, a, b, axis, reverse):
    out = backend.empty(b.shape, b.dtype)  # a: b's dtype, and its shape or its trailing axes
    if out.size:
        arg = backend.arg
        linear_recurrence_kernel(arg(a), arg(b), arg(out), *_columns(b.shape, axis),
                                 int(bool(reverse)), backend.serial(b.size))  # fmt: skip
    return out


REDUCTION = {
    "sum": Reduction("sum", empty=0, accumulates=True),
    "max": Reduction("max", empty=None, accumulates=False),
    "prod": Reduction("prod", empty=1, accumulates=True),
    "cumsum": Scan("sum"),
    "cumprod": Scan("prod"),
    "linear_recurrence": linear_recurrence,
}
