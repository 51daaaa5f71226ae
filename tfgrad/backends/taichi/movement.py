"""The movement and indexing families: one rank-generic strided gather (transpose,
broadcast_to, slice, and the broadcasts of binary ops), concatenate, take and scatter_add; their
host adapters and tables.

Gathers and copies move elements as stored (on the CPU the adapters pass raw unsigned views, so
one compiled kernel serves every dtype of a width). ``scatter_add`` computes, so it decodes.

Index metadata is computed on the host: ``meta`` holds ``(div_k, shape_k, stride_k)`` for each
output dimension ``k``, flat, as int64 (strides in elements of the flat input). The adapters
take what the front end validated (shapes, axes, slice bounds); only the kernels can see an
index out of range, and they count those for the adapter to raise.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import math

import numpy as np
import taichi as ti

from ...errors import ShapeError
from .buffers import contiguous_strides
from .codec import load, store


@ti.kernel
def gather_kernel(
    x: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    meta: ti.types.ndarray(ndim=1),
    offset: ti.i64,
    serial: ti.template(),
):
    # out[i] = x[offset + sum_k ((i // div_k) % shape_k) * stride_k]
    ndim = meta.shape[0] // 3
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        j = offset
        for k in range(ndim):
            j += ((i // meta[3 * k]) % meta[3 * k + 1]) * meta[3 * k + 2]
        out[i] = x[ti.cast(j, ti.i32)]


@ti.kernel
def concatenate_kernel(
    x: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    row: ti.i32,
    out_row: ti.i32,
    offset: ti.i32,
    serial: ti.template(),
):
    # x viewed as (outer, row) lands in out viewed as (outer, out_row) at column offset:
    # out[o * out_row + offset + r] = x[o * row + r]
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for t in range(x.shape[0]):
        out[(t // row) * out_row + offset + t % row] = x[t]


@ti.kernel
def take_kernel(
    x: ti.types.ndarray(ndim=1),
    indices: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    size: ti.i32,
    n_indices: ti.i32,
    inner: ti.i32,
    serial: ti.template(),
) -> ti.i32:
    # x viewed as (outer, size, inner), out as (outer, n_indices, inner):
    # out[o, j, i] = x[o, indices[j], i], negative indices counting from the end. Returns how
    # many indices were out of range (their outputs are 0; the caller raises).
    bad = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for t in range(out.shape[0]):
        o = t // (n_indices * inner)
        i = t % inner
        k = ti.cast(indices[(t // inner) % n_indices], ti.i32)
        if k < 0:
            k += size
        if 0 <= k < size:
            out[t] = x[(o * size + k) * inner + i]
        else:
            out[t] = 0
            bad += 1
    return bad


@ti.kernel
def scatter_add_kernel(
    operand: ti.types.ndarray(ndim=1),
    indices: ti.types.ndarray(ndim=1),
    updates: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    n_columns: ti.i32,
    size: ti.i32,
    n_indices: ti.i32,
    inner: ti.i32,
    serial: ti.template(),
) -> ti.i32:
    # operand and out viewed as (outer, size, inner), updates as (outer, n_indices, inner):
    # out = operand; out[o, indices[j], i] += updates[o, j, i] for j = 0, 1, ... in order.
    # One thread owns each column (o, i) and adds serially, so repeated indices accumulate
    # deterministically and in NumPy's order (np.add.at), each sum rounded to the dtype.
    bad = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for c in range(n_columns):
        o = c // inner
        i = c % inner
        for a in range(size):
            out[(o * size + a) * inner + i] = operand[(o * size + a) * inner + i]
        for j in range(n_indices):
            k = ti.cast(indices[j], ti.i32)
            if k < 0:
                k += size
            if 0 <= k < size:
                p = (o * size + k) * inner + i
                store(out, p, load(out, p) + load(updates, (o * n_indices + j) * inner + i))
            else:
                bad += 1
    return bad


# ---- Host adapters ----
def _gather_meta(shape, strides):
    """``(div, shape, stride)`` per dimension after dropping length-1 dimensions and merging
    dimensions that are contiguous in the input."""
    dims = []
    for s, st in zip(shape, strides):
        if s == 1:
            continue
        if dims and dims[-1][1] == st * s:
            dims[-1] = (dims[-1][0] * s, st)
        else:
            dims.append((s, st))
    if not dims:
        dims = [(1, 0)]
    meta, div = [], 1
    for s, st in reversed(dims):
        meta[:0] = [div, s, st]
        div *= s
    return meta


def reshape(backend, op, x, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if -1 in shape:  # one inferred length, as NumPy's reshape
        known = math.prod(s for s in shape if s != -1)
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    return x.reshape(shape)  # a view: buffers are C-contiguous


def gather(backend, x, shape, offset, strides):
    """``out[i] = x[offset + sum_k index_k(i) * strides[k]]`` for ``out`` of ``shape``."""
    out_size = math.prod(shape)
    meta = _gather_meta(shape, strides)
    if offset == 0 and meta == [1, x.size, 1] and out_size == x.size:
        return x.reshape(shape)  # the elements in their order: share the buffer
    out = backend.empty(shape, x.dtype)
    if out_size:
        gather_kernel(
            backend.raw(x), backend.raw(out), backend.meta(meta), offset, backend.serial(out_size)
        )
    return out


def transpose(backend, op, x, axes):
    strides = contiguous_strides(x.shape)
    return gather(backend, x, tuple(x.shape[a] for a in axes), 0, [strides[a] for a in axes])


def broadcast_to(backend, op, x, shape):
    shape = tuple(int(s) for s in shape)
    lead = len(shape) - x.ndim
    in_strides = contiguous_strides(x.shape)
    strides = [0] * lead + [
        st if s == t else 0 for s, t, st in zip(x.shape, shape[lead:], in_strides)
    ]
    return gather(backend, x, shape, 0, strides)


def slice_(backend, op, x, index):
    in_strides = contiguous_strides(x.shape)
    shape, strides, offset = [], [], 0
    for (start, stop, step), st in zip(index, in_strides):
        length = len(range(start, stop, step))  # stop < 0 with step < 0: past the front
        shape.append(length)
        strides.append(step * st)
        offset += start * st if length else 0
    if 0 in shape:
        return backend.empty(tuple(shape), x.dtype)
    return gather(backend, x, tuple(shape), offset, strides)


def concatenate(backend, op, *xs, axis):
    first = xs[0]
    axis %= first.ndim
    total = sum(x.shape[axis] for x in xs)
    shape = first.shape[:axis] + (total,) + first.shape[axis + 1 :]
    out = backend.empty(shape, first.dtype)
    if not out.size:
        return out
    inner = math.prod(first.shape[axis + 1 :])
    offset, serial = 0, backend.serial(out.size)
    for x in xs:
        row = x.shape[axis] * inner
        if x.size:
            concatenate_kernel(backend.raw(x), backend.raw(out), row, total * inner, offset, serial)
        offset += row
    return out


def take(backend, op, x, indices, axis):
    axis %= x.ndim
    shape = x.shape[:axis] + tuple(indices.shape) + x.shape[axis + 1 :]
    out = backend.empty(shape, x.dtype)
    if out.size:
        size, inner = x.shape[axis], math.prod(x.shape[axis + 1 :])
        bad = take_kernel(
            backend.raw(x),
            backend.arg(indices),
            backend.raw(out),
            size,
            indices.size,
            inner,
            backend.serial(out.size),
        )
        _check_range(op, bad, axis, size, x.shape)
    return out


def scatter_add(backend, op, operand, indices, updates, axis):
    axis %= operand.ndim
    out = backend.empty(operand.shape, operand.dtype)
    if out.size:
        size, inner = operand.shape[axis], math.prod(operand.shape[axis + 1 :])
        bad = scatter_add_kernel(
            backend.arg(operand),
            backend.arg(indices),
            backend.arg(updates),
            backend.arg(out),
            operand.size // size,
            size,
            indices.size,
            inner,
            backend.serial(operand.size + updates.size),
        )
        _check_range(op, bad, axis, size, operand.shape)
    return out


def _check_range(op, bad, axis, size, shape):
    """Raise for the ``bad`` indices a gather or scatter kernel counted out of range."""
    if bad:
        raise ShapeError(
            f"{op.name}: {bad} indices out of range for axis {axis} of size {size} "
            f"(shape {shape}); indices must lie in [-{size}, {size})."
        )


MOVEMENT = {
    "reshape": reshape,
    "transpose": transpose,
    "broadcast_to": broadcast_to,
    "slice": slice_,
    "concatenate": concatenate,
}
INDEXING = {"take": take, "scatter_add": scatter_add}
