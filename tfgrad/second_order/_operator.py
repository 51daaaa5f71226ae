"""Curvature matrices (the Hessian of a function of a flat parameter vector, Gauss-Newton,
Fisher) as operators on NumPy vectors.

Every tool of :mod:`tfgrad.second_order` goes through a :class:`CurvatureOperator`, so the
cost each result reports (``hvps``: matrix-vector products) is counted in one place.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..api import grad, hessian
from ..errors import DtypeError, OptionError, SecondOrderError, ShapeError
from ..ops import reshape, tensor
from ..primitive import Tracer
from ..random import Generator as TfgradGenerator
from ..replay import push_tangents
from ..tape import GradientTape
from ..tensor import Tensor


def as_flat_vector(x: Any, what: str) -> np.ndarray:
    """``x`` as a 1-D floating NumPy array (a Tensor, an array, a list), or a named error."""
    arr = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if arr.ndim != 1:
        raise ShapeError(
            f"{what}: x must be a flat parameter vector (1-D), got shape {arr.shape}; flatten "
            "it first (x.reshape(-1), or tfgrad.tree.tree_flatten and concatenate for a pytree) "
            "and reshape inside f."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise DtypeError(
            f"{what}: x must be floating (float64 for second-order work), got dtype {arr.dtype} "
            f"of shape {arr.shape}; pass e.g. np.asarray(x, dtype=np.float64)."
        )
    return arr


def check_choice(what: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise OptionError(f"{what}: {name} must be one of {choices}; got {value!r}.")


def rng_from(seed: Any) -> np.random.Generator:
    """A NumPy Generator from an int, a NumPy Generator or a :class:`tfgrad.random.Generator`
    (whose seed then seeds the stream, so the same tfgrad generator gives the same probes)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, TfgradGenerator):
        return np.random.default_rng([seed.seed, seed.counter])
    return np.random.default_rng(seed)


class CurvatureOperator:
    """A symmetric n x n curvature matrix (a Hessian, a Gauss-Newton or a Fisher matrix) known
    only by its products ``matvec(v)`` with flat vectors of shape (n,), counting them in
    ``hvps``. :func:`~tfgrad.second_order.ggn_operator` and
    :func:`~tfgrad.second_order.fisher_operator` make them; the spectral tools take one in
    place of ``f`` (with ``x=None``)."""

    def __init__(self, n: int, product: Callable[[np.ndarray], np.ndarray], what: str, name: str):
        self.n = int(n)
        self._product = product
        self.what = what
        self.name = name
        self.hvps = 0

    def counted(self, what: str) -> "CurvatureOperator":
        """The same operator with its own count from 0, its errors naming ``what``."""
        return CurvatureOperator(self.n, self._product, what, self.name)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v)
        if v.shape != (self.n,):
            raise ShapeError(
                f"{self.what}: a {self.name}-vector product needs v of shape ({self.n},) like x, "
                f"got shape {v.shape}."
            )
        self.hvps += 1
        return np.asarray(self._product(v), dtype=np.float64).reshape(self.n)

    def dense(self) -> np.ndarray:
        """The n x n matrix from n products with the unit vectors, symmetrised."""
        m = np.stack([self.matvec(e) for e in np.eye(self.n)], axis=1)
        return 0.5 * (m + m.T)

    def __repr__(self) -> str:
        return f"CurvatureOperator({self.name}, n={self.n}, products so far={self.hvps})"


class HessianOperator(CurvatureOperator):
    """``v -> H(x)·v`` for a scalar ``f`` of a 1-D vector ``x``, counting the HVPs it runs.

    ``f`` is called once here to check that it returns one number (a named error otherwise).
    The arithmetic on the NumPy side is float64; the HVPs run in ``x``'s dtype.

    ``x`` stays put while ``v`` changes, so the gradient of ``f`` is recorded once, on a tape
    kept by the operator (its values: the memory of one gradient), and each product pushes
    ``v`` through the recorded applications with their JVP rules
    (:func:`tfgrad.replay.push_tangents`, letting each tangent go once no later record reads
    it): forward over reverse without evaluating ``f`` or its gradient again, so a product
    costs only the tangents' work (on an MLP about 3/4 of the products of
    :func:`tfgrad.hvp`, and none of its recording).
    """

    def __init__(self, f: Callable, x: Any, what: str):
        arr = as_flat_vector(x, what)
        super().__init__(arr.shape[0], self._hvp, what, "Hessian")
        self.f = f
        self.dtype = arr.dtype
        self.x = tensor(arr)
        self._tape = self._source = self._grad = None  # the recorded gradient, on first use
        out = f(self.x)
        size = out.size if isinstance(out, Tensor) else np.size(out)
        if size != 1:
            shape = out.shape if isinstance(out, Tensor) else np.shape(out)
            raise ShapeError(
                f"{what}: f must return one number (a scalar loss), got shape {shape} for x of "
                f"shape ({self.n},); reduce it, e.g. tfgrad.sum(f(x)) or tfgrad.mean(f(x))."
            )

    def _hvp(self, v: np.ndarray) -> np.ndarray:
        if self._tape is None:
            with GradientTape(persistent=True) as tape:
                tracked = tape.watch(self.x)
                g = grad(self.f)(tracked)
            self._tape, self._source = tape, tracked.variable
            self._grad = g.variable if isinstance(g, Tracer) and g._trace is tape else None
        if self._grad is None:  # the gradient does not depend on x: H = 0
            return np.zeros(self.n, dtype=self.dtype)
        t = reshape(tensor(v.astype(self.dtype, copy=False)), (1, self.n))
        pushed = push_tangents(self._tape, {self._source: t}, batch=1, keep=(self._grad,))
        out = pushed.get(self._grad)
        return np.zeros(self.n, dtype=self.dtype) if out is None else out.numpy().reshape(self.n)

    def gradient(self) -> np.ndarray:
        return np.asarray(grad(self.f)(self.x).numpy(), dtype=np.float64).reshape(self.n)

    def dense(self) -> np.ndarray:
        """The exact n x n Hessian (forward over reverse, n tangents pushed in batches: the
        work of n HVPs, counted as such), symmetrised against rounding."""
        self.hvps += self.n
        h = np.asarray(hessian(self.f)(self.x).numpy(), dtype=np.float64).reshape(self.n, self.n)
        return 0.5 * (h + h.T)


def as_operator(f: Any, x: Any, what: str) -> CurvatureOperator:
    """The Hessian of ``f`` at ``x``, or ``f`` itself when it is a CurvatureOperator (then
    ``x`` must be None), counted afresh for this call."""
    if isinstance(f, CurvatureOperator):
        if x is not None:
            raise SecondOrderError(
                f"{what}: given an operator ({f!r}), x must be None: the operator already "
                "holds its point; call it as " + what + "(operator, None, ...)."
            )
        return f.counted(what)
    return HessianOperator(f, x, what)
