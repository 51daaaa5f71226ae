"""Functions whose derivatives are known in closed form, shared by the tests that check exact
derivatives against them."""

from __future__ import annotations

import numpy as np

import tfgrad as tg


def rosenbrock(x):
    """The chained Rosenbrock function of a 1-D tensor (b = 100)."""
    return tg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_hessian(x: np.ndarray) -> np.ndarray:
    """Its Hessian, by hand (tridiagonal)."""
    n = len(x)
    h = np.zeros((n, n))
    i = np.arange(n - 1)
    h[i, i] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    h[i + 1, i + 1] += 200
    h[i, i + 1] = h[i + 1, i] = -400 * x[:-1]
    return h
