"""Ops composed from primitives: no rules of their own, so their derivatives (of every order)
come from the primitives they are made of. Each is written to be numerically stable."""

from __future__ import annotations

import math
from typing import Any

from ..errors import ShapeError
from ..primitive import strip_derivatives
from ..tensor import Tensor
from ._common import as_tensor, normalize_axes, to_float
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
    subtract,
    tanh,
    where,
)  # fmt: skip
from .movement import squeeze
from .reduce import max, sum

__all__ = [
    "square", "relu", "sigmoid", "softplus", "clip", "mean", "var", "min", "logsumexp",
    "softmax", "log_softmax", "stop_gradient",
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
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(
            f"min: cannot reduce a zero-size axis (shape {x.shape}, axis {axis}); "
            "the minimum of nothing is undefined."
        )
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
