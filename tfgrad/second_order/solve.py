"""The Newton direction ``d`` solving ``(H + damping·I) d = -g``: densely for small n, by
conjugate gradient on HVPs (never forming H, as in Martens' Hessian-free optimisation) for
large n.

On a scalar ``f`` of a flat parameter vector ``x`` (1-D); for a parameter pytree, flatten it
(``tfgrad.tree.tree_flatten``, concatenate the raveled leaves) and unflatten inside ``f``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import NegativeCurvatureError, NumericalError, SecondOrderError
from ._operator import HessianOperator, check_choice

__all__ = ["NewtonResult", "newton_direction"]

# Up to this n, method="auto" solves densely: n HVP-equivalents pushed in batches plus an
# O(n^3) solve beat CG's up to n sequential HVPs, and work on indefinite systems too.
DENSE_MAX_N = 512


@dataclass
class NewtonResult:
    """What :func:`newton_direction` found.

    ``direction`` (``d``), the ``gradient`` ``g`` it answers, ``method`` and ``reason`` (why
    it ran), ``hvps`` used (the dense Hessian counts as n), ``iterations`` (CG; 0 for dense),
    ``residual_norm`` ``||(H + damping·I) d + g||`` (the error estimate: recomputed for dense,
    CG's recurrence for CG), ``converged`` and ``is_descent`` (``gᵀd < 0``).
    """

    direction: np.ndarray
    gradient: np.ndarray
    method: str
    reason: str
    hvps: int
    iterations: int
    residual_norm: float
    converged: bool
    damping: float

    @property
    def is_descent(self) -> bool:
        return bool(self.gradient @ self.direction < 0)


def newton_direction(
    f: Callable,
    x: Any,
    damping: float = 0.0,
    method: str = "auto",
    *,
    tol: float = 1e-10,
    maxiter: int | None = None,
) -> NewtonResult:
    """The (damped) Newton direction of a scalar ``f`` at the flat vector ``x``: the ``d``
    with ``(H + damping·I) d = -g``, ``g`` and ``H`` the gradient and Hessian at ``x``.

    ``method="dense"`` forms the exact Hessian (n HVPs' work) and calls
    :func:`numpy.linalg.solve`; it needs only a non-singular system (at a saddle it gives the
    Newton step, which may not descend: see ``result.is_descent``). ``method="cg"`` runs
    conjugate gradient from ``d = 0`` on HVPs, one per iteration, until
    ``||residual|| <= tol * ||g||`` or ``maxiter`` (default n) iterations; CG needs a
    positive-definite system and raises :class:`~tfgrad.errors.NegativeCurvatureError` on
    meeting a direction ``p`` with ``pᵀ(H + damping·I)p <= 0``. ``method="auto"`` is dense for
    n <= 512 and CG above; ``result.reason`` says which and why.

    >>> import numpy as np, tfgrad as tg
    >>> from tfgrad.second_order import newton_direction
    >>> r = newton_direction(lambda x: tg.sum((x - 1.0) ** 2), np.zeros(3), method="cg")
    >>> r.direction, r.iterations
    (array([1., 1., 1.]), 1)
    """
    what = "newton_direction"
    check_choice(what, "method", method, ("auto", "dense", "cg"))
    damping = float(damping)
    if not np.isfinite(damping):
        raise SecondOrderError(f"{what}: damping must be a finite number, got {damping!r}.")
    op = HessianOperator(f, x, what)
    n = op.n
    if method == "auto":
        if n <= DENSE_MAX_N:
            method = "dense"
            reason = f"n = {n} <= {DENSE_MAX_N}: the dense Hessian and one solve are cheap"
        else:
            method = "cg"
            mb = n * n * 8 / 1e6
            reason = f"n = {n} > {DENSE_MAX_N}: CG on HVPs, the {mb:.0f} MB Hessian never formed"
    else:
        reason = f"method={method!r} was asked for"
    g = op.gradient()

    if method == "dense":
        a = op.dense() + damping * np.eye(n)
        try:
            d = np.linalg.solve(a, -g)
        except np.linalg.LinAlgError:
            raise NumericalError(
                f"{what}: H + damping*I (shape ({n}, {n}), damping={damping}) is singular, so "
                "the Newton system has no unique solution; add damping (e.g. damping=1e-3)."
            ) from None
        residual = float(np.linalg.norm(a @ d + g))
        ok = bool(np.all(np.isfinite(d)))
        return NewtonResult(d, g, "dense", reason, op.hvps, 0, residual, ok, damping)

    hint = (
        "Add damping larger than the most negative eigenvalue (hessian_spectrum(f, x, k=1, "
        "which='bottom') finds it), or use method='dense' for the undamped step at a saddle."
    )
    d, iterations, residual, ok = conjugate_gradient(
        op.matvec, -g, damping, tol, maxiter, what, "H", hint
    )
    return NewtonResult(d, g, "cg", reason, op.hvps, iterations, residual, ok, damping)


def conjugate_gradient(
    matvec: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    damping: float,
    tol: float,
    maxiter: int | None,
    what: str,
    name: str,
    hint: str,
) -> tuple[np.ndarray, int, float, bool]:
    """CG on ``(A + damping·I) d = b`` from ``d = 0``, one ``matvec`` per iteration, until
    ``||b - (A + damping·I) d|| <= tol * ||b||`` or ``maxiter`` (default n) iterations;
    ``(d, iterations, residual norm, converged)``. Raises NegativeCurvatureError (naming
    ``what``, the matrix ``name`` and the ``hint``) on ``pᵀ(A + damping·I)p <= 0``."""
    n = b.shape[0]
    maxiter = n if maxiter is None else int(maxiter)
    d = np.zeros(n)
    r = b.copy()  # the residual b - A d at d = 0
    p = r.copy()
    rr = float(r @ r)
    target = tol * np.sqrt(rr)
    iterations = 0
    while np.sqrt(rr) > target and iterations < maxiter:
        ap = matvec(p) + damping * p
        curvature = float(p @ ap)
        if curvature <= 0:
            raise NegativeCurvatureError(
                f"{what}: CG met negative curvature pᵀ({name} + damping·I)p = {curvature:.3g} "
                f"(|p|² = {float(p @ p):.3g}) at iteration {iterations + 1} for x of shape "
                f"({n},), damping={damping}: the system is not positive definite, so CG cannot "
                f"solve it. {hint}"
            )
        step = rr / curvature
        d += step * p
        r -= step * ap
        rr_next = float(r @ r)
        p = r + (rr_next / rr) * p
        rr = rr_next
        iterations += 1
    return d, iterations, float(np.sqrt(rr)), bool(np.sqrt(rr) <= target)
