"""The Lanczos process with full reorthogonalisation, on any symmetric ``matvec``.

Shared by :func:`~tfgrad.second_order.hessian_spectrum` (Ritz pairs) and
:func:`~tfgrad.second_order.hessian_density` (quadrature nodes and weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Tridiagonal:
    """What ``m`` Lanczos steps leave: ``T = Qᵀ A Q`` (diagonal ``alpha``, off-diagonal
    ``beta``), the basis ``Q`` (m x n, rows orthonormal) and ``beta_next``, the norm of the
    residual after the last step (``A Q = Q T + beta_next q_next e_mᵀ``)."""

    alpha: np.ndarray
    beta: np.ndarray
    Q: np.ndarray
    beta_next: float

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), the eigenvectors ``S`` of T, and the residual norms
        ``|beta_next * S[-1, i]|`` (= ``||A y - theta y||`` for the Ritz vector ``y = Qᵀ S``)."""
        m = len(self.alpha)
        t = np.diag(self.alpha) + np.diag(self.beta, 1) + np.diag(self.beta, -1)
        theta, s = np.linalg.eigh(t) if m else (np.zeros(0), np.zeros((0, 0)))
        return theta, s, np.abs(self.beta_next * s[-1, :]) if m else np.zeros(0)


def lanczos(
    matvec: Callable[[np.ndarray], np.ndarray],
    v0: np.ndarray,
    steps: int,
    rng: np.random.Generator,
    done: Callable[[Tridiagonal], bool] | None = None,
    check_every: int = 10,
) -> Tridiagonal:
    """Up to ``steps`` Lanczos steps from ``v0`` (``steps <= n``), stopping early when
    ``done(partial)`` says so (asked every ``check_every`` steps).

    Full reorthogonalisation (classical Gram-Schmidt against every earlier vector, twice:
    "twice is enough") keeps Q orthonormal to rounding, so no ghost copies of converged
    eigenvalues appear; it costs O(m n) per step and the m x n basis is the memory bound.
    On an exact breakdown (an invariant subspace found before ``steps``) the process restarts
    from a random vector orthogonal to Q with a zero off-diagonal, so repeated eigenvalues are
    found with their multiplicity instead of once.
    """
    n = v0.shape[0]
    steps = min(steps, n)
    Q = np.empty((steps, n))
    alpha = np.zeros(steps)
    beta = np.zeros(max(steps - 1, 0))
    q = v0 / np.linalg.norm(v0)
    scale = 0.0  # the largest |alpha| + beta so far: what "breakdown" is relative to
    beta_next = 0.0
    m = 0
    for j in range(steps):
        Q[j] = q
        w = matvec(q)
        alpha[j] = q @ w
        w -= alpha[j] * q
        if j > 0:
            w -= beta[j - 1] * Q[j - 1]
        basis = Q[: j + 1]
        for _ in range(2):
            w -= basis.T @ (basis @ w)
        b = float(np.linalg.norm(w))
        scale = max(scale, abs(alpha[j]) + b)
        m = j + 1
        beta_next = b
        if m == steps:
            break
        if b <= 1e-12 * max(scale, np.finfo(float).tiny):
            # An invariant subspace: restart orthogonally (a zero coupling keeps T exact).
            w = rng.standard_normal(n)
            for _ in range(2):
                w -= basis.T @ (basis @ w)
            beta[j] = 0.0
            q = w / np.linalg.norm(w)
        else:
            beta[j] = b
            q = w / b
        if done is not None and m % check_every == 0:
            part = Tridiagonal(alpha[:m], beta[: m - 1], Q[:m], float(beta[j]))
            if done(part):
                break
    return Tridiagonal(alpha[:m].copy(), beta[: m - 1].copy(), Q[:m], beta_next)
