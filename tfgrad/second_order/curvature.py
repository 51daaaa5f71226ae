"""Exact Gauss-Newton and Fisher matrix-vector products for a model of the form
``loss(model(params))``, and the natural-gradient step they define.

``params`` is a flat parameter vector (1-D); for a pytree, flatten it (``tfgrad.tree``) and
unflatten inside ``model``. Neither matrix is ever formed: each product is one JVP of the model,
a product with the curvature of the loss at the outputs, and one VJP of the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..api import grad, hvp, jvp, vjp
from ..errors import SecondOrderError, ShapeError
from ..ops import tensor
from ..tensor import Tensor
from ._operator import CurvatureOperator, as_flat_vector, check_choice
from .solve import conjugate_gradient

__all__ = [
    "ggn_vector_product",
    "fisher_vector_product",
    "natural_gradient",
    "ggn_operator",
    "fisher_operator",
    "NaturalGradientResult",
]


def _vector(v: Any, n: int, what: str) -> np.ndarray:
    arr = v.numpy() if isinstance(v, Tensor) else np.asarray(v)
    if arr.shape != (n,):
        raise ShapeError(
            f"{what}: v must have the shape of params, ({n},), got shape {arr.shape}; pass one "
            "flat vector per product."
        )
    return arr


def _curvature_product(model, params, v, what, outer_product) -> np.ndarray:
    """``J_mᵀ M J_m v``, ``J_m`` the model's Jacobian at params, ``M u = outer_product(z, u)``
    for the outputs ``z``."""
    p = as_flat_vector(params, what)
    v = _vector(v, p.shape[0], what)
    pt = tensor(p)
    out, jv = jvp(model, (pt,), (tensor(v.astype(p.dtype, copy=False)),))  # J v
    mjv = outer_product(out, jv)
    _, vjp_fn = vjp(model, pt)
    return np.asarray(vjp_fn(mjv)[0].numpy(), dtype=np.float64).reshape(p.shape[0])


def ggn_vector_product(model: Callable, loss: Callable, params: Any, v: Any) -> np.ndarray:
    """The generalised Gauss-Newton product ``G v = J_mᵀ H_loss J_m v`` for
    ``loss(model(params))``: ``model`` maps the flat ``params`` to outputs of any shape,
    ``loss`` the outputs to one number (a loss convex in the outputs makes G positive
    semi-definite, unlike the Hessian). Exact; cost: one JVP of the model, one HVP of the loss
    at the outputs, one VJP of the model (about three gradients)."""
    what = "ggn_vector_product"

    def h_loss(z, u):
        value = loss(z)
        size = value.size if isinstance(value, Tensor) else np.size(value)
        if size != 1:
            shape = value.shape if isinstance(value, Tensor) else np.shape(value)
            raise ShapeError(
                f"{what}: loss must return one number, got shape {shape} for model "
                f"outputs of shape {z.shape}; reduce it (tfgrad.sum or tfgrad.mean)."
            )
        return hvp(loss, z, u)

    return _curvature_product(model, params, v, what, h_loss)


def fisher_vector_product(
    model: Callable, params: Any, v: Any, likelihood: str = "categorical"
) -> np.ndarray:
    """The Fisher information product ``F v`` of the model's predictive distribution, averaged
    over the leading (batch) axis of the outputs: ``F = mean_b J_bᵀ F_b J_b`` with ``F_b`` the
    Fisher of the likelihood in its natural parameters.

    ``likelihood="categorical"``: the outputs are logits of shape (batch, classes) and
    ``F_b = diag(p) - p pᵀ``, ``p = softmax(logits)``; ``"gaussian"``: unit-variance Gaussian
    means, ``F_b = I``. For these exponential families F equals the GGN of the mean
    cross-entropy (respectively half the mean squared error). Exact (the true Fisher, not the
    empirical one: no labels needed); cost one JVP and one VJP of the model.
    """
    what = "fisher_vector_product"
    check_choice(what, "likelihood", likelihood, ("categorical", "gaussian"))

    def f_out(z, u):
        z_np = np.asarray(z.numpy(), dtype=np.float64)
        u_np = np.asarray(u.numpy(), dtype=np.float64)
        batch = z_np.shape[0] if z_np.ndim else 1
        if likelihood == "gaussian":
            return tensor((u_np / batch).astype(z.dtype.numpy))
        if z_np.ndim != 2:
            raise ShapeError(
                f"{what}: likelihood='categorical' needs logits of shape (batch, classes) from "
                f"the model, got shape {z_np.shape}; reshape the outputs to 2-D."
            )
        e = np.exp(z_np - z_np.max(axis=1, keepdims=True))
        prob = e / e.sum(axis=1, keepdims=True)
        fu = prob * u_np - prob * np.sum(prob * u_np, axis=1, keepdims=True)
        return tensor((fu / batch).astype(z.dtype.numpy))

    return _curvature_product(model, params, v, what, f_out)


def ggn_operator(model: Callable, loss: Callable, params: Any) -> CurvatureOperator:
    """The Gauss-Newton matrix of ``loss(model(params))`` at ``params`` as an operator, for
    the spectral tools: ``hessian_spectrum(ggn_operator(model, loss, w), None, k=5)``,
    likewise :func:`hessian_trace` and :func:`hessian_density` (their ``hvps`` then count
    GGN products, each as described in :func:`ggn_vector_product`)."""
    p = as_flat_vector(params, "ggn_operator")
    return CurvatureOperator(
        p.shape[0], lambda v: ggn_vector_product(model, loss, p, v), "ggn_operator", "GGN"
    )


def fisher_operator(model: Callable, params: Any, likelihood: str = "categorical"):
    """The Fisher matrix of the model's predictive distribution at ``params`` (as in
    :func:`fisher_vector_product`) as an operator, for the spectral tools."""
    check_choice("fisher_operator", "likelihood", likelihood, ("categorical", "gaussian"))
    p = as_flat_vector(params, "fisher_operator")
    return CurvatureOperator(
        p.shape[0],
        lambda v: fisher_vector_product(model, p, v, likelihood),
        "fisher_operator",
        "Fisher",
    )


@dataclass
class NaturalGradientResult:
    """What :func:`natural_gradient` found: ``direction`` ``d = -(M + damping·I)⁻¹ g`` (M the
    Fisher or the GGN), ``gradient`` g, ``matvecs`` (curvature products used, one per CG
    iteration), ``iterations``, ``residual_norm``, ``converged``, ``damping`` and ``curvature``
    (``"fisher"`` or ``"ggn"``)."""

    direction: np.ndarray
    gradient: np.ndarray
    matvecs: int
    iterations: int
    residual_norm: float
    converged: bool
    damping: float
    curvature: str


def natural_gradient(
    model: Callable,
    loss: Callable,
    params: Any,
    damping: float = 1e-3,
    curvature: str = "fisher",
    likelihood: str = "categorical",
    *,
    tol: float = 1e-10,
    maxiter: int | None = None,
) -> NaturalGradientResult:
    """The natural-gradient direction ``d = -(F + damping·I)⁻¹ g`` for ``loss(model(params))``,
    ``g`` its gradient, by conjugate gradient on exact Fisher products (``curvature="fisher"``,
    with ``likelihood`` as in :func:`fisher_vector_product`) or Gauss-Newton products
    (``curvature="ggn"``: a damped Gauss-Newton step, as Martens' Hessian-free optimisation
    takes). Neither matrix is formed. Both are only positive semi-definite: keep
    ``damping > 0`` (CG raises :class:`~tfgrad.errors.NegativeCurvatureError` on a direction of
    zero curvature).
    """
    what = "natural_gradient"
    check_choice(what, "curvature", curvature, ("fisher", "ggn"))
    check_choice(what, "likelihood", likelihood, ("categorical", "gaussian"))
    damping = float(damping)
    if not np.isfinite(damping) or damping < 0:
        raise SecondOrderError(
            f"{what}: damping must be a finite number >= 0 (e.g. 1e-3), got {damping!r}."
        )
    p = as_flat_vector(params, what)
    pt = tensor(p)
    g = np.asarray(grad(lambda w: loss(model(w)))(pt).numpy(), dtype=np.float64)
    count = [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        if curvature == "fisher":
            return fisher_vector_product(model, p, v, likelihood)
        return ggn_vector_product(model, loss, p, v)

    hint = "Increase damping (e.g. damping=1e-3 times the scale of the loss)."
    d, iterations, residual, ok = conjugate_gradient(
        matvec, -g, damping, tol, maxiter, what, "F" if curvature == "fisher" else "G", hint
    )
    return NaturalGradientResult(d, g, count[0], iterations, residual, ok, damping, curvature)
