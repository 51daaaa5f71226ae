"""The trace of a Hessian from HVPs alone: Hutch++ and, to compare, Hutchinson.

On a scalar ``f`` of a flat parameter vector ``x`` (1-D); flatten a pytree first
(``tfgrad.tree.tree_flatten``) and unflatten inside ``f``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import SecondOrderError
from ._operator import as_operator, check_choice, rng_from

__all__ = ["TraceEstimate", "hessian_trace"]


@dataclass
class TraceEstimate:
    """What :func:`hessian_trace` found: ``trace``, its ``std_error`` (the standard error of
    the stochastic part; 0 where that part is empty), the ``hvps`` used and the ``method``."""

    trace: float
    std_error: float
    hvps: int
    method: str


def hessian_trace(
    f: Callable,
    x: Any,
    method: str = "hutch++",
    num_matvecs: int = 60,
    seed: Any = 0,
) -> TraceEstimate:
    """An estimate of the trace of the Hessian of a scalar ``f`` at the flat vector ``x``,
    from ``num_matvecs`` HVPs (never forming H).

    ``method="hutchinson"``: the mean of ``vᵀHv`` over Rademacher probes ``v``, with standard
    error ``std(vᵀHv) / sqrt(num_matvecs)``. ``method="hutch++"`` (Meyer, Musco, Musco and
    Woodruff 2021): a third of the HVPs sketch ``H S``, whose orthonormal basis ``Q`` takes the
    top of the spectrum exactly (``tr(QᵀHQ)``, another third), and Hutchinson on the deflated
    ``(I - QQᵀ) H (I - QQᵀ)`` with the last third gives the rest; its error falls as 1/m
    rather than 1/sqrt(m). The standard error reported is that of the Hutchinson part, which
    is the only random part once Q is fixed; when the sketch already spans all n dimensions
    the low-rank part is the exact trace and the last third is not spent. Probes are drawn
    from ``seed`` (an int, a NumPy Generator or a :class:`tfgrad.random.Generator`). ``f`` may
    instead be a :class:`CurvatureOperator` (a GGN or Fisher matrix) with ``x=None``.
    """
    what = "hessian_trace"
    check_choice(what, "method", method, ("hutch++", "hutchinson"))
    least = 3 if method == "hutch++" else 1
    if (
        isinstance(num_matvecs, bool)
        or not isinstance(num_matvecs, (int, np.integer))
        or (num_matvecs < least)
    ):
        raise SecondOrderError(
            f"{what}: num_matvecs must be an integer >= {least} for method={method!r}, got "
            f"{num_matvecs!r}."
        )
    op = as_operator(f, x, what)
    n = op.n
    rng = rng_from(seed)

    def rademacher(count: int) -> np.ndarray:
        return rng.choice([-1.0, 1.0], size=(count, n))

    def hutchinson(probes: np.ndarray, project=None) -> tuple[float, np.ndarray]:
        samples = []
        for v in probes:
            if project is not None:
                v = project(v)
            samples.append(v @ op.matvec(v))
        samples = np.asarray(samples)
        return float(samples.mean()), samples

    def std_error(samples: np.ndarray) -> float:
        if len(samples) < 2:
            return float("inf")
        return float(samples.std(ddof=1) / np.sqrt(len(samples)))

    if method == "hutchinson":
        estimate, samples = hutchinson(rademacher(int(num_matvecs)))
        return TraceEstimate(estimate, std_error(samples), op.hvps, method)

    # Thirds as in the paper: sketch, exact low-rank part, Hutchinson on the remainder.
    s_count = min(int(num_matvecs) // 3, n)
    g_count = int(num_matvecs) - 2 * s_count
    hs = np.stack([op.matvec(s) for s in rademacher(s_count)], axis=1)  # n x s
    q, _ = np.linalg.qr(hs)
    low_rank = float(sum(q[:, i] @ op.matvec(q[:, i]) for i in range(q.shape[1])))
    if q.shape[1] >= n:  # Q spans everything: the low-rank part is the exact trace
        return TraceEstimate(low_rank, 0.0, op.hvps, method)
    rest, samples = hutchinson(rademacher(g_count), lambda v: v - q @ (q.T @ v))
    return TraceEstimate(low_rank + rest, std_error(samples), op.hvps, method)
