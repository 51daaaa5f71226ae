"""Movement kernels: one rank-generic strided gather (transpose, broadcast_to, slice, and the
broadcasts of binary ops), concatenate, take and scatter_add.

Gathers and copies move elements as stored (on the CPU the backend passes raw unsigned views, so
one compiled kernel serves every dtype of a width). ``scatter_add`` computes, so it decodes.

Index metadata is computed on the host: ``meta`` holds ``(div_k, shape_k, stride_k)`` for each
output dimension ``k``, flat, as int64 (strides in elements of the flat input).
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import taichi as ti

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
