"""The Lanczos process with full reorthogonalisation, on any symmetric ``matvec``.

:func:`lanczos` (plain, the whole tridiagonal) gives
:func:`~tfgrad.second_order.hessian_density` its quadrature nodes and weights;
:func:`thick_restart_lanczos` (a basis of bounded size, restarted) gives
:func:`~tfgrad.second_order.hessian_spectrum` its Ritz pairs.
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


def select(count: int, k: int, which: str) -> np.ndarray:
    """Indices (ascending) of the k wanted of ``count`` ascending values: ``"top"`` the
    largest, ``"bottom"`` the smallest, ``"both"`` half from each end, the odd one from the top
    (as scipy's ``which="BE"``)."""
    if which == "top":
        return np.arange(count - k, count)
    if which == "bottom":
        return np.arange(k)
    low = k // 2
    return np.concatenate([np.arange(low), np.arange(count - (k - low), count)])


@dataclass
class RestartedRitz:
    """What :func:`thick_restart_lanczos` found: the ``k`` wanted Ritz ``values`` (ascending),
    their unit ``vectors`` (n x k), ``residuals`` ``||A y - theta y||`` (the error estimates),
    whether all met ``threshold`` (``tol`` times the largest Ritz value's magnitude:
    ``converged``), the matrix-vector products run (``steps``), the ``restarts`` done (a
    locking counts as one), and ``basis_size``, the most basis vectors held."""

    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    threshold: float
    converged: bool
    steps: int
    restarts: int
    basis_size: int


def _orthogonalise(w: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """The coefficients removed from ``w`` (in place) against the rows of ``basis``: classical
    Gram-Schmidt twice ("twice is enough" keeps the basis orthonormal to rounding)."""
    h = basis @ w
    w -= basis.T @ h
    h2 = basis @ w
    w -= basis.T @ h2
    return h + h2


def _random_orthogonal(n: int, basis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal(n)
    _orthogonalise(w, basis)
    return w / np.linalg.norm(w)


def thick_restart_lanczos(
    matvec: Callable[[np.ndarray], np.ndarray],
    v0: np.ndarray,
    k: int,
    which: str,
    ncv: int,
    max_steps: int,
    tol: float,
    rng: np.random.Generator,
) -> RestartedRitz:
    """The ``k`` Ritz pairs chosen by ``which`` of a symmetric ``matvec``, by thick-restart
    Lanczos (Wu and Simon 2000; what ARPACK's implicit restart computes, as scipy's ``eigsh``).

    The basis holds at most ``ncv`` vectors (``k < ncv <= n``, or ``ncv = n``): memory
    ``ncv x n`` float64 however many steps run. When it is full, the wanted Ritz vectors and
    a few next to them (``k + (ncv - k) // 3`` in all) become the start of a new basis, with
    the last Lanczos vector after them; the projected matrix is then an arrow (the kept Ritz
    values on the diagonal, coupled to the new vector by the residual norms) followed by the
    usual tridiagonal, and ``A V = V T + beta q eᵀ`` still holds, so the residual of a Ritz
    pair is still ``|beta * s[-1]|``. Once every wanted residual is at most ``tol`` times the
    largest Ritz value's magnitude (checked after every step), the wanted pairs are locked
    (their couplings, each below that bound, dropped and added to their error estimates) and
    the basis is extended from a random vector orthogonal to them: a Krylov space from one
    vector sees one copy of a repeated eigenvalue, so this finds a missed copy (the locked set
    then changes and the search goes on) or confirms the answer, in ``min(ncv, 2k + 10) - k``
    steps. It stops there, or after ``max_steps`` products in all. Each step costs one
    product and O(ncv n) for the full reorthogonalisation; a restart costs O(ncv² n) and no
    product.
    """
    n = v0.shape[0]
    ncv = max(min(ncv, n, max_steps), min(k, n))
    keep = max(k, min(k + (ncv - k) // 3, ncv - 1))
    check_end = min(ncv, 2 * k + 10)  # a check takes at most k + 10 steps
    V = np.empty((ncv, n))
    T = np.zeros((ncv, ncv))
    d = np.zeros(ncv)  # bounds on the dropped couplings of each basis vector (locking)
    q = v0 / np.linalg.norm(v0)
    j = held = steps = restarts = 0
    scale = 0.0  # the largest |alpha| + beta so far: what "breakdown" is relative to
    beta = 0.0
    locked = None  # the wanted values at the last locking, while their check runs

    def compress(idx: np.ndarray, s: np.ndarray) -> None:
        # V[:len(idx)] = the Ritz vectors, in column blocks: memory stays ncv x n (+ a block)
        for c in range(0, n, 8192):
            V[: len(idx), c : c + 8192] = s[:, idx].T @ V[:j, c : c + 8192]
        d[: len(idx)] = np.abs(s[:, idx]).T @ d[:j]
        d[len(idx) :] = 0.0
        T[:] = 0.0
        T[np.arange(len(idx)), np.arange(len(idx))] = theta[idx]

    while True:
        V[j] = q
        w = np.array(matvec(q), dtype=np.float64)
        steps += 1
        h = _orthogonalise(w, V[: j + 1])
        T[j, j] += h[j]  # the coupling to earlier vectors is known: T is arrow + tridiagonal
        beta = float(np.linalg.norm(w))
        scale = max(scale, abs(T[j, j]) + beta)
        j += 1
        held = max(held, j)
        if j < n and beta <= 1e-12 * max(scale, np.finfo(float).tiny):
            # An invariant subspace: go on orthogonally with a zero coupling (T stays exact),
            # so repeated eigenvalues are found with their multiplicity.
            beta, q = 0.0, _random_orthogonal(n, V[:j], rng)
        elif j < n:
            q = w / beta
        theta, s = np.linalg.eigh(T[:j, :j])
        res = np.abs(beta * s[-1, :]) + np.abs(s).T @ d[:j]
        wanted = select(j, min(k, j), which)
        bound = tol * max(np.abs(theta).max(), 1e-300)
        ok = j >= k and bool(np.all(res[wanted] <= bound))
        if j == n or steps >= max_steps:
            break
        if ok and locked is None:
            # Lock the wanted pairs and check from a fresh random vector (see above).
            locked = theta[wanted]
            compress(wanted, s)
            d[:k] += np.abs(beta * s[-1, wanted])
            j = k
            q = _random_orthogonal(n, V[:j], rng)
            beta = 0.0
            restarts += 1
            continue
        if locked is not None and j >= check_end:
            if ok and np.all(np.abs(theta[wanted] - locked) <= bound):
                break
            locked = None  # a value entered the wanted set: search on (and check again)
        if j < ncv:
            T[j - 1, j] = T[j, j - 1] = beta
            continue
        kept = select(j, keep, which)
        compress(kept, s)
        T[:keep, keep] = T[keep, :keep] = beta * s[-1, kept]
        j = keep
        restarts += 1
    idx = select(j, min(k, j), which)
    vectors = V[:j].T @ s[:, idx]
    return RestartedRitz(theta[idx], vectors, res[idx], bound, ok, steps, restarts, held)
