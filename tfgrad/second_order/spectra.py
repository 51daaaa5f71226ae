"""Eigenvalues of a Hessian: exactly from the full matrix, or the extremes by Lanczos on HVPs,
and the whole spectral density by stochastic Lanczos quadrature.

All work on a scalar ``f`` of a flat parameter vector ``x`` (1-D). For a parameter pytree,
flatten it (``tfgrad.tree.tree_flatten``, then concatenate the raveled leaves) and unflatten
inside ``f``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import SecondOrderError
from ._lanczos import lanczos, select, thick_restart_lanczos
from ._operator import as_operator, check_choice, rng_from

__all__ = ["HessianSpectrum", "HessianDensity", "hessian_spectrum", "hessian_density"]

# Up to this n, method="auto" forms the exact Hessian: n HVP-equivalents pushed in batches and
# one O(n^3) eigh (8 MB at n = 1024) beat the sequential HVPs of Lanczos and give every pair.
EXACT_MAX_N = 1024


@dataclass
class HessianSpectrum:
    """What :func:`hessian_spectrum` found.

    ``eigenvalues`` ascending (as :func:`numpy.linalg.eigh`), ``eigenvectors[:, i]`` the unit
    eigenvector of ``eigenvalues[i]``; ``residual_norms[i]`` is ``||H y - theta y||``, the
    error estimate (an eigenvalue is within it of a true one); ``hvps`` the HVPs used (the
    exact Hessian counts as n); ``method`` which ran and ``reason`` why (for Lanczos, also why
    it stopped); ``converged`` whether every residual met ``tol`` (always true for
    ``"exact"``). For Lanczos, ``lanczos_steps`` the steps run (one HVP each), ``restarts``
    the thick restarts done (the locking before the check for missed repeated eigenvalues
    counts as one) and ``basis_size`` the most basis vectors held (the memory:
    ``basis_size x n`` float64, at most ``ncv``).
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residual_norms: np.ndarray
    hvps: int
    method: str
    reason: str
    converged: bool
    lanczos_steps: int = 0
    restarts: int = 0
    basis_size: int = 0


def hessian_spectrum(
    f: Callable,
    x: Any,
    k: int | None = None,
    method: str = "auto",
    which: str = "top",
    *,
    tol: float = 1e-10,
    max_steps: int | None = None,
    ncv: int | None = None,
    seed: Any = 0,
) -> HessianSpectrum:
    """Eigenvalues and eigenvectors of the Hessian of a scalar ``f`` at the flat vector ``x``.

    ``method="exact"`` forms the exact Hessian (costing n HVPs, pushed in batches) and runs
    :func:`numpy.linalg.eigh`: all n pairs when ``k`` is None, else the ``k`` chosen by
    ``which``. ``method="lanczos"`` runs Lanczos with full reorthogonalisation on HVPs, never
    forming H, and returns the ``k`` Ritz pairs chosen by ``which`` (``"top"``: largest,
    ``"bottom"``: smallest, ``"both"``: half from each end, the odd one from the top). It is
    thick-restart Lanczos (as scipy's ``eigsh``): the basis holds at most ``ncv`` vectors
    (default ``min(n, max(2k + 1, 20))``, as ``eigsh``; memory ``ncv x n`` float64, 17 MB for
    k = 10 at n = 100,000), and when full it restarts from the wanted Ritz vectors and a few
    more, so a clustered or slowly converging spectrum converges without a larger basis. It
    stops once every wanted residual is below ``tol`` times the largest Ritz value's magnitude
    and a check from a fresh random vector found no missed copy of a repeated eigenvalue (at
    most ``k + 10`` more HVPs), or after ``max_steps`` HVPs in all (default
    ``100 * ncv``; each HVP costs about a gradient's work twice, and each step O(ncv n) more
    for the reorthogonalisation); ``ncv = max_steps`` is plain Lanczos, never restarted. The
    start vector is drawn from ``seed`` (an int, a NumPy Generator or a
    :class:`tfgrad.random.Generator`).
    ``method="auto"`` is exact for n <= 1024, Lanczos above; ``result.reason`` says which.
    ``f`` may instead be a :class:`CurvatureOperator` (:func:`ggn_operator`,
    :func:`fisher_operator`) with ``x=None``: the same tools on those matrices.

    >>> import numpy as np, tfgrad as tg
    >>> from tfgrad.second_order import hessian_spectrum
    >>> r = hessian_spectrum(lambda x: tg.sum(tg.tensor([1.0, 2.0, 3.0]) * x * x), np.ones(3))
    >>> r.eigenvalues, r.method
    (array([2., 4., 6.]), 'exact')
    """
    what = "hessian_spectrum"
    check_choice(what, "method", method, ("auto", "exact", "lanczos"))
    check_choice(what, "which", which, ("top", "bottom", "both"))
    op = as_operator(f, x, what)
    n = op.n
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
            raise SecondOrderError(
                f"{what}: k must be an integer with 1 <= k <= n = {n} (x has shape ({n},)), "
                f"got {k!r}; ask for at most n eigenpairs, or k=None with method='exact' for all."
            )
        k = int(k)
    if method == "auto":
        if n <= EXACT_MAX_N:
            method, reason = "exact", f"n = {n} <= {EXACT_MAX_N}: the full Hessian is cheap"
        elif k is None:
            raise SecondOrderError(
                f"{what}: n = {n} is too large to form the Hessian by default; give k (e.g. "
                "k=10) for Lanczos, or method='exact' to form all n x n of it anyway."
            )
        else:
            method, reason = "lanczos", f"n = {n} > {EXACT_MAX_N}: Lanczos on HVPs, H not formed"
    else:
        reason = f"method={method!r} was asked for"

    if method == "exact":
        values, vectors = np.linalg.eigh(op.dense())
        if k is not None:
            idx = select(n, k, which)
            values, vectors = values[idx], vectors[:, idx]
        return HessianSpectrum(
            values, vectors, np.zeros(len(values)), op.hvps, "exact", reason, True
        )

    if k is None:
        raise SecondOrderError(
            f"{what}: method='lanczos' needs k, the number of eigenpairs wanted (1 <= k <= "
            f"{n}); e.g. k=10."
        )
    for name, value in (("ncv", ncv), ("max_steps", max_steps)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer))
        ):
            raise SecondOrderError(f"{what}: {name} must be an integer or None, got {value!r}.")
    basis = min(n, max(2 * k + 1, 20)) if ncv is None else int(ncv)
    if not (k < basis <= n or basis == n):
        raise SecondOrderError(
            f"{what}: ncv (the basis size) must satisfy k < ncv <= n, i.e. {k} < ncv <= {n}, "
            f"got {ncv!r}; a restart keeps the k wanted vectors and needs room for more."
        )
    steps = 100 * basis if max_steps is None else int(max_steps)
    if steps < k:
        raise SecondOrderError(
            f"{what}: max_steps (the HVP budget) must be at least k = {k}, got {max_steps!r}."
        )
    rng = rng_from(seed)
    r = thick_restart_lanczos(op.matvec, rng.standard_normal(n), k, which, basis, steps, tol, rng)
    if r.converged:
        why = f"all {k} wanted residuals <= {r.threshold:.2g} (tol x the largest |Ritz value|)"
    elif r.steps >= steps:
        bad = int(np.sum(r.residuals > r.threshold))
        why = f"stopped at max_steps = {steps} HVPs with {bad} of {k} residuals above tol"
    else:
        why = "the basis spans the whole space"
    reason += (
        f"; {why}, after {r.steps} HVPs, {r.restarts} restarts, a basis of {r.basis_size} vectors"
    )
    return HessianSpectrum(
        r.values,
        r.vectors,
        r.residuals,
        op.hvps,
        "lanczos",
        reason,
        r.converged,
        r.steps,
        r.restarts,
        r.basis_size,
    )


@dataclass
class HessianDensity:
    """What :func:`hessian_density` found.

    ``grid`` and ``density`` (integrating to 1 over the grid); ``nodes`` and ``weights``, one
    row per probe (the Ritz values and the squared first components of T's eigenvectors: each
    row is a quadrature rule for the spectral measure); ``sigma`` the Gaussian width used;
    ``trace`` the trace estimate ``n * mean(nodes . weights)`` with its ``trace_std_error``
    over probes; ``hvps`` the HVPs used.
    """

    grid: np.ndarray
    density: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float
    trace: float
    trace_std_error: float
    hvps: int


def hessian_density(
    f: Callable,
    x: Any,
    num_probes: int = 10,
    lanczos_steps: int = 80,
    seed: Any = 0,
    *,
    sigma: float | None = None,
    grid_size: int = 1024,
) -> HessianDensity:
    """The eigenvalue density of the Hessian of a scalar ``f`` at the flat vector ``x``, by
    stochastic Lanczos quadrature (Ghorbani, Krishnan and Xiao 2019, as PyHessian computes it).

    Each of ``num_probes`` Rademacher probes starts ``lanczos_steps`` Lanczos steps (full
    reorthogonalisation; at most n); the Ritz values of each T, weighted by the squared first
    components of its eigenvectors, are a Gauss quadrature of the spectral measure. Their
    average, broadened by Gaussians of width ``sigma`` (default 1% of the spread of the
    nodes), is the density, on ``grid_size`` points reaching 5 sigma past the extreme nodes.
    Cost: ``num_probes * lanczos_steps`` HVPs, memory ``lanczos_steps`` vectors of length n.
    ``f`` may instead be a :class:`CurvatureOperator` with ``x=None``.
    """
    what = "hessian_density"
    for name, value in (("num_probes", num_probes), ("lanczos_steps", lanczos_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SecondOrderError(f"{what}: {name} must be a positive integer, got {value!r}.")
    if grid_size < 2:
        raise SecondOrderError(f"{what}: grid_size must be at least 2, got {grid_size!r}.")
    op = as_operator(f, x, what)
    n = op.n
    steps = min(int(lanczos_steps), n)
    rng = rng_from(seed)
    nodes = np.empty((num_probes, steps))
    weights = np.empty((num_probes, steps))
    for p in range(num_probes):
        v = rng.choice([-1.0, 1.0], size=n)
        t = lanczos(op.matvec, v, steps, rng)
        theta, s, _ = t.ritz()
        # A breakdown restart can stop short of `steps` only at n; pad with zero weight.
        nodes[p, :] = 0.0
        weights[p, :] = 0.0
        nodes[p, : len(theta)] = theta
        weights[p, : len(theta)] = s[0, :] ** 2
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        spread = hi - lo
        sigma = 0.01 * spread if spread > 0 else 1e-3 * max(abs(hi), 1.0)
    sigma = float(sigma)
    if not sigma > 0:
        raise SecondOrderError(f"{what}: sigma must be positive, got {sigma!r}.")
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, int(grid_size))
    gauss = np.exp(-0.5 * ((grid[:, None] - nodes.reshape(-1)[None, :]) / sigma) ** 2)
    gauss /= sigma * np.sqrt(2 * np.pi)
    density = gauss @ weights.reshape(-1) / num_probes
    per_probe = n * np.sum(nodes * weights, axis=1)  # = vᵀHv for the probe v (Hutchinson)
    std_error = float(per_probe.std(ddof=1) / np.sqrt(num_probes)) if num_probes > 1 else np.inf
    return HessianDensity(
        grid, density, nodes, weights, sigma, float(per_probe.mean()), std_error, op.hvps
    )
