"""Matrix products: the matmul primitive and what is built from it (dot, outer, diag, trace)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.base import LINALG
from ..errors import ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ._common import as_tensor, broadcast_shapes, promote_args_nobroadcast
from .creation import zeros
from .elementwise import add, multiply
from .movement import reshape, reshape_p, scatter_add, take, transpose, transpose_p
from .reduce import broadcast_to, sum

__all__ = ["matmul", "dot", "outer", "diag", "trace"]


def _swap_last(x: Tensor) -> Tensor:
    axes = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return transpose(x, axes)


# ---- Matmul ----
# The primitive takes (..., m, k) @ (..., k, n) with equal batch dimensions; the front end
# promotes vectors and broadcasts batches, so the rules stay two lines.
def matmul_batched_jvp(ts, ans, a, b, batch):
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


matmul_p = Primitive("matmul", 2, family=LINALG, saves=(0, 1))
matmul_p.defvjp(
    lambda g, ans, a, b: bind(matmul_p, g, _swap_last(b)),  # dA = G Bᵀ
    lambda g, ans, a, b: bind(matmul_p, _swap_last(a), g),  # dB = Aᵀ G
)
matmul_p.defjvp(
    lambda t, ans, a, b: bind(matmul_p, t, b),
    lambda t, ans, a, b: bind(matmul_p, a, t),
)
matmul_p.def_batched_jvp(matmul_batched_jvp)


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules (vectors promoted, batch dimensions broadcast)."""
    a, b = as_tensor(a), as_tensor(b)  # shapes are checked before any cast or reshape
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(
            f"matmul: operands must have at least one dimension, got shapes {a.shape} and "
            f"{b.shape}; use multiply (*) for scalars."
        )
    a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
    b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ShapeError(
            f"matmul: shapes {a.shape} and {b.shape} do not fit: the last axis of the first "
            f"({a_shape[-1]}) must equal the second-to-last of the second ({b_shape[-2]})."
        )
    batch = broadcast_shapes(f"matmul of {a.shape} and {b.shape}, batch axes", a_shape[:-2],
                             b_shape[:-2])  # fmt: skip
    a, b = promote_args_nobroadcast("matmul", [a, b])
    a2, b2 = reshape(a, a_shape), reshape(b, b_shape)
    a2 = broadcast_to(a2, batch + a2.shape[-2:])
    b2 = broadcast_to(b2, batch + b2.shape[-2:])
    out = bind(matmul_p, a2, b2)
    shape = batch + ((a.shape[-2],) if a.ndim > 1 else ()) + ((b.shape[-1],) if b.ndim > 1 else ())
    return reshape(out, shape)


def dot(a: Any, b: Any) -> Tensor:
    """``numpy.dot`` for scalars, vectors and matrices."""
    a, b = promote_args_nobroadcast("dot", [a, b])
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if a.ndim > 2 or b.ndim > 2:
        raise ShapeError(
            f"dot: shapes {a.shape} and {b.shape}: tfgrad.dot takes up to 2-D operands; use "
            "matmul for batches."
        )
    return matmul(a, b)


def outer(a: Any, b: Any) -> Tensor:
    """Outer product of two vectors (inputs are flattened, as ``numpy.outer``)."""
    a, b = promote_args_nobroadcast("outer", [a, b])
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


def diag(x: Any, k: int = 0) -> Tensor:
    """A 2-D tensor's ``k``-th diagonal, or the square matrix with a 1-D tensor on it."""
    (x,) = promote_args_nobroadcast("diag", [x])
    if x.ndim == 1:
        n = x.shape[0] + abs(k)
        rows = np.arange(x.shape[0]) + max(-k, 0)
        cols = np.arange(x.shape[0]) + max(k, 0)
        flat = zeros((n * n,), x.dtype)  # x lands at rows * n + cols of the flattened matrix
        return reshape(scatter_add(flat, rows * n + cols, x, axis=0), (n, n))
    if x.ndim != 2:
        raise ShapeError(f"diag: needs a 1-D or 2-D tensor, got shape {x.shape}.")
    m, n = x.shape
    i = np.arange(max(0, min(m + min(k, 0), n - max(k, 0))))
    flat = (i + max(-k, 0)) * n + (i + max(k, 0))
    return take(reshape(x, (-1,)), flat, axis=0)


def trace(x: Any, k: int = 0) -> Tensor:
    """Sum of the ``k``-th diagonal of a matrix."""
    return sum(diag(x, k))
