"""A parameter pytree as one flat vector, and the damped Newton-CG step on it (Martens'
Hessian-free optimisation): the bridge from a model's nested parameters to the flat-vector
tools of :mod:`tfgrad.second_order`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..errors import DtypeError
from ..ops import reshape
from ..tensor import Tensor
from ..tree import tree_flatten, tree_unflatten
from .solve import NewtonResult, newton_direction

__all__ = ["flatten_params", "newton_cg_step"]


def flatten_params(params: Any) -> tuple[np.ndarray, Callable[[Any], Any]]:
    """``(x, unflatten)``: the leaves of the pytree ``params`` (tuples, lists, dicts of tensors,
    arrays or floats) raveled and concatenated into one float64 vector ``x``, and
    ``unflatten(z)`` rebuilding the tree from a vector of that length: NumPy arrays from a NumPy
    vector, tensors (differentiable slices of it) from a Tensor, so ``f(unflatten(z))`` can be
    differentiated with respect to ``z``.

    >>> import numpy as np
    >>> from tfgrad.second_order import flatten_params
    >>> x, unflatten = flatten_params({"b": np.zeros(2), "w": np.ones((2, 2))})
    >>> x.shape, unflatten(np.arange(6.0))["w"].tolist()
    ((6,), [[2.0, 3.0], [4.0, 5.0]])
    """
    leaves, treedef = tree_flatten(params)
    arrays = []
    for leaf in leaves:
        arr = leaf.numpy() if isinstance(leaf, Tensor) else np.asarray(leaf)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise DtypeError(
                f"flatten_params: a leaf of dtype {arr.dtype} (shape {arr.shape}) cannot be a "
                "parameter; parameters are numbers (floats)."
            )
        arrays.append(arr)
    shapes = [a.shape for a in arrays]
    sizes = [math.prod(s) for s in shapes]
    x = (
        np.concatenate([a.reshape(-1).astype(np.float64) for a in arrays])
        if arrays
        else (np.zeros(0))
    )

    def unflatten(z: Any) -> Any:
        out, start = [], 0
        for shape, size in zip(shapes, sizes):
            piece = z[start : start + size]
            out.append(reshape(piece, shape) if isinstance(z, Tensor) else piece.reshape(shape))
            start += size
        return tree_unflatten(treedef, out)

    return x, unflatten


def newton_cg_step(
    loss: Callable,
    params: Any,
    damping: float = 1e-3,
    learning_rate: float = 1.0,
    *,
    tol: float = 1e-6,
    maxiter: int | None = 50,
) -> tuple[Any, NewtonResult]:
    """One damped Newton-CG step of Hessian-free optimisation (Martens 2010) on a scalar
    ``loss`` of a parameter pytree: ``params + learning_rate * d`` with ``(H + damping·I) d =
    -g`` solved by conjugate gradient on exact HVPs (H never formed), truncated at ``tol``
    (relative residual) or ``maxiter`` iterations as Martens truncates it. Returns the new
    parameters (a tree of NumPy arrays shaped as ``params``) and the :class:`NewtonResult` (on
    the flat vector; its ``hvps`` is the cost). A non-positive-definite system raises
    :class:`~tfgrad.errors.NegativeCurvatureError`: raise ``damping``."""
    x, unflatten = flatten_params(params)
    result = newton_direction(
        lambda z: loss(unflatten(z)), x, damping=damping, method="cg", tol=tol, maxiter=maxiter
    )
    return unflatten(x + learning_rate * result.direction), result
