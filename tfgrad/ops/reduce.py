"""Reductions (sum, max, prod) and the scan cumsum, with their rules; ``unbroadcast``."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ._common import as_tensor, normalize_axes
from .elementwise import equal, where
from .movement import broadcast_to, reshape

__all__ = ["sum", "max", "prod", "cumsum", "unbroadcast"]


def _keepdims_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _expand(g: Tensor, x: Tensor, axes, keepdims) -> Tensor:
    """A reduction's output (or cotangent) reshaped so it broadcasts against ``x``."""
    return g if keepdims else reshape(g, _keepdims_shape(x.shape, axes))


# ---- Sum ----
sum_p = Primitive("sum", linear=True)
sum_p.defvjp(lambda g, ans, x, axes, keepdims: broadcast_to(_expand(g, x, axes, keepdims), x.shape))
sum_p.defjvp(lambda t, ans, x, axes, keepdims: bind(sum_p, t, axes=axes, keepdims=keepdims))


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


max_p = Primitive("max")
max_p.defvjp(lambda g, ans, x, axes, keepdims: _expand(g, x, axes, keepdims)
             * _max_share(ans, x, axes, keepdims))  # fmt: skip
max_p.defjvp(lambda t, ans, x, axes, keepdims: bind(
    sum_p, t * _max_share(ans, x, axes, keepdims), axes=axes, keepdims=keepdims))  # fmt: skip


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


prod_p = Primitive("prod")
prod_p.defvjp(lambda g, ans, x, axes, keepdims: _expand(g, x, axes, keepdims)
              * _prod_others(ans, x, axes))  # fmt: skip
prod_p.defjvp(lambda t, ans, x, axes, keepdims: bind(
    sum_p, t * _prod_others(ans, x, axes), axes=axes, keepdims=keepdims))  # fmt: skip


def prod(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Product over ``axis``; the gradient is exact when elements are zero."""
    x = as_tensor(x)
    return bind(prod_p, x, axes=normalize_axes("prod", axis, x.ndim), keepdims=bool(keepdims))


# ---- Cumulative sum ----
cumsum_p = Primitive("cumsum", linear=True)
cumsum_p.defvjp(lambda g, ans, x, axis, reverse: bind(cumsum_p, g, axis=axis, reverse=not reverse))
cumsum_p.defjvp(lambda t, ans, x, axis, reverse: bind(cumsum_p, t, axis=axis, reverse=reverse))


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
