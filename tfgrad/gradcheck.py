"""``gradcheck``: analytic derivatives against central differences, in random directions.

For each check a random input direction ``v`` (and output direction ``u``) is drawn; forward
mode is checked as ``J v`` against ``(f(x + h v) - f(x - h v)) / 2h``, reverse mode as
``<u, J v> == <Jᵀ u, v>``. With ``order=2`` the same checks run on the derivative functions
themselves, which covers second derivatives in both modes (as JAX's ``check_grads``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .api import jvp, vjp
from .errors import GradcheckError, NumericalError
from .ops._common import as_tensor
from .tensor import tensor
from .tree import tree_flatten, tree_unflatten

__all__ = ["gradcheck"]


def _flat(outs: Any) -> np.ndarray:
    leaves, _ = tree_flatten(outs)
    return np.concatenate([np.asarray(as_tensor(o).numpy(), np.float64).ravel() for o in leaves])


def gradcheck(
    f: Callable,
    args: Sequence[Any],
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    seed: int = 0,
) -> bool:
    """Check ``f``'s derivatives at ``args`` up to ``order``; raise on disagreement.

    ``args`` are converted to float64 (differences need the precision). Returns ``True`` when
    every check passes; otherwise raises :class:`~tfgrad.errors.GradcheckError` with the
    analytic value beside the numeric one.

    >>> import tfgrad as tg
    >>> tg.gradcheck(lambda x: tg.sum(tg.sin(x) * x), (tg.tensor([0.5, 1.5]),))
    True
    """
    for m in modes:
        if m not in ("fwd", "rev"):
            raise ValueError(f"gradcheck: modes are 'fwd' and 'rev', got {m!r}.")
    args = tuple(tensor(np.asarray(as_tensor(a).numpy(), np.float64)) for a in args)
    for i, a in enumerate(args):
        if not np.isfinite(a.numpy()).all():
            raise NumericalError(
                f"gradcheck: argument {i} (shape {a.shape}) holds NaN or inf; finite "
                "differences need finite inputs."
            )
    rng = np.random.default_rng(seed)
    _check(f, args, order, tuple(modes), eps, atol, rtol, rng, label="f")
    return True


def _random_like(x, rng) -> Any:
    return tensor(rng.standard_normal(x.shape))


def _numeric_jvp(f, args, tangents, eps) -> np.ndarray:
    plus = f(*(a + eps * t for a, t in zip(args, tangents)))
    minus = f(*(a - eps * t for a, t in zip(args, tangents)))
    return (_flat(plus) - _flat(minus)) / (2 * eps)


def _compare(analytic: float | np.ndarray, numeric, atol, rtol, what: str) -> None:
    analytic, numeric = np.asarray(analytic, np.float64), np.asarray(numeric, np.float64)
    if not np.allclose(analytic, numeric, atol=atol, rtol=rtol):
        err = np.max(np.abs(analytic - numeric))
        raise GradcheckError(
            f"gradcheck failed for {what}:\n  analytic: {analytic}\n  numeric:  {numeric}\n"
            f"  max abs difference {err:.3e} (atol={atol}, rtol={rtol})"
        )


def _check(f, args, order, modes, eps, atol, rtol, rng, label) -> None:
    tangents = tuple(_random_like(a, rng) for a in args)
    numeric = _numeric_jvp(f, args, tangents, eps)
    if "fwd" in modes:
        _, analytic = jvp(f, args, tangents)
        _compare(_flat(analytic), numeric, atol, rtol, f"forward mode (J v) of {label}")
        if order > 1:

            def f_jvp(*xs):
                return jvp(f, xs, tangents)[1]

            _check(f_jvp, args, order - 1, modes, eps, atol, rtol, rng, f"jvp({label})")
    if "rev" in modes:
        out, vjp_fn = vjp(f, *args)
        out_leaves, out_def = tree_flatten(out)
        cotangents = [_random_like(as_tensor(o), rng) for o in out_leaves]
        cot_tree = tree_unflatten(out_def, cotangents)
        analytic = vjp_fn(cot_tree)
        lhs = float(np.dot(_flat(analytic), _flat(tangents)))
        rhs = float(np.dot(_flat(cotangents), numeric))
        _compare(lhs, rhs, atol, rtol, f"reverse mode (<u, J v> = <Jᵀu, v>) of {label}")
        if order > 1:

            def f_vjp(*xs):
                return vjp(f, *xs)[1](cot_tree)

            _check(f_vjp, args, order - 1, modes, eps, atol, rtol, rng, f"vjp({label})")
