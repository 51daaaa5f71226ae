"""Reductions (sum, max, prod), the scans (cumsum, cumprod, linear_recurrence), and
broadcast_to, with their rules; ``unbroadcast``.

``broadcast_to`` lives here, beside ``sum``: each is the other's transpose (a broadcast's VJP
sums the broadcast axes away, a sum's VJP broadcasts), so keeping the pair in one module lets
neither this module nor :mod:`.movement` import the other.

``prod``'s derivatives are exact to every order, with any number of zeros: its rules use the
product of all *other* elements, the exclusive prefix product times the exclusive suffix product
(``cumprod(..., exclusive=True)`` both ways), never a division. ``cumprod``'s own rules are
first-order linear recurrences (``linear_recurrence``), whose rules are linear recurrences
again, so the set is closed under differentiation. Exclusive scans (each result leaves its own
element out) make these rules free of shifts.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..backends.base import MOVEMENT, REDUCTION
from ..errors import ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ._common import as_tensor, broadcast_shapes, normalize_axes, promote_args
from .elementwise import add, equal
from .movement import reshape, reshape_p, transpose

__all__ = [
    "sum", "max", "prod", "cumsum", "cumprod", "linear_recurrence", "broadcast_to",
    "unbroadcast",
]  # fmt: skip


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
def _prod_others(x, axes):
    # For each element, the product of all *other* elements of its reduction: the reduced axes
    # become one (moved last, flattened), along which it is the exclusive prefix product times
    # the exclusive suffix product. No division, so it is exact with any number of zeros, and
    # so are its derivatives of every order (cumprod's rules are exact too).
    kept = tuple(k for k in range(x.ndim) if k not in axes)
    moved = transpose(x, kept + axes)
    axis = len(kept)
    flat = reshape(moved, moved.shape[:axis] + (math.prod(moved.shape[axis:]),))
    before = bind(cumprod_p, flat, axis=axis, reverse=False, exclusive=True)
    after = bind(cumprod_p, flat, axis=axis, reverse=True, exclusive=True)
    return transpose(reshape(before * after, moved.shape), tuple(np.argsort(kept + axes)))


def prod_vjp(g, ans, x, axes, keepdims):
    return _expand(g, x, axes, keepdims) * _prod_others(x, axes)


def prod_jvp(t, ans, x, axes, keepdims):
    return bind(sum_p, t * _prod_others(x, axes), axes=axes, keepdims=keepdims)


def prod_batched_jvp(ts, ans, x, axes, keepdims, batch):
    others = _prod_others(x, axes)
    return bind(sum_p, ts[0] * others, axes=_shift(axes), keepdims=keepdims)


prod_p = Primitive("prod", 1, family=REDUCTION)
prod_p.defvjp(prod_vjp)
prod_p.defjvp(prod_jvp)
prod_p.def_batched_jvp(prod_batched_jvp)


def prod(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Product over ``axis`` (all axes by default), as ``numpy.prod``; bools count as int64.

    Its derivatives are exact to every order, also where elements are zero:
    d prod / d x_i = prod_{k != i} x_k, and d^2 prod / d x_i d x_j = prod_{k != i, j} x_k for
    i != j, computed from prefix and suffix products (never prod / x_i).

    >>> import tfgrad as tg
    >>> tg.hessian(tg.prod)(tg.tensor([0.0, 0.0, 3.0])).numpy()
    array([[0., 3., 0.],
           [3., 0., 0.],
           [0., 0., 0.]])
    """
    x = as_tensor(x)
    if x.dtype.kind == "b":
        x = x.astype("int64")
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
    """Running sum along ``axis`` (over the flattened tensor when None), as ``numpy.cumsum``;
    bools count as int64."""
    x = as_tensor(x)
    if x.dtype.kind == "b":
        x = x.astype("int64")
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    (axis,) = normalize_axes("cumsum", axis, x.ndim) or (0,)
    if x.ndim == 0:
        x = reshape(x, (1,))
    return bind(cumsum_p, x, axis=axis, reverse=bool(reverse))


# ---- Cumulative product ----
def _exclusive_tangent(t, e, x, axis, reverse, batch):
    # e_i = prod_{k < i} x_k = x_{i-1} e_{i-1}, so de_i = x_{i-1} de_{i-1} + dx_{i-1} e_{i-1}:
    # an exclusive linear recurrence with coefficients x (the same for a batch of tangents).
    return bind(linear_recurrence_p, x, t * e, axis=axis + (batch is not None), reverse=reverse)


def _cumprod_tangent(t, ans, x, axis, reverse, exclusive, batch=None):
    if exclusive:
        return _exclusive_tangent(t, ans, x, axis, reverse, batch)
    e = bind(cumprod_p, x, axis=axis, reverse=reverse, exclusive=True)  # ans = e * x
    return _exclusive_tangent(t, e, x, axis, reverse, batch) * x + e * t


def cumprod_vjp(g, ans, x, axis, reverse, exclusive):
    # d e_i / d x_j = e_j prod_{j < k < i} x_k for j < i, so the cotangent of x_j is
    # e_j sum_{i > j} g_i prod_{j < k < i} x_k: an exclusive recurrence run the other way. The
    # inclusive product is e * x. No division anywhere.
    if exclusive:
        return ans * bind(linear_recurrence_p, x, g, axis=axis, reverse=not reverse)
    e = bind(cumprod_p, x, axis=axis, reverse=reverse, exclusive=True)
    return e * (g + bind(linear_recurrence_p, x, g * x, axis=axis, reverse=not reverse))


def cumprod_jvp(t, ans, x, axis, reverse, exclusive):
    return _cumprod_tangent(t, ans, x, axis, reverse, exclusive)


def cumprod_batched_jvp(ts, ans, x, axis, reverse, exclusive, batch):
    return _cumprod_tangent(ts[0], ans, x, axis, reverse, exclusive, batch)


cumprod_p = Primitive("cumprod", 1, family=REDUCTION)
cumprod_p.defvjp(cumprod_vjp)
cumprod_p.defjvp(cumprod_jvp)
cumprod_p.def_batched_jvp(cumprod_batched_jvp)


def cumprod(
    x: Any, axis: int | None = None, reverse: bool = False, exclusive: bool = False
) -> Tensor:
    """Running product along ``axis`` (over the flattened tensor when None), as
    ``numpy.cumprod``: y_i = prod_{k <= i} x_k. ``reverse`` runs from the end
    (y_i = prod_{k >= i} x_k); ``exclusive`` leaves each element out of its own product
    (y_i = prod_{k < i} x_k, 1 first), as in TensorFlow. Bools count as int64.

    Its derivatives are exact to every order, zeros included: they are linear recurrences
    (:func:`linear_recurrence`), never divisions by x.

    >>> import tfgrad as tg
    >>> tg.cumprod(tg.tensor([1.0, 2.0, 3.0, 4.0])).numpy()
    array([ 1.,  2.,  6., 24.])
    >>> tg.cumprod(tg.tensor([1.0, 2.0, 3.0, 4.0]), reverse=True, exclusive=True).numpy()
    array([24., 12.,  4.,  1.])
    >>> tg.grad(lambda x: tg.sum(tg.cumprod(x)))(tg.tensor([2.0, 0.0, 5.0])).numpy()
    array([ 1., 12.,  0.])
    """
    x = as_tensor(x)
    if x.dtype.kind == "b":
        x = x.astype("int64")
    if axis is None:
        x = reshape(x, (-1,))
        axis = 0
    (axis,) = normalize_axes("cumprod", axis, x.ndim) or (0,)
    if x.ndim == 0:
        x = reshape(x, (1,))
    return bind(cumprod_p, x, axis=axis, reverse=bool(reverse), exclusive=bool(exclusive))


# ---- Linear recurrence ----
def linear_recurrence_vjp(g, h, a, b, axis, reverse):
    # h_i = sum_{s < i} b_s prod_{s < k < i} a_k, so the cotangent of b_s is
    # l_s = sum_{i > s} g_i prod_{s < k < i} a_k, the same recurrence run the other way, and
    # that of a_s (which multiplies h_s on the way to h_{s+1}) is l_s h_s.
    adjoint = bind(linear_recurrence_p, a, g, axis=axis, reverse=not reverse)
    return adjoint * h, adjoint


def _recurrence_tangent(ts, h, a, axis, reverse, batch=None):
    # dh_i = a_{i-1} dh_{i-1} + (da_{i-1} h_{i-1} + db_{i-1}): the same recurrence (the same
    # coefficients for a batch of tangents) with b replaced by da * h + db.
    ta, tb = ts
    if ta is not None and batch is not None and a.ndim < h.ndim:  # keep the batch axis first
        ta = reshape(ta, (batch,) + (1,) * (h.ndim - a.ndim) + a.shape)
    terms = [t for t in (None if ta is None else ta * h, tb) if t is not None]
    if not terms:
        return None
    b = terms[0] if len(terms) == 1 else add(terms[0], terms[1])
    return bind(linear_recurrence_p, a, b, axis=axis + (batch is not None), reverse=reverse)


def linear_recurrence_jvp(ts, h, a, b, axis, reverse):
    return _recurrence_tangent(ts, h, a, axis, reverse)


def linear_recurrence_batched_jvp(ts, h, a, b, axis, reverse, batch):
    return _recurrence_tangent(ts, h, a, axis, reverse, batch)


# a has b's shape, or that of b's trailing axes (the same coefficients for every index of the
# leading ones, as for a batch of tangents; the tape sums a's cotangent over them); the front
# end broadcasts both. Linear in b, not in a.
linear_recurrence_p = Primitive("linear_recurrence", 2, family=REDUCTION)
linear_recurrence_p.vjp_all = linear_recurrence_vjp
linear_recurrence_p.jvp_all = linear_recurrence_jvp
linear_recurrence_p.def_batched_jvp(linear_recurrence_batched_jvp)


def linear_recurrence(a: Any, b: Any, axis: int = 0, reverse: bool = False) -> Tensor:
    """The exclusive first-order linear recurrence along ``axis``: h_0 = 0 and
    h_i = a_{i-1} h_{i-1} + b_{i-1}, that is h_i = sum_{s < i} b_s prod_{s < k < i} a_k (each
    h_i is the state before step i of h <- a h + b); from the end when ``reverse``
    (h_i = a_{i+1} h_{i+1} + b_{i+1}). ``a`` and ``b`` broadcast together and are floating.

    The derivatives of :func:`cumprod` (so of ``prod``) are recurrences of this kind, and so are
    its own: exact to every order. An exclusive cumsum is the case a = 1.

    >>> import tfgrad as tg
    >>> a, b = tg.tensor([0.5, 2.0, 3.0, 4.0]), tg.tensor([1.0, 1.0, 1.0, 1.0])
    >>> tg.ops.linear_recurrence(a, b).numpy()
    array([ 0.,  1.,  3., 10.])
    """
    a, b = promote_args("linear_recurrence", a, b, floating=True)
    shape = broadcast_shapes("linear_recurrence", a.shape, b.shape)
    if not shape:
        raise ShapeError(
            "linear_recurrence: a and b are 0-d; the recurrence runs along an axis, so give "
            "them at least one dimension (reshape to (1,))."
        )
    (axis,) = normalize_axes("linear_recurrence", axis, len(shape))
    a, b = broadcast_to(a, shape), broadcast_to(b, shape)
    return bind(linear_recurrence_p, a, b, axis=axis, reverse=bool(reverse))
