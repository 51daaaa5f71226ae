"""Convolution kernels of the linear-algebra family: ``conv2d`` and its two transposes
(``conv2d_input_grad``, ``conv2d_weight_grad``; the math is in :mod:`tfgrad.ops.conv`), their
host adapters and the table.

Direct loops: one task per output element, which walks its sum in a fixed order in one
accumulator of the compute dtype (f64 for f64, f32 for f32 and the halves), so a result does
not depend on the thread count. Arrays are flat and NCHW/OIHW; a tap that falls in the zero
padding is skipped rather than read. These kernels are the ``taichi-only`` and GPU path; on the
CPU the ``auto`` policy sends the linear-algebra family to BLAS (the reference backend's
im2col product), which is faster there (benchmarks/conv2d.py).
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import math

import taichi as ti

from ...errors import DtypeError, ShapeError
from .codec import compute_zero, load, store
from .creation import fill

# Indices are i32 in the kernels: operands of this many elements or more are refused.
INDEX_LIMIT = 1 << 31


@ti.func
def _dims(dims: ti.template()):
    """The 15 sizes (N, C, H, W, O (as CO), KH, KW, OH, OW, sh, sw, ph, pw, dh, dw) as i32."""
    return ti.Vector([ti.cast(dims[k], ti.i32) for k in ti.static(range(15))])


@ti.kernel
def conv2d_kernel(
    x: ti.types.ndarray(ndim=1),
    w: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    dims: ti.types.ndarray(ndim=1),
    serial: ti.template(),
):
    # y[n, o, i, j] = sum_{c, p, q} x[n, c, i*sh + p*dh - ph, j*sw + q*dw - pw] w[o, c, p, q]
    N, C, H, W, CO, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw = _dims(dims)
    zero = compute_zero(x)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for e in range(N * CO * OH * OW):
        j = e % OW
        i = e // OW % OH
        o = e // (OW * OH) % CO
        n = e // (OW * OH * CO)
        acc = zero
        for c in range(C):
            for p in range(KH):
                h = i * sh + p * dh - ph
                if h >= 0 and h < H:
                    row = ((n * C + c) * H + h) * W
                    taps = ((o * C + c) * KH + p) * KW
                    for q in range(KW):
                        v = j * sw + q * dw - pw
                        if v >= 0 and v < W:
                            acc += load(x, row + v) * load(w, taps + q)
        store(out, e, acc)


@ti.kernel
def conv2d_input_grad_kernel(
    g: ti.types.ndarray(ndim=1),
    w: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    dims: ti.types.ndarray(ndim=1),
    serial: ti.template(),
):
    # dx[n, c, h, v] = sum over o, p, q with h = i*sh + p*dh - ph, v = j*sw + q*dw - pw for
    # some output position (i, j) of g[n, o, i, j] w[o, c, p, q]
    N, C, H, W, CO, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw = _dims(dims)
    zero = compute_zero(g)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for e in range(N * C * H * W):
        v = e % W
        h = e // W % H
        c = e // (W * H) % C
        n = e // (W * H * C)
        acc = zero
        for o in range(CO):
            for p in range(KH):
                s = h + ph - p * dh  # = i * sh for the output row i that read h through tap p
                if s >= 0 and s % sh == 0 and s // sh < OH:
                    row = ((n * CO + o) * OH + s // sh) * OW
                    taps = ((o * C + c) * KH + p) * KW
                    for q in range(KW):
                        t = v + pw - q * dw
                        if t >= 0 and t % sw == 0 and t // sw < OW:
                            acc += load(g, row + t // sw) * load(w, taps + q)
        store(out, e, acc)


@ti.kernel
def conv2d_weight_grad_kernel(
    x: ti.types.ndarray(ndim=1),
    g: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    dims: ti.types.ndarray(ndim=1),
    serial: ti.template(),
):
    # dw[o, c, p, q] = sum_{n, i, j} x[n, c, i*sh + p*dh - ph, j*sw + q*dw - pw] g[n, o, i, j]
    N, C, H, W, CO, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw = _dims(dims)
    zero = compute_zero(x)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for e in range(CO * C * KH * KW):
        q = e % KW
        p = e // KW % KH
        c = e // (KW * KH) % C
        o = e // (KW * KH * C)
        acc = zero
        for n in range(N):
            for i in range(OH):
                h = i * sh + p * dh - ph
                if h >= 0 and h < H:
                    row = ((n * C + c) * H + h) * W
                    grads = ((n * CO + o) * OH + i) * OW
                    for j in range(OW):
                        v = j * sw + q * dw - pw
                        if v >= 0 and v < W:
                            acc += load(x, row + v) * load(g, grads + j)
        store(out, e, acc)


# ---- Host adapters ----
def _run(backend, name, kernel, a, b, out_shape, dims, terms):
    """``kernel`` on ``a`` and ``b`` into a new buffer of ``out_shape``; ``terms``: the
    multiply-adds of one output element."""
    if a.dtype != b.dtype:
        raise DtypeError(f"{name}: dtypes {a.dtype} and {b.dtype}; cast to one.")
    if max(a.size, b.size, math.prod(out_shape)) >= INDEX_LIMIT:
        raise ShapeError(
            f"{name}: shapes {a.shape} and {b.shape} are too large for the Taichi kernel's "
            f"32-bit indexing (limit {INDEX_LIMIT} elements)."
        )
    if a.size == 0 or b.size == 0:  # an empty sum: zeros (and Taichi takes no empty arrays)
        return fill(backend, out_shape, 0, a.dtype)
    out = backend.empty(out_shape, a.dtype)
    # a scalar multiply-add with its index arithmetic costs about an eighth of an element of a
    # memory-bound op, the serial threshold's unit (benchmarks/README.md, "Serial loops")
    serial = backend.serial(math.prod(out_shape) * terms // 8)
    kernel(backend.arg(a), backend.arg(b), backend.arg(out), backend.meta(dims), serial)
    return out


def _out_size(size, k, stride, padding, dilation):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv2d(backend, op, x, w, stride, padding, dilation):
    (n, c, h, wd), (o, c2, kh, kw) = x.shape, w.shape
    if c != c2:
        raise ShapeError(f"conv2d: x {x.shape} and w {w.shape} differ in channels.")
    oh = _out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = _out_size(wd, kw, stride[1], padding[1], dilation[1])
    dims = [n, c, h, wd, o, kh, kw, oh, ow, *stride, *padding, *dilation]
    return _run(backend, "conv2d", conv2d_kernel, x, w, (n, o, oh, ow), dims, c * kh * kw)


def conv2d_input_grad(backend, op, g, w, input_size, stride, padding, dilation):
    (n, o, oh, ow), (o2, c, kh, kw) = g.shape, w.shape
    if o != o2:
        raise ShapeError(f"conv2d_input_grad: g {g.shape} and w {w.shape} differ in channels.")
    h, wd = input_size
    dims = [n, c, h, wd, o, kh, kw, oh, ow, *stride, *padding, *dilation]
    terms = o * kh * kw // (stride[0] * stride[1]) + 1
    return _run(backend, "conv2d_input_grad", conv2d_input_grad_kernel, g, w, (n, c, h, wd), dims,
                terms)  # fmt: skip


def conv2d_weight_grad(backend, op, x, g, kernel_size, stride, padding, dilation):
    (n, c, h, wd), (n2, o, oh, ow) = x.shape, g.shape
    if n != n2:
        raise ShapeError(f"conv2d_weight_grad: x {x.shape} and g {g.shape} differ in images.")
    kh, kw = kernel_size
    dims = [n, c, h, wd, o, kh, kw, oh, ow, *stride, *padding, *dilation]
    return _run(backend, "conv2d_weight_grad", conv2d_weight_grad_kernel, x, g, (o, c, kh, kw),
                dims, n * oh * ow)  # fmt: skip


LINALG = {
    "conv2d": conv2d,
    "conv2d_input_grad": conv2d_input_grad,
    "conv2d_weight_grad": conv2d_weight_grad,
}
