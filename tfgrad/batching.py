"""Batched JVP rules: forward mode for B tangents at once, over a recorded tape.

``GradientTape.push_tangents(tangents, batch=B)`` carries tangents with a leading batch axis: the
tangent of a value of shape ``S`` has shape ``(B, *S)``. Elementwise rules work unchanged on such
tangents once the tangent is aligned on the right (NumPy broadcasting aligns trailing axes); rules
that name axes, shapes or indices get a batched variant in :data:`BATCHED_JVPS` (axes moved by
one, a leading full slice, ``(B,) + shape``). A primitive with neither (a custom one from
:mod:`tfgrad.extend`) falls back to its own rules, once per batch element: correct, slower.
Everything is written in tfgrad ops, so batched tangents are differentiable again.

A rule is ``rule(tangents, ans, *primals, batch=B, **params)``; ``tangents[i]`` is input ``i``'s
batched tangent or ``None``. It returns the output's batched tangent (or ``None`` for zero). A
custom primitive gets a batched rule by an entry in :data:`BATCHED_JVPS`, or, if it is
elementwise (its JVP rules broadcast like NumPy), by joining :data:`ELEMENTWISE`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .ops import add, broadcast_to, cos, divide, multiply, power, reshape, sign, sin, stack
from .ops._common import cast_p
from .ops.elementwise import (
    _pow_dx,
    _pow_dy,
    abs_p,
    add_p,
    cos_p,
    div_p,
    exp_p,
    expm1_p,
    log1p_p,
    log_p,
    maximum_p,
    minimum_p,
    mul_p,
    neg_p,
    pow_p,
    sign_p,
    sin_p,
    sqrt_p,
    sub_p,
    tan_p,
    tanh_p,
    where_p,
)  # fmt: skip
from .ops.linalg import matmul_p
from .ops.movement import (
    broadcast_to_p,
    concatenate_p,
    reshape_p,
    scatter_add_p,
    slice_p,
    take_p,
    transpose_p,
)  # fmt: skip
from .ops.reduce import _max_share, _prod_others, cumsum_p, max_p, prod_p, sum_p
from .primitive import Primitive, Tracer, bind
from .tensor import Tensor, tensor, zeros

__all__ = ["BATCHED_JVPS", "ELEMENTWISE", "batched_jvp", "unbatched_jvp"]


def unbatched_jvp(prim: Primitive, tangents: list, ans: Tensor, primals: tuple, params: dict):
    """The output tangent of one application from its (unbatched) JVP rules, ``None`` if zero."""
    if prim.jvp_all is not None:
        return prim.jvp_all(tangents, ans, *primals, **params)
    out = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        term = prim.jvp_rule(i)(t, ans, *primals, **params)
        if term is not None:
            out = term if out is None else add(out, term)
    return out


def batched_jvp(prim: Primitive, tangents: list, ans: Tensor, primals: tuple, params: dict,
                batch: int) -> Tensor | None:  # fmt: skip
    """The output's batched tangent, exactly ``(batch, *ans.shape)``, or ``None`` for zero."""
    rule = BATCHED_JVPS.get(prim)
    if rule is not None:
        out = rule(tangents, ans, *primals, batch=batch, **params)
    elif prim in ELEMENTWISE:
        out = _elementwise(prim, tangents, ans, primals, params, batch)
    else:
        out = _loop(prim, tangents, ans, primals, params, batch)
    if out is None:
        return None
    full = (batch,) + ans.shape
    if out.shape != full:
        if out.ndim < len(full):  # a rule dropped size-1 axes: align on the right of the batch
            out = reshape(out, out.shape[:1] + (1,) * (len(full) - out.ndim) + out.shape[1:])
        out = broadcast_to(out, full)
    return out


# ---- Elementwise: the unbatched rules, with tangents aligned on the right ----
# The tangent of an input of lower rank than the output gets size-1 axes after the batch axis,
# so that broadcasting never pairs the batch axis with an axis of a primal.
ELEMENTWISE: set[Primitive] = {
    neg_p, exp_p, log_p, log1p_p, expm1_p, sin_p, cos_p, tan_p, tanh_p, sqrt_p, abs_p, sign_p,
    add_p, sub_p, mul_p, div_p, pow_p, maximum_p, minimum_p, where_p, cast_p,
}  # fmt: skip


def _align(tangents, ans, primals, batch) -> list:
    rank = len(ans.shape)
    aligned = []
    for t, p in zip(tangents, primals):
        if t is not None and len(p.shape) < rank:
            t = bind(reshape_p, t, shape=(batch,) + (1,) * (rank - len(p.shape)) + p.shape)
        aligned.append(t)
    return aligned


def _elementwise(prim, tangents, ans, primals, params, batch):
    return unbatched_jvp(prim, _align(tangents, ans, primals, batch), ans, primals, params)


# The hot elementwise rules again, op for op as in ops/elementwise.py (so the tangents are the
# same bit for bit), but binding the primitives directly: a (B, *S) tangent against an S-shaped
# primal misses the front ends' fast path, and their promotion and broadcast checks cost more
# than the op on small arrays. A dtype mismatch (a user's tangent) takes the front end.
def _times(a: Tensor, b: Tensor) -> Tensor:
    return bind(mul_p, a, b) if a._dtype is b._dtype else multiply(a, b)


def _over(a: Tensor, b: Tensor) -> Tensor:
    return bind(div_p, a, b) if a._dtype is b._dtype else divide(a, b)


def _plus(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    return bind(add_p, a, b) if a._dtype is b._dtype else add(a, b)


def _unary_rule(coefficient: Callable) -> Callable:
    # rule(t) = t * coefficient(ans, x)
    def rule(ts, ans, x, batch):
        return _times(ts[0], coefficient(ans, x))

    return rule


def _add(ts, ans, x, y, batch):
    t0, t1 = _align(ts, ans, (x, y), batch)
    return _plus(t0, t1)


def _sub(ts, ans, x, y, batch):
    t0, t1 = _align(ts, ans, (x, y), batch)
    return _plus(t0, None if t1 is None else bind(neg_p, t1))


def _mul(ts, ans, x, y, batch):
    t0, t1 = _align(ts, ans, (x, y), batch)
    return _plus(None if t0 is None else _times(t0, y), None if t1 is None else _times(x, t1))


def _div(ts, ans, x, y, batch):
    t0, t1 = _align(ts, ans, (x, y), batch)
    dy = None if t1 is None else _over(_times(bind(neg_p, t1), ans), y)
    return _plus(None if t0 is None else _over(t0, y), dy)


def _scalar_value(v: Tensor) -> Any:
    """A concrete 0-d tensor's value, else None. A tracer's value is not read: it must keep its
    derivatives (or, staged by jit, stay an input of the program)."""
    return None if len(v.shape) or isinstance(v, Tracer) else v.item()


def _pow(ts, ans, x, y, batch):
    t0, t1 = _align(ts, ans, (x, y), batch)
    dx = None
    if t0 is not None:
        # For a concrete exponent (x ** 2, and the x ** 1 its derivative records) _pow_dx's
        # y == 0 test is decided here, which leaves y * x ** (y - 1): 1 for y = 1 (x ** 0 is 1,
        # even for NaN), so the tangent itself, and y * x for y = 2 (x ** 1 is x).
        e = _scalar_value(y)
        if e == 1.0 and t0._dtype is y._dtype:
            dx = t0
        elif e == 2.0:
            dx = _times(t0, _times(y, x))
        elif e is not None and e != 0.0:
            dx = _times(t0, y * power(x, y - 1))
        else:
            dx = _times(t0, _pow_dx(x, y))
    return _plus(dx, None if t1 is None else _times(t1, _pow_dy(x, ans)))


def _where(ts, ans, c, x, y, batch):
    _, t1, t2 = _align(ts, ans, (c, x, y), batch)
    pick = None if t1 is not None and t2 is not None else _scalar_value(c)
    if pick is not None:  # one branch for every element: that tangent, or zeros
        chosen = t1 if pick else t2
        if chosen is not None:
            return chosen
        dtype = (t2 if pick else t1)._dtype
        return zeros((batch,) + ans.shape, dtype)
    zero = None if t1 is None else tensor(0.0, t1._dtype)
    picked = None if t1 is None else bind(where_p, c, t1, zero)
    if t2 is not None:
        if zero is None or zero._dtype is not t2._dtype:
            zero = tensor(0.0, t2._dtype)
        picked = _plus(picked, bind(where_p, c, zero, t2))
    return picked


def _cos(ts, ans, x, batch):
    return _times(bind(neg_p, ts[0]), sin(x))


def _sqrt(ts, ans, x, batch):
    return _over(multiply(ts[0], 0.5), ans)


def _neg(ts, ans, x, batch):
    return bind(neg_p, ts[0])


# ---- The fallback: the primitive's own rules, once per batch element ----
def _loop(prim, tangents, ans, primals, params, batch):
    if batch == 0:
        return zeros((0,) + ans.shape, ans.dtype)
    columns = []
    for b in range(batch):
        ts = [None if t is None else t[b] for t in tangents]
        out = unbatched_jvp(prim, ts, ans, primals, params)
        columns.append(out if out is None or out.shape == ans.shape
                       else broadcast_to(out, ans.shape))  # fmt: skip
    if all(c is None for c in columns):
        return None
    return stack([zeros(ans.shape, ans.dtype) if c is None else c for c in columns])


# ---- Rules that name axes, shapes or indices ----
def _shift(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a + 1 for a in axes)


def _only(tangents: list) -> Tensor:
    return tangents[0]


def _reshape(ts, ans, x, shape, batch):
    return bind(reshape_p, _only(ts), shape=(batch,) + tuple(shape))


def _transpose(ts, ans, x, axes, batch):
    return bind(transpose_p, _only(ts), axes=(0,) + _shift(axes))


def _broadcast_to(ts, ans, x, shape, batch):
    t = _only(ts)
    new = len(shape) - len(x.shape)
    if new:
        t = bind(reshape_p, t, shape=(batch,) + (1,) * new + x.shape)
    return broadcast_to(t, (batch,) + tuple(shape))


def _slice(ts, ans, x, index, batch):
    return bind(slice_p, _only(ts), index=((0, batch, 1),) + tuple(index))


def _concatenate(ts, ans, *xs, axis, batch):
    parts = [t if t is not None else zeros((batch,) + x.shape, x.dtype) for t, x in zip(ts, xs)]
    return bind(concatenate_p, *parts, axis=axis + 1)


def _take(ts, ans, x, idx, axis, batch):
    return bind(take_p, _only(ts), idx, axis=axis + 1)


def _scatter_add(ts, ans, operand, idx, updates, axis, batch):
    out = ts[0]
    if ts[2] is not None:
        term = _scatter_into_zeros(ts[2], idx, operand.shape, axis, batch)
        out = term if out is None else _plus(out, term)
    return out


def _scatter_into_zeros(t, idx, shape, axis, batch):
    # scatter_add(zeros((B, *shape)), idx, t, axis + 1). Where idx is a run of consecutive
    # positions (what the derivative of a slice scatters), that is t between two blocks of
    # zeros: a concatenation, cheaper than a scatter kernel or NumPy's add.at. t + 0.0 is what
    # the scatter computes (0.0 + t), so -0.0 becomes 0.0 there too.
    start = _run_start(idx)
    if start is None:
        return bind(scatter_add_p, zeros((batch,) + shape, t._dtype), idx, t, axis=axis + 1)
    t = bind(add_p, t, tensor(0.0, t._dtype))
    parts, after = [], shape[axis] - start - idx.shape[0]
    for size in (start, None, after):
        if size is None:
            parts.append(t)
        elif size:
            parts.append(zeros((batch,) + shape[:axis] + (size,) + shape[axis + 1 :], t._dtype))
    return t if len(parts) == 1 else bind(concatenate_p, *parts, axis=axis + 1)


def _run_start(idx: Tensor) -> int | None:
    """``a`` if the indices are ``a, a + 1, ..., a + n - 1`` (n >= 1), else None. A tracer's
    values are not read (a staged program must not depend on them)."""
    if isinstance(idx, Tracer) or len(idx.shape) != 1 or not idx.shape[0]:
        return None
    positions = idx.numpy()
    start = int(positions[0])
    if start < 0:  # a negative index counts from the end: not a plain run
        return None
    if int(positions[-1]) - start != len(positions) - 1:
        return None
    return start if np.array_equal(positions, np.arange(start, start + len(positions))) else None


def _sum(ts, ans, x, axes, keepdims, batch):
    return bind(sum_p, _only(ts), axes=_shift(axes), keepdims=keepdims)


def _max(ts, ans, x, axes, keepdims, batch):
    share = _max_share(ans, x, axes, keepdims)
    return bind(sum_p, _only(ts) * share, axes=_shift(axes), keepdims=keepdims)


def _prod(ts, ans, x, axes, keepdims, batch):
    others = _prod_others(ans, x, axes)
    return bind(sum_p, _only(ts) * others, axes=_shift(axes), keepdims=keepdims)


def _cumsum(ts, ans, x, axis, reverse, batch):
    return bind(cumsum_p, _only(ts), axis=axis + 1, reverse=reverse)


def _matmul(ts, ans, a, b, batch):
    # One matmul for the whole batch: the batch axis joins the rows of a's tangent (or the
    # columns of b's), so the product runs as one large GEMM rather than B small ones.
    lead = len(a.shape) - 2  # a and b share these batch dimensions
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    front = a.shape[:-2]
    out = None
    if ts[0] is not None:  # (B, ..., m, k) @ (..., k, n)
        t = ts[0]
        if lead:
            t = bind(transpose_p, t, axes=tuple(range(1, lead + 1)) + (0, lead + 1, lead + 2))
        prod = bind(matmul_p, bind(reshape_p, t, shape=front + (batch * m, k)), b)
        prod = bind(reshape_p, prod, shape=front + (batch, m, n))
        if lead:
            prod = bind(transpose_p, prod, axes=(lead,) + tuple(range(lead)) + (lead + 1, lead + 2))
        out = prod
    if ts[1] is not None:  # (..., m, k) @ (B, ..., k, n)
        axes = tuple(range(1, lead + 1)) + (lead + 1, 0, lead + 2)
        t = bind(transpose_p, ts[1], axes=axes)  # (..., k, B, n)
        prod = bind(matmul_p, a, bind(reshape_p, t, shape=front + (k, batch * n)))
        prod = bind(reshape_p, prod, shape=front + (m, batch, n))
        axes = (lead + 1,) + tuple(range(lead)) + (lead, lead + 2)
        prod = bind(transpose_p, prod, axes=axes)  # (B, ..., m, n)
        out = prod if out is None else add(out, prod)
    return out


BATCHED_JVPS: dict[Primitive, Callable[..., Tensor | None]] = {
    neg_p: _neg,
    add_p: _add,
    sub_p: _sub,
    mul_p: _mul,
    div_p: _div,
    pow_p: _pow,
    where_p: _where,
    exp_p: _unary_rule(lambda ans, x: ans),
    expm1_p: _unary_rule(lambda ans, x: ans + 1),
    sin_p: _unary_rule(lambda ans, x: cos(x)),
    cos_p: _cos,
    tan_p: _unary_rule(lambda ans, x: 1 + ans * ans),
    tanh_p: _unary_rule(lambda ans, x: 1 - ans * ans),
    sqrt_p: _sqrt,
    abs_p: _unary_rule(lambda ans, x: sign(x)),
    log_p: lambda ts, ans, x, batch: _over(ts[0], x),
    log1p_p: lambda ts, ans, x, batch: _over(ts[0], 1 + x),
    reshape_p: _reshape,
    transpose_p: _transpose,
    broadcast_to_p: _broadcast_to,
    slice_p: _slice,
    concatenate_p: _concatenate,
    take_p: _take,
    scatter_add_p: _scatter_add,
    sum_p: _sum,
    max_p: _max,
    prod_p: _prod,
    cumsum_p: _cumsum,
    matmul_p: _matmul,
}
