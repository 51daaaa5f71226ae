"""Reductions (sum, max, prod), the scan cumsum, and broadcast_to, with their rules;
``unbroadcast``.

``broadcast_to`` lives here, beside ``sum``: each is the other's transpose (a broadcast's VJP
sums the broadcast axes away, a sum's VJP broadcasts), so keeping the pair in one module lets
neither this module nor :mod:`.movement` import the other.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backends.base import MOVEMENT, REDUCTION
from ..errors import ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ._common import as_tensor, normalize_axes
from .elementwise import equal, where
from .movement import reshape, reshape_p

__all__ = ["sum", "max", "prod", "cumsum", "broadcast_to", "unbroadcast"]


def _keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand(g: Tensor, x: Tensor, axes, keepdims) -> Tensor:
    """A reduction's output (or cotangent) reshaped so it broadcasts against ``x``."""
    return g if keepdims else reshape(g, _keepdims_shape(x.shape, axes))


def _shift(axes: tuple[int, ...]) -> tuple[int, ...]:
    """Axes of a primal as axes of its batched tangent (batch axis first)."""
    return tuple(a + 1 for a in axes)


# ---- Broadcast ----
def broadcast_to_vjp(g, ans, x, shape):
    return unbroadcast(g, x.shape)


def broadcast_to_batched_jvp(ts, ans, x, shape, batch):
    t = ts[0]
    new = len(shape) - len(x.shape)
    if new:
        t = bind(reshape_p, t, shape=(batch,) + (1,) * new + x.shape)
    return broadcast_to(t, (batch,) + tuple(shape))


broadcast_to_p = Primitive("broadcast_to", 1, family=MOVEMENT, linear=True)
broadcast_to_p.defvjp(broadcast_to_vjp)
broadcast_to_p.def_batched_jvp(broadcast_to_batched_jvp)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """``x`` repeated along new or size-1 axes to ``shape`` (NumPy broadcasting rules)."""
    x = as_tensor(x)
    shape = tuple(int(s) for s in shape)
    try:
        if tuple(np.broadcast_shapes(x.shape, shape)) != shape:
            raise ValueError
    except ValueError:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}.") from None
    return x if x.shape == shape else bind(broadcast_to_p, x, shape=shape)


# ---- Sum ----
def sum_vjp(g, ans, x, axes, keepdims):
    return broadcast_to(_expand(g, x, axes, keepdims), x.shape)


def sum_batched_jvp(ts, ans, x, axes, keepdims, batch):
    return bind(sum_p, ts[0], axes=_shift(axes), keepdims=keepdims)


sum_p = Primitive("sum", 1, family=REDUCTION, linear=True)
sum_p.defvjp(sum_vjp)
sum_p.def_batched_jvp(sum_batched_jvp)


def sum(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Sum over ``axis`` (all axes by default), as ``numpy.sum``; bools count as int64."""
    x = as_tensor(x)
    if x.dtype.kind == "b":
        x = x.astype("int64")
    return bind(sum_p, x, axes=normalize_axes("sum", axis, x.ndim), keepdims=bool(keepdims))


def unbroadcast(g: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``g`` down to ``shape``: the adjoint of broadcasting ``shape`` to ``g.shape``.

    The only place where broadcast axes are summed away (the tape calls it for every input).
    """
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    out = bind(sum_p, g, axes=axes, keepdims=False) if axes else g
    return reshape(out, shape) if out.shape != shape else out


# ---- Max ----
def _max_share(ans, x, axes, keepdims):
    # Each maximal element gets an equal share (ties split the cotangent evenly).
    hit = equal(x, _expand(ans, x, axes, keepdims)).astype(x.dtype)
    return hit / bind(sum_p, hit, axes=axes, keepdims=True)


def max_vjp(g, ans, x, axes, keepdims):
    return _expand(g, x, axes, keepdims) * _max_share(ans, x, axes, keepdims)


def max_jvp(t, ans, x, axes, keepdims):
    return bind(sum_p, t * _max_share(ans, x, axes, keepdims), axes=axes, keepdims=keepdims)


def max_batched_jvp(ts, ans, x, axes, keepdims, batch):
    share = _max_share(ans, x, axes, keepdims)
    return bind(sum_p, ts[0] * share, axes=_shift(axes), keepdims=keepdims)


max_p = Primitive("max", 1, family=REDUCTION)
max_p.defvjp(max_vjp)
max_p.defjvp(max_jvp)
max_p.def_batched_jvp(max_batched_jvp)


def max(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Largest element over ``axis``; ties share the gradient equally."""
    x = as_tensor(x)
    axes = normalize_axes("max", axis, x.ndim)
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(
            f"max: cannot reduce a zero-size axis (shape {x.shape}, axis {axis}); "
            "the maximum of nothing is undefined."
        )
    return bind(max_p, x, axes=axes, keepdims=bool(keepdims))


# ---- Prod ----
def _prod_others(ans, x, axes):
    # The product of all *other* elements, exact with zeros present, written so that its own
    # derivative is exact too (second order): no zero -> prod / x; one zero z ->
    # prod(rest) at z and x_z * prod(rest) / x elsewhere (x_z is 0 but carries a derivative).
    # NOTE: with two or more zeros the value (0) and first derivative are exact, the second
    # derivative is not.
    is_zero = equal(x, 0)
    zeros = bind(sum_p, is_zero.astype(x.dtype), axes=axes, keepdims=True)
    x_safe = where(is_zero, 1.0, x)
    p_safe = bind(prod_p, x_safe, axes=axes, keepdims=True)
    x_zero = bind(sum_p, where(is_zero, x, 0.0), axes=axes, keepdims=True)
    one_zero = where(is_zero, p_safe, x_zero * p_safe / x_safe)
    return where(equal(zeros, 0), p_safe / x_safe, where(equal(zeros, 1), one_zero, 0.0))


def prod_vjp(g, ans, x, axes, keepdims):
    return _expand(g, x, axes, keepdims) * _prod_others(ans, x, axes)


def prod_jvp(t, ans, x, axes, keepdims):
    return bind(sum_p, t * _prod_others(ans, x, axes), axes=axes, keepdims=keepdims)


def prod_batched_jvp(ts, ans, x, axes, keepdims, batch):
    others = _prod_others(ans, x, axes)
    return bind(sum_p, ts[0] * others, axes=_shift(axes), keepdims=keepdims)


prod_p = Primitive("prod", 1, family=REDUCTION)
prod_p.defvjp(prod_vjp)
prod_p.defjvp(prod_jvp)
prod_p.def_batched_jvp(prod_batched_jvp)


def prod(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``; the gradient is exact when elements are zero."""
    x = as_tensor(x)
    return bind(prod_p, x, axes=normalize_axes("prod", axis, x.ndim), keepdims=bool(keepdims))


# ---- Cumulative sum ----
def cumsum_vjp(g, ans, x, axis, reverse):
    return bind(cumsum_p, g, axis=axis, reverse=not reverse)


def cumsum_batched_jvp(ts, ans, x, axis, reverse, batch):
    return bind(cumsum_p, ts[0], axis=axis + 1, reverse=reverse)


cumsum_p = Primitive("cumsum", 1, family=REDUCTION, linear=True)
cumsum_p.defvjp(cumsum_vjp)
cumsum_p.def_batched_jvp(cumsum_batched_jvp)


def cumsum(x: Any, axis: int | None = None, reverse: bool = False) -> Tensor:
    """Running sum along ``axis`` (over the flattened tensor when None), as ``numpy.cumsum``."""
    x = as_tensor(x)
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    (axis,) = normalize_axes("cumsum", axis, x.ndim) or (0,)
    if x.ndim == 0:
        x = reshape(x, (1,))
    return bind(cumsum_p, x, axis=axis, reverse=bool(reverse))
