"""Convolution kernels of the linear-algebra family: ``conv2d`` and its two transposes
(``conv2d_input_grad``, ``conv2d_weight_grad``; the math is in :mod:`tfgrad.ops.conv`), their
host adapters and the table.

float32 and float64 run as products: ``im2col_kernel`` copies each output position's input
window into a column (zeros in the padding), the packed matmul kernel of :mod:`.linalg` does
the multiply-adds, and ``col2im_kernel`` (the input transpose) gathers the columns back onto the
input. float16 and bfloat16 run direct loops, one task per output element, so that they round
once. Every sum walks its terms in a fixed order in one accumulator of the compute dtype (f64
for f64, f32 otherwise): a result does not depend on the thread count. Arrays are flat and
NCHW/OIHW. These kernels are the ``taichi-only`` and GPU path; on the CPU the ``auto`` policy
sends the linear-algebra family to BLAS (the reference backend's im2col product), faster there
at the sizes measured (benchmarks/README.md, "Convolution").
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import math

import taichi as ti

from ...errors import DtypeError, ShapeError
from . import linalg
from .buffers import FLOAT32, FLOAT64
from .codec import compute_zero, load, store
from .creation import fill
from .movement import broadcast_to, transpose


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


@ti.kernel
def im2col_kernel(
    x: ti.types.ndarray(ndim=1),
    cols: ti.types.ndarray(ndim=1),
    dims: ti.types.ndarray(ndim=1),
    rows_first: ti.template(),
    serial: ti.template(),
):
    # cols[n, (c, p, q), (i, j)] (or cols[n, (i, j), (c, p, q)] with rows_first)
    #   = x[n, c, i*sh + p*dh - ph, j*sw + q*dw - pw], 0 in the padding (a move: no arithmetic)
    N, C, H, W, CO, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw = _dims(dims)
    K = C * KH * KW
    zero = ti.cast(0, cols.get_type().element_type)
    # one task per contiguous run of the output (its index divisions once per run, not per
    # element: a division costs more than the copy of an element)
    if ti.static(not rows_first):
        if ti.static(serial):
            ti.loop_config(serialize=True)
        for r in range(N * K * OH):  # the run (n, k, i): OW elements
            i = r % OH
            k = r // OH % K
            n = r // (OH * K)
            q, p, c = k % KW, k // KW % KH, k // (KW * KH)
            h = i * sh + p * dh - ph
            src = ((n * C + c) * H + h) * W
            for j in range(OW):
                v = j * sw + q * dw - pw
                if h >= 0 and h < H and v >= 0 and v < W:
                    cols[r * OW + j] = x[src + v]
                else:
                    cols[r * OW + j] = zero
    else:
        if ti.static(serial):
            ti.loop_config(serialize=True)
        for r in range(N * OH * OW):  # the run (n, i, j): K elements, (c, p, q) in order
            j = r % OW
            i = r // OW % OH
            n = r // (OW * OH)
            for c in range(C):
                for p in range(KH):
                    h = i * sh + p * dh - ph
                    src = ((n * C + c) * H + h) * W
                    dst = r * K + (c * KH + p) * KW
                    for q in range(KW):
                        v = j * sw + q * dw - pw
                        if h >= 0 and h < H and v >= 0 and v < W:
                            cols[dst + q] = x[src + v]
                        else:
                            cols[dst + q] = zero


@ti.kernel
def col2im_kernel(
    cols: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    dims: ti.types.ndarray(ndim=1),
    serial: ti.template(),
):
    # out[n, c, h, v] = sum over the taps (p, q) and output positions (i, j) that read (h, v)
    # of cols[n, (c, p, q), (i, j)]: the transpose of im2col, as a gather (no atomics)
    N, C, H, W, CO, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw = _dims(dims)
    K, P = C * KH * KW, OH * OW
    zero = compute_zero(cols)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for e in range(N * C * H * W):
        v = e % W
        h = e // W % H
        c = e // (W * H) % C
        n = e // (W * H * C)
        acc = zero
        for p in range(KH):
            s = h + ph - p * dh
            if s >= 0 and s % sh == 0 and s // sh < OH:
                for q in range(KW):
                    t = v + pw - q * dw
                    if t >= 0 and t % sw == 0 and t // sw < OW:
                        k = (c * KH + p) * KW + q
                        acc += load(cols, (n * K + k) * P + s // sh * OW + t // sw)
        store(out, e, acc)


# ---- Host adapters ----
# float32/float64 run as im2col + the packed matmul kernel of .linalg (its tiles are far faster
# than a direct loop's scalar multiply-adds); float16/bfloat16 run the direct kernels, which
# round once (a product through a half-precision column buffer would round twice).
IM2COL_DTYPES = (FLOAT32, FLOAT64)


def _checked(name, a, b, out_shape, scratch):
    """Whether the op has work (else its result is zeros); raise what the kernels cannot run."""
    if a.dtype != b.dtype:
        raise DtypeError(f"{name}: dtypes {a.dtype} and {b.dtype}; cast to one.")
    if max(a.size, b.size, math.prod(out_shape), scratch) >= linalg.INDEX_LIMIT:
        raise ShapeError(
            f"{name}: shapes {a.shape} and {b.shape} are too large for the Taichi kernels' "
            f"32-bit indexing (limit {linalg.INDEX_LIMIT} elements)."
        )
    return a.size > 0 and b.size > 0  # an empty sum is zeros (and Taichi takes no empty arrays)


def _direct(backend, kernel, a, b, out_shape, dims, terms):
    """``kernel`` on ``a`` and ``b`` into a new buffer of ``out_shape``; ``terms``: the
    multiply-adds of one output element."""
    out = backend.empty(out_shape, a.dtype)
    # a scalar multiply-add with its index arithmetic costs about an eighth of an element of a
    # memory-bound op, the serial threshold's unit (benchmarks/README.md, "Serial loops")
    serial = backend.serial(math.prod(out_shape) * terms // 8)
    kernel(backend.arg(a), backend.arg(b), backend.arg(out), backend.meta(dims), serial)
    return out


def _im2col(backend, x, dims, rows_first):
    n, c, kh, kw, oh, ow = dims[0], dims[1], dims[5], dims[6], dims[7], dims[8]
    k, p = c * kh * kw, oh * ow
    cols = backend.empty((n * p, k) if rows_first else (n, k, p), x.dtype)
    im2col_kernel(backend.arg(x), backend.arg(cols), backend.meta(dims), rows_first,
                  backend.serial(cols.size))  # fmt: skip
    return cols


def _sizes(n, c, h, wd, o, kh, kw, oh, ow, stride, padding, dilation):
    return [n, c, h, wd, o, kh, kw, oh, ow, *stride, *padding, *dilation]


def _out_size(size, k, stride, padding, dilation):
    return (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1


def conv2d(backend, op, x, w, stride, padding, dilation):
    (n, c, h, wd), (o, c2, kh, kw) = x.shape, w.shape
    if c != c2:
        raise ShapeError(f"conv2d: x {x.shape} and w {w.shape} differ in channels.")
    oh = _out_size(h, kh, stride[0], padding[0], dilation[0])
    ow = _out_size(wd, kw, stride[1], padding[1], dilation[1])
    dims = _sizes(n, c, h, wd, o, kh, kw, oh, ow, stride, padding, dilation)
    k, out_shape = c * kh * kw, (n, o, oh, ow)
    if not _checked("conv2d", x, w, out_shape, n * k * oh * ow + n * o * k):
        return fill(backend, out_shape, 0, x.dtype)
    if x.dtype not in IM2COL_DTYPES:
        return _direct(backend, conv2d_kernel, x, w, out_shape, dims, k)
    # y[n] = w (O, K) @ cols[n] (K, OH*OW): one batched product, w shared by the images
    cols = _im2col(backend, x, dims, rows_first=False)
    shared = broadcast_to(backend, None, w.reshape((1, o, k)), (n, o, k))
    return linalg.matmul(backend, None, shared, cols).reshape(out_shape)


def conv2d_input_grad(backend, op, g, w, input_size, stride, padding, dilation):
    (n, o, oh, ow), (o2, c, kh, kw) = g.shape, w.shape
    if o != o2:
        raise ShapeError(f"conv2d_input_grad: g {g.shape} and w {w.shape} differ in channels.")
    h, wd = input_size
    dims = _sizes(n, c, h, wd, o, kh, kw, oh, ow, stride, padding, dilation)
    k, out_shape = c * kh * kw, (n, c, h, wd)
    if not _checked("conv2d_input_grad", g, w, out_shape, n * k * oh * ow + n * k * o):
        return fill(backend, out_shape, 0, g.dtype)
    if g.dtype not in IM2COL_DTYPES:
        terms = o * kh * kw // (stride[0] * stride[1]) + 1
        return _direct(backend, conv2d_input_grad_kernel, g, w, out_shape, dims, terms)
    # cols[n] = wᵀ (K, O) @ g[n] (O, OH*OW), then each input element gathers the columns that
    # read it
    wt = transpose(backend, None, w.reshape((o, k)), (1, 0))
    shared = broadcast_to(backend, None, wt.reshape((1, k, o)), (n, k, o))
    cols = linalg.matmul(backend, None, shared, g.reshape((n, o, oh * ow)))
    out = backend.empty(out_shape, g.dtype)
    col2im_kernel(backend.arg(cols), backend.arg(out), backend.meta(dims),
                  backend.serial(out.size * kh * kw))  # fmt: skip
    return out


def conv2d_weight_grad(backend, op, x, g, kernel_size, stride, padding, dilation):
    (n, c, h, wd), (n2, o, oh, ow) = x.shape, g.shape
    if n != n2:
        raise ShapeError(f"conv2d_weight_grad: x {x.shape} and g {g.shape} differ in images.")
    kh, kw = kernel_size
    dims = _sizes(n, c, h, wd, o, kh, kw, oh, ow, stride, padding, dilation)
    k, out_shape = c * kh * kw, (o, c, kh, kw)
    if not _checked("conv2d_weight_grad", x, g, out_shape, n * oh * ow * k + g.size):
        return fill(backend, out_shape, 0, x.dtype)
    if x.dtype not in IM2COL_DTYPES:
        return _direct(backend, conv2d_weight_grad_kernel, x, g, out_shape, dims, n * oh * ow)
    # dw (O, K) = g (O, N*OH*OW) @ cols (N*OH*OW, K): one product over every image
    gt = transpose(backend, None, g.reshape((n, o, oh * ow)), (1, 0, 2))
    cols = _im2col(backend, x, dims, rows_first=True)
    return linalg.matmul(backend, None, gt.reshape((o, n * oh * ow)), cols).reshape(out_shape)


LINALG = {
    "conv2d": conv2d,
    "conv2d_input_grad": conv2d_input_grad,
    "conv2d_weight_grad": conv2d_weight_grad,
}
