"""Exact second derivatives of scalar functions: Hessians for any argument structure, HVPs,
the Hessian's diagonal, Laplacians, vᵀHv, and Jacobians that say which mode they chose.

Nothing here is an estimate: every number comes from the core's differentiable JVP/VJP rules
(:mod:`tfgrad.api`, :mod:`tfgrad.second_order.taylor`). Each docstring states the cost in
gradients, Hessian-vector products (HVPs) or forward passes; ``n`` is the number of input
elements.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .. import api
from ..api import _argnums, _float_leaf
from ..errors import OptionError, ShapeError
from ..ops import concatenate, diag, reshape, trace, zeros
from ..ops._common import as_tensor
from ..tensor import Tensor
from ..tree import tree_flatten, tree_unflatten
from .taylor import taylor_pass

__all__ = [
    "hessian", "hvp", "hessian_diagonal", "laplacian", "directional_second_derivative",
    "jacobian", "value_grad_and_laplacian",
]  # fmt: skip

jacobian = api.jacobian  # one hybrid scheduler: ``last_mode`` and ``last_choice`` say what ran


def _name(f: Callable) -> str:
    return getattr(f, "__name__", "f")


def _scalar(f: Callable, what: str) -> Callable:
    """``f`` with its output checked to be one number, the error naming ``what``."""

    def checked(*args):
        out = as_tensor(f(*args))
        if out.size != 1:
            raise ShapeError(
                f"{what}: {_name(f)} must return one number (a scalar loss), got an output of "
                f"shape {out.shape}; reduce it (tfgrad.sum, tfgrad.mean), or use "
                "tfgrad.jacobian for a vector-valued function."
            )
        return out

    checked.__name__ = _name(f)
    return checked


def _is_leaf(x: Any) -> bool:
    return not isinstance(x, (tuple, list, dict))


def hessian(f: Callable, argnums: int | Sequence[int] = 0, chunk_size: int | None = None):
    """The exact Hessian of a scalar ``f``, for any argument structure, in JAX's layout.

    For one tensor argument it is ``tfgrad.hessian`` (shape ``x.shape + x.shape``). For a tuple
    ``argnums=(0, 1)`` (or an argument that is itself a tuple/list/dict of tensors) the result
    is nested: ``((H_aa, H_ab), (H_ba, H_bb))`` with block ``H_ab`` of shape
    ``a.shape + b.shape`` (dicts nest the same way, by key).

    Cost: one gradient recorded on a tape, then ``n`` forward-mode tangents pushed through it
    (batched, ``chunk_size`` per pass as in :func:`tfgrad.jacfwd`): ``n`` HVPs in a few batched
    passes, where ``n`` is the total number of elements of the arguments differentiated.

    >>> import tfgrad as tg
    >>> import tfgrad.second_order as so
    >>> (haa, hab), (hba, hbb) = so.hessian(lambda a, b: tg.sum(a * a) * tg.sum(b), (0, 1))(
    ...     tg.tensor([1.0, 2.0]), tg.tensor([3.0]))
    >>> hab.shape, hab.numpy().ravel().tolist()
    ((2, 1), [2.0, 4.0])
    """
    api._chunk(chunk_size)

    def wrapped(*args):
        nums = _argnums(argnums, len(args), "hessian")
        if len(set(nums)) != len(nums):
            raise OptionError(
                f"hessian: argnums {argnums} names an argument twice; list each argument once "
                "(its block with itself is on the diagonal of the result)."
            )
        checked = _scalar(f, "hessian")
        if isinstance(argnums, int) and _is_leaf(args[nums[0]]):
            return api.hessian(checked, nums[0], chunk_size)(*args)
        tree = args[nums[0]] if isinstance(argnums, int) else tuple(args[i] for i in nums)
        leaves, treedef = tree_flatten(tree)
        leaves = [_float_leaf(x, "hessian") for x in leaves]
        sizes = [x.size for x in leaves]
        starts = [0]
        for s in sizes:
            starts.append(starts[-1] + s)
        if not leaves:
            return tree_unflatten(treedef, [])
        z = concatenate([reshape(x, (x.size,)) for x in leaves])

        def f_flat(z_):
            parts = [reshape(z_[a:b], x.shape) for a, b, x in zip(starts, starts[1:], leaves)]
            sub = tree_unflatten(treedef, parts)
            new = list(args)
            if isinstance(argnums, int):
                new[nums[0]] = sub
            else:
                for i, s in zip(nums, sub):
                    new[i] = s
            return checked(*new)

        h = api.hessian(f_flat, 0, chunk_size)(z)  # (N, N)

        def block(i, j):
            (a, b), (c, d) = (starts[i], starts[i + 1]), (starts[j], starts[j + 1])
            return reshape(h[a:b, c:d], leaves[i].shape + leaves[j].shape)

        rows = [tree_unflatten(treedef, [block(i, j) for j in range(len(leaves))])
                for i in range(len(leaves))]  # fmt: skip
        return tree_unflatten(treedef, rows)

    wrapped.__name__ = f"hessian({_name(f)})"
    return wrapped


def _check_like(what: str, x: Any, v: Any) -> None:
    x_leaves, x_def = tree_flatten(x)
    v_leaves, v_def = tree_flatten(v)
    if len(x_leaves) != len(v_leaves):
        raise ShapeError(
            f"{what}: x has {len(x_leaves)} tensors but v has {len(v_leaves)}; pass a v with "
            "the same structure as x (one tangent per argument)."
        )
    for i, (a, b) in enumerate(zip(x_leaves, v_leaves)):
        sa, sb = as_tensor(a).shape, as_tensor(b).shape
        if sa != sb:
            where = "" if len(x_leaves) == 1 else f" (argument {i})"
            raise ShapeError(
                f"{what}: v has shape {sb} but x has shape {sa}{where}; v must have x's shape "
                "(one entry per input element)."
            )


def hvp(f: Callable, x: Any, v: Any) -> Any:
    """The Hessian-vector product ``H(x)·v`` of a scalar ``f``, exact, without forming H.

    Forward over reverse: one forward-mode pass over one gradient, about the cost of two
    gradients. ``x`` and ``v`` are a tensor each, or tuples of them (one per argument of
    ``f``) of equal shapes.

    >>> import tfgrad as tg
    >>> import tfgrad.second_order as so
    >>> so.hvp(lambda x: tg.sum(x ** 3), tg.tensor([1.0, 2.0]), tg.tensor([1.0, 1.0])).numpy()
    array([ 6., 12.])
    """
    _check_like("hvp", x, v)
    return api.hvp(_scalar(f, "hvp"), x, v)


def directional_second_derivative(f: Callable, x: Any, v: Any) -> Tensor:
    """``vᵀ H(x) v``, the second derivative of ``f`` along ``v``: d²/dt² f(x + t v) at t = 0.

    Forward over forward (a ``jvp`` of a ``jvp``): one forward pass carrying two nested
    tangents, about four evaluations of ``f``, no tape and no H.

    >>> import tfgrad as tg
    >>> import tfgrad.second_order as so
    >>> so.directional_second_derivative(
    ...     lambda x: tg.sum(x ** 3), tg.tensor([1.0, 2.0]), tg.tensor([1.0, 1.0])).item()
    18.0
    """
    _check_like("directional_second_derivative", x, v)
    single = not isinstance(x, (tuple, list))
    xs = (x,) if single else tuple(x)
    vs = (v,) if single else tuple(v)
    checked = _scalar(f, "directional_second_derivative")

    def along(*xs_):
        return api.jvp(checked, xs_, vs)[1]

    return reshape(api.jvp(along, xs, vs)[1], ())


_DIAGONAL_METHODS = ("hessian", "forward")
_LAPLACIAN_METHODS = ("hessian", "forward")


def _method(what: str, method: str, allowed: tuple) -> str:
    if method not in allowed:
        raise OptionError(
            f"{what}: unknown method {method!r}; use one of "
            + ", ".join(repr(m) for m in allowed)
            + "."
        )
    return method


def hessian_diagonal(f: Callable, method: str = "hessian", chunk_size: int | None = None):
    """The exact diagonal of the Hessian of a scalar ``f`` of one tensor (shape ``x.shape``).

    An exact diagonal needs ``n`` second-order directional derivatives in general (there is no
    exact shortcut: a stochastic estimate would not be exact). ``method="hessian"``: the full
    Hessian (one gradient, then ``n`` batched HVPs; ``n²`` numbers held) and its diagonal.
    ``method="forward"``: Taylor mode without collapsing: one forward pass carrying ``n``
    first-order tangents and ``n`` second-order coefficients (``2n`` tangents per value, no tape,
    never ``n²`` numbers unless a matmul-like op needs them; see
    :mod:`tfgrad.second_order.taylor`). ``chunk_size`` splits the ``n`` directions into passes.

    >>> import tfgrad as tg
    >>> import tfgrad.second_order as so
    >>> so.hessian_diagonal(lambda x: tg.sum(x ** 3))(tg.tensor([1.0, 2.0])).numpy()
    array([ 6., 12.])
    """
    _method("hessian_diagonal", method, _DIAGONAL_METHODS)
    api._chunk(chunk_size)
    checked = _scalar(f, "hessian_diagonal")

    def wrapped(x):
        x = _float_leaf(x, "hessian_diagonal")
        if method == "forward":
            return taylor_pass(checked, x, collapse=False, chunk_size=chunk_size)[2]
        if x.size == 0:
            return zeros(x.shape, x.dtype)
        h = api.hessian(checked, 0, chunk_size)(x)
        return reshape(diag(reshape(h, (x.size, x.size))), x.shape)

    wrapped.__name__ = f"hessian_diagonal({_name(f)})"
    return wrapped


def laplacian(f: Callable, method: str = "forward", chunk_size: int | None = None):
    """The exact Laplacian ``Δf = Σ_i ∂²f/∂x_i²`` (the trace of the Hessian) of a scalar ``f``
    of one tensor.

    ``method="forward"`` (default): the forward Laplacian (Li et al. 2023; collapsed Taylor
    mode, Dangel et al. 2024): ONE forward pass carrying the value, the ``n`` first-order
    tangents (batched) and one collapsed second-order coefficient: no tape, no ``n`` HVPs, no
    ``n²`` numbers (except where a matmul-like op mixes directions; see
    :mod:`tfgrad.second_order.taylor`). ``method="hessian"``: the trace of the full Hessian
    (one gradient, then ``n`` batched HVPs). ``chunk_size`` splits the directions into passes.

    >>> import tfgrad as tg
    >>> import tfgrad.second_order as so
    >>> so.laplacian(lambda x: tg.sum(x ** 3))(tg.tensor([1.0, 2.0])).item()
    18.0
    """
    _method("laplacian", method, _LAPLACIAN_METHODS)
    api._chunk(chunk_size)
    checked = _scalar(f, "laplacian")

    def wrapped(x):
        x = _float_leaf(x, "laplacian")
        if method == "forward":
            return taylor_pass(checked, x, collapse=True, chunk_size=chunk_size)[2]
        if x.size == 0:
            return zeros((), x.dtype)
        return trace(reshape(api.hessian(checked, 0, chunk_size)(x), (x.size, x.size)))

    wrapped.__name__ = f"laplacian({_name(f)})"
    return wrapped


def value_grad_and_laplacian(f: Callable, chunk_size: int | None = None):
    """``(f(x), ∇f(x), Δf(x))`` from one forward-Laplacian pass (see :func:`laplacian`): the
    gradient comes with it, as the first-order tangents along the basis directions.

    >>> import tfgrad as tg
    >>> import tfgrad.second_order as so
    >>> value, g, lap = so.value_grad_and_laplacian(lambda x: tg.sum(x ** 3))(
    ...     tg.tensor([1.0, 2.0]))
    >>> value.item(), g.numpy().tolist(), lap.item()
    (9.0, [3.0, 12.0], 18.0)
    """
    api._chunk(chunk_size)
    checked = _scalar(f, "value_grad_and_laplacian")

    def wrapped(x):
        x = _float_leaf(x, "value_grad_and_laplacian")
        return taylor_pass(checked, x, collapse=True, chunk_size=chunk_size)

    wrapped.__name__ = f"value_grad_and_laplacian({_name(f)})"
    return wrapped
