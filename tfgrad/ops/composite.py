"""Ops composed from primitives: no rules of their own, so their derivatives (of every order)
come from the primitives they are made of. Each is written to be numerically stable."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ShapeError
from ..primitive import strip_derivatives
from ..tensor import Tensor
from ._common import as_tensor, astype, broadcast_shapes, normalize_axes, promote_args, to_float
from .creation import arange
from .elementwise import (
    abs,
    equal,
    exp,
    greater,
    log,
    log1p,
    maximum,
    minimum,
    multiply,
    not_equal,
    subtract,
    tanh,
    where,
)  # fmt: skip
from .movement import reshape, squeeze
from .reduce import broadcast_to, max, sum

__all__ = [
    "square", "relu", "sigmoid", "softplus", "clip", "mean", "var", "min", "logsumexp",
    "softmax", "log_softmax", "stop_gradient", "all", "any", "linspace",
]  # fmt: skip


def stop_gradient(x: Any) -> Tensor:
    """``x`` as a constant: no derivative flows through it, in any mode or order."""
    return strip_derivatives(as_tensor(x))


def square(x: Any) -> Tensor:
    """x * x."""
    x = as_tensor(x)
    return multiply(x, x)


def relu(x: Any) -> Tensor:
    """max(x, 0); its derivative at 0 is 0."""
    x = to_float(x, "relu")
    return where(greater(x, 0), x, 0.0)


def sigmoid(x: Any) -> Tensor:
    """1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    x = to_float(x, "sigmoid")
    return 0.5 * (tanh(0.5 * x) + 1.0)


def softplus(x: Any) -> Tensor:
    """``log(1 + e^x)``, computed as ``max(x, 0) + log1p(e^-|x|)``, which never overflows."""
    x = to_float(x, "softplus")
    return maximum(x, 0.0) + log1p(exp(-abs(x)))


def clip(x: Any, lo: Any = None, hi: Any = None) -> Tensor:
    """``x`` limited to ``[lo, hi]`` (either bound may be None)."""
    out = as_tensor(x)
    if lo is not None:
        out = maximum(out, lo)
    if hi is not None:
        out = minimum(out, hi)
    return out


def mean(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis``."""
    x = to_float(x, "mean")
    axes = normalize_axes("mean", axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    return sum(x, axes, keepdims) / count


def var(x: Any, axis=None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis`` (two-pass: mean first, then squared deviations)."""
    x = to_float(x, "var")
    axes = normalize_axes("var", axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    deviation = subtract(x, mean(x, axes, keepdims=True))
    return sum(deviation * deviation, axes, keepdims) / (count - ddof)


def min(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Smallest element over ``axis``; ties share the gradient equally."""
    x = as_tensor(x)
    axes = normalize_axes("min", axis, x.ndim)  # checked before -x is recorded on a tape
    if 0 in (x.shape[a] for a in axes):  # (the builtin any is shadowed here)
        raise ShapeError(
            f"min: cannot reduce a zero-size axis (shape {x.shape}, axis {axis}); "
            "the minimum of nothing is undefined."
        )
    if x.dtype.kind == "b":  # bools have no negative; their minimum is whether all are true
        return all(x, axis, keepdims)
    return -max(-x, axis, keepdims)


def logsumexp(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(x))) over ``axis``, shifted by the maximum so it never overflows."""
    x = to_float(x, "logsumexp")
    axes = normalize_axes("logsumexp", axis, x.ndim)
    # The shift is a constant: any value gives the same function, so no derivative is lost.
    shift = stop_gradient(max(x, axes, keepdims=True))
    shift = where(equal(abs(shift), math.inf), 0.0, shift)  # +-inf rows: do not shift by inf
    out = log(sum(exp(x - shift), axes, keepdims=True)) + shift
    return out if keepdims else squeeze(out, axes)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along ``axis``: stable log-probabilities."""
    x = to_float(x, "log_softmax")
    return x - logsumexp(x, axis, keepdims=True)


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``axis``, computed stably."""
    x = to_float(x, "softmax")
    return exp(log_softmax(x, axis))


def all(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Whether every element over ``axis`` is true (non-zero; NaN counts as true), as
    ``numpy.all``. A bool tensor: there is nothing to differentiate.

    >>> import tfgrad as tg
    >>> tg.all(tg.tensor([[1.0, 0.0], [2.0, 3.0]]), axis=1).numpy()
    array([False,  True])
    """
    x = as_tensor(x)
    return equal(sum(equal(x, 0), axis, keepdims), 0)


def any(x: Any, axis=None, keepdims: bool = False) -> Tensor:
    """Whether some element over ``axis`` is true (non-zero; NaN counts as true), as
    ``numpy.any``. A bool tensor: there is nothing to differentiate.

    >>> import tfgrad as tg
    >>> bool(tg.any(tg.tensor([0.0, -2.0])))
    True
    """
    x = as_tensor(x)
    return greater(sum(not_equal(x, 0), axis, keepdims), 0)


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, dtype=None) -> Tensor:
    r"""``num`` evenly spaced values from ``start`` to ``stop``, as ``numpy.linspace``.

    Value :math:`i` is :math:`\text{start} + i \, (\text{stop} - \text{start}) / d` with
    :math:`d = \text{num} - 1` (:math:`\text{num}` without the endpoint), computed in NumPy's
    order of operations; the last value is ``stop`` exactly. The endpoints may be tensors
    (broadcast together; the values run along a new first axis), and derivatives flow to them:
    :math:`\partial y_i / \partial\,\text{start} = 1 - i/d`,
    :math:`\partial y_i / \partial\,\text{stop} = i/d`.

    >>> import tfgrad as tg
    >>> tg.linspace(0.0, 1.0, 5).numpy()
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    >>> w = tg.arange(1.0, 6.0)
    >>> f = lambda a, b: tg.sum(tg.linspace(a, b, 5) * w)
    >>> [g.item() for g in tg.grad(f, argnums=(0, 1))(tg.tensor(1.2), tg.tensor(3.4))]
    [5.0, 10.0]
    """
    num = int(num)
    if num < 0:
        raise ShapeError(f"linspace: num must be non-negative, got {num}.")
    # NumPy computes in the endpoints' floating dtype and casts to ``dtype`` at the end.
    start, stop = promote_args("linspace", start, stop, floating=True)
    shape = (num,) + broadcast_shapes("linspace", start.shape, stop.shape)
    along = (num,) + (1,) * (len(shape) - 1)  # the new first axis, against the endpoints
    out = reshape(arange(num, dtype=start.dtype), along)
    divisions = num - 1 if endpoint else num
    if divisions > 0:
        out = out * ((stop - start) / divisions) + start
    else:  # num is 0 or 1: nothing, or just start
        out = broadcast_to(out + start, shape)
    if endpoint and num > 1:
        out = where(reshape(equal(arange(num), num - 1), along), stop, out)
    return out if dtype is None else astype(out, dtype)
