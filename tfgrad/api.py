"""The functional API: derivatives as functions of functions (JAX style).

Everything here composes ``GradientTape`` (reverse mode) and ``forward_pass`` (forward mode);
there are no rules of its own. Arguments may be Tensors, NumPy arrays, Python floats, or
tuples/lists/dicts of them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from .errors import DtypeError, OptionError, ShapeError
from .forward import forward_pass
from .ops import concatenate, eye, reshape, stack, transpose, zeros
from .ops._common import as_tensor
from .primitive import Tracer
from .replay import push_tangents
from .tape import GradientTape
from .tensor import Tensor
from .tree import tree_flatten, tree_map, tree_unflatten

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian", "hvp",
]  # fmt: skip


def _float_leaf(x: Any, what: str) -> Tensor:
    t = as_tensor(x)
    if not t.dtype.is_floating:
        raise DtypeError(
            f"{what}: cannot differentiate with respect to a {t.dtype.name} input (shape "
            f"{t.shape}); pass floats, e.g. tfgrad.tensor(x, dtype='float64')."
        )
    return t


def _unwrap(x: Any, trace: Any) -> Any:
    """Strip one transformation's tracer (keeping any of outer transformations)."""
    if isinstance(x, Tracer) and x._trace is trace:
        return x.primal
    return x


def _argnums(argnums: int | Sequence[int], n_args: int, what: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for i in nums:
        if not -n_args <= i < n_args:
            raise ShapeError(f"{what}: argnums {argnums} is out of range for {n_args} arguments.")
    return tuple(i % n_args for i in nums)


def _zeros_for_none(grads: Any, like: Any) -> Any:
    """Gradients with ``None`` (not connected) replaced by zeros of the input's shape."""
    g_leaves, _ = tree_flatten(grads, none_is_leaf=True)
    x_leaves, treedef = tree_flatten(like)
    filled = [zeros(x.shape, x.dtype) if g is None else g for g, x in zip(g_leaves, x_leaves)]
    return tree_unflatten(treedef, filled)


# ---- Reverse mode ----
def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """``f``'s value and its gradient with respect to ``args[argnums]``, in one reverse sweep.

    ``f`` must return a tensor with one element (with ``has_aux``, a pair ``(value, aux)``).

    >>> import tfgrad as tg
    >>> value, g = tg.value_and_grad(lambda x: tg.sum(x * x))(tg.tensor([1.0, 2.0]))
    >>> g.numpy()
    array([2., 4.])
    """

    def wrapped(*args):
        nums = _argnums(argnums, len(args), "grad")
        args = list(args)
        with GradientTape() as tape:
            for i in nums:
                args[i] = tree_map(lambda x: tape.watch(_float_leaf(x, "grad")), args[i])
            out = f(*args)
            aux = None
            if has_aux:
                out, aux = out
        out = as_tensor(out)
        if out.size != 1:
            raise ShapeError(
                f"grad: the function must return one number, got shape {out.shape}; reduce it "
                "(tfgrad.sum) or use tfgrad.jacobian / tfgrad.vjp for vector outputs."
            )
        sources = [args[i] for i in nums]
        grads = _zeros_for_none(tape.gradient(out, sources), sources)
        result = grads[0] if isinstance(argnums, int) else tuple(grads)
        value = _unwrap(out, tape)
        return ((value, aux), result) if has_aux else (value, result)

    wrapped.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return wrapped


def grad(f: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False):
    """The gradient of a scalar function, as a function: ``grad(f)(x)`` is df/dx at ``x``.

    Compose it for higher derivatives: ``grad(grad(f))``.

    >>> import tfgrad as tg
    >>> tg.grad(lambda x: x ** 3)(tg.tensor(2.0)).item()
    12.0
    """
    value_and_grad_f = value_and_grad(f, argnums, has_aux)

    def wrapped(*args):
        if has_aux:
            (_, aux), g = value_and_grad_f(*args)
            return g, aux
        return value_and_grad_f(*args)[1]

    wrapped.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return wrapped


def vjp(f: Callable, *primals: Any, has_aux: bool = False):
    """``(f(*primals), vjp_fn)``: ``vjp_fn(cotangent)`` gives cotangentᵀ·J for every primal.

    ``vjp_fn`` may be called many times (the recorded tape is kept).
    """
    with GradientTape(persistent=True) as tape:
        watched = tree_map(lambda x: tape.watch(_float_leaf(x, "vjp")), list(primals))
        out = f(*watched)
        aux = None
        if has_aux:
            out, aux = out
    out_leaves, out_def = tree_flatten(out)
    out_leaves = [as_tensor(o) for o in out_leaves]

    def vjp_fn(cotangent: Any) -> tuple:
        cot_leaves, _ = tree_flatten(cotangent)
        if len(cot_leaves) != len(out_leaves):
            raise ShapeError(
                f"vjp_fn: expected {len(out_leaves)} cotangents, got {len(cot_leaves)}."
            )
        grads = tape.gradient(out_leaves, watched, output_gradients=cot_leaves)
        return tuple(_zeros_for_none(grads, watched))

    value = tree_unflatten(out_def, [_unwrap(o, tape) for o in out_leaves])
    return (value, vjp_fn, aux) if has_aux else (value, vjp_fn)


# ---- Forward mode ----
def jvp(f: Callable, primals: Sequence[Any], tangents: Sequence[Any]):
    """``(f(*primals), J·tangents)`` by one forward pass carrying tangents.

    >>> import tfgrad as tg
    >>> out, t = tg.jvp(tg.sin, (tg.tensor(0.0),), (tg.tensor(1.0),))
    >>> t.item()
    1.0
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise ShapeError("jvp: primals and tangents must be tuples, e.g. jvp(f, (x,), (v,)).")
    p_leaves, p_def = tree_flatten(list(primals))
    t_leaves, t_def = tree_flatten(list(tangents))
    if len(p_leaves) != len(t_leaves):
        raise ShapeError(f"jvp: {len(p_leaves)} primals but {len(t_leaves)} tangents.")
    p_leaves = [_float_leaf(p, "jvp") for p in p_leaves]
    out_def = []

    def flat_f(*leaves):
        out = f(*tree_unflatten(p_def, list(leaves)))
        leaves_out, d = tree_flatten(out)
        out_def.append(d)
        return leaves_out

    values, out_tangents = forward_pass(flat_f, p_leaves, t_leaves)
    return tree_unflatten(out_def[0], values), tree_unflatten(out_def[0], out_tangents)


# ---- Jacobians and Hessians ----
def _single_input(f: Callable, args: tuple, argnum: int):
    x = _float_leaf(args[argnum], "jacobian")

    def f_x(x_):
        return as_tensor(f(*args[:argnum], x_, *args[argnum + 1 :]))

    return x, f_x


def _basis(shape: tuple[int, ...], dtype) -> list[Tensor]:
    n = math.prod(shape)
    identity = eye(n, dtype=dtype)
    return [reshape(identity[i], shape) for i in range(n)]


def _jac_reverse(x, out, vjp_fn):
    """One reverse sweep per output element, on an already recorded evaluation."""
    rows = [vjp_fn(e)[0] for e in _basis(out.shape, out.dtype)]
    if not rows:
        return zeros(out.shape + x.shape, x.dtype)
    return reshape(stack(rows), out.shape + x.shape)


# A batched push holds B tangents of every recorded value at once: B is chosen so that the widest
# of them stays near this many elements (32 MiB in float64).
_FWD_CHUNK_ELEMENTS = 1 << 22


def _jac_forward(f_x, x, chunk_size: int | None = None):
    """Forward mode, one basis tangent per input element. ``f`` is evaluated once, on a tape,
    and the basis tangents are pushed through the recorded ops with their JVP rules
    (:func:`tfgrad.replay.push_tangents`), ``chunk_size`` of them per pass with a batch axis
    (all of them in one pass unless the tape is large); ``chunk_size=1`` pushes them one by
    one. Either way the tangents are those a fresh ``jvp`` per column would give, without
    re-running ``f`` each time (where ``f`` is itself a gradient, as in ``hessian``)."""
    with GradientTape(persistent=True) as tape:
        tracked = tape.watch(x)
        out = as_tensor(f_x(tracked))
    out_var = out.variable if isinstance(out, Tracer) and out._trace is tape else None
    out_value = _unwrap(out, tape)
    n = x.size
    if n == 0:
        return zeros(out_value.shape + x.shape, x.dtype)
    if out_var is None:
        return zeros(out_value.shape + x.shape, out_value.dtype)
    if chunk_size == 1:
        cols = []
        for e in _basis(x.shape, x.dtype):
            t = push_tangents(tape, {tracked.variable: e}).get(out_var)
            cols.append(zeros(out_value.shape, out_value.dtype) if t is None else t)
        return reshape(stack(cols, axis=-1), out_value.shape + x.shape)
    if chunk_size is None:
        widest = max([n, out_value.size] + [r.ans.size for r in tape.records])
        chunk_size = max(1, _FWD_CHUNK_ELEMENTS // widest)
    blocks = []
    for start in range(0, n, chunk_size):
        b = min(chunk_size, n - start)
        basis = reshape(eye(b, n, k=start, dtype=x.dtype), (b,) + x.shape)  # rows start..+b
        t = push_tangents(tape, {tracked.variable: basis}, batch=b, keep=(out_var,)).get(out_var)
        blocks.append(zeros((b,) + out_value.shape, out_value.dtype) if t is None else t)
    cols = blocks[0] if len(blocks) == 1 else concatenate(blocks)  # (n, *out)
    cols = transpose(cols, tuple(range(1, cols.ndim)) + (0,))
    return reshape(cols, out_value.shape + x.shape)


def jacrev(f: Callable, argnums: int = 0):
    """The Jacobian by reverse mode: one sweep per output element (shape ``out + in``)."""

    def wrapped(*args):
        x, f_x = _single_input(f, args, _argnums(argnums, len(args), "jacrev")[0])
        return _jac_reverse(x, *vjp(f_x, x))

    return wrapped


def jacfwd(f: Callable, argnums: int = 0, chunk_size: int | None = None):
    """The Jacobian by forward mode: one tangent per input element (shape ``out + in``).

    The tangents are pushed together, in batches of ``chunk_size`` (by default as many as fit
    in a few million elements per recorded value); ``chunk_size=1`` pushes one at a time."""

    chunk_size = _chunk(chunk_size)

    def wrapped(*args):
        x, f_x = _single_input(f, args, _argnums(argnums, len(args), "jacfwd")[0])
        return _jac_forward(f_x, x, chunk_size)

    return wrapped


def _chunk(chunk_size: int | None) -> int | None:
    if chunk_size is not None and (isinstance(chunk_size, bool) or int(chunk_size) < 1):
        raise ValueError(f"jacfwd: chunk_size must be a positive integer, got {chunk_size!r}.")
    return None if chunk_size is None else int(chunk_size)


def jacobian(f: Callable, argnums: int = 0, mode: str = "auto"):
    """The Jacobian, choosing the mode by shape (the hybrid scheduler).

    Reverse mode costs one sweep per *output* element, forward mode one pass per *input*
    element; ``mode="auto"`` evaluates ``f`` once, then takes whichever needs fewer passes
    (reverse on ties, reusing that first evaluation). ``wrapped.last_mode`` tells which ran
    (``"fwd"`` or ``"rev"``) and ``wrapped.last_choice`` why, e.g. ``"rev: 1 output element
    <= 3 input elements"``.

    >>> import tfgrad as tg
    >>> jac = tg.jacobian(lambda x: tg.sum(x * x))
    >>> jac(tg.tensor([1.0, 2.0, 3.0])).numpy()
    array([2., 4., 6.])
    >>> jac.last_choice
    'rev: 1 output element <= 3 input elements (reverse needs one sweep per output element)'
    """
    if mode not in ("auto", "fwd", "rev"):
        raise OptionError(
            f"jacobian: mode must be 'auto', 'fwd' or 'rev', got {mode!r}; 'auto' picks the "
            "mode needing fewer passes."
        )

    def wrapped(*args):
        x, f_x = _single_input(f, args, _argnums(argnums, len(args), "jacobian")[0])
        if mode == "fwd":
            wrapped.last_mode = "fwd"
            wrapped.last_choice = f"fwd: asked for (mode='fwd'), {x.size} forward passes"
            return _jac_forward(f_x, x)
        out, vjp_fn = vjp(f_x, x)
        if mode == "rev":
            wrapped.last_mode = "rev"
            wrapped.last_choice = f"rev: asked for (mode='rev'), {out.size} reverse sweeps"
            return _jac_reverse(x, out, vjp_fn)
        n_out, n_in = out.size, x.size
        s_out, s_in = ("" if n_out == 1 else "s"), ("" if n_in == 1 else "s")
        if n_out <= n_in:
            wrapped.last_mode = "rev"
            wrapped.last_choice = (
                f"rev: {n_out} output element{s_out} <= {n_in} input element{s_in} "
                "(reverse needs one sweep per output element)"
            )
            return _jac_reverse(x, out, vjp_fn)
        wrapped.last_mode = "fwd"
        wrapped.last_choice = (
            f"fwd: {n_in} input element{s_in} < {n_out} output element{s_out} "
            "(forward needs one pass per input element)"
        )
        return _jac_forward(f_x, x)

    wrapped.last_mode = None
    wrapped.last_choice = None
    return wrapped


def hessian(f: Callable, argnums: int = 0, chunk_size: int | None = None):
    """The exact Hessian of a scalar function: forward mode over reverse mode
    (``chunk_size`` as in :func:`jacfwd`).

    >>> import tfgrad as tg
    >>> tg.hessian(lambda x: tg.sum(x ** 3))(tg.tensor([1.0, 2.0])).numpy()
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(grad(f, argnums), argnums, chunk_size)


_HVP_MODES = ("rev-over-fwd", "fwd-over-rev")


def hvp(f: Callable, primals: Any, tangents: Any, mode: str = "rev-over-fwd"):
    """The Hessian-vector product H·v of a scalar ``f`` at ``primals``, exactly, without
    forming H.

    ``primals``/``tangents`` are a single tensor or tuples of them (one per argument of f).

    ``mode="rev-over-fwd"`` (the default) runs one forward pass of ``f`` carrying ``v`` on a
    tape, which gives the directional derivative ∇f·v, then one reverse sweep of it:
    ∇(∇f·v) = H·v (H is symmetric). It never forms ∇f itself, so the reverse sweep visits
    only what depends on ``primals``: about the cost of a gradient plus the forward tangents
    (on an MLP, one extra product per layer). ``mode="fwd-over-rev"`` is ``jvp(grad(f))``,
    JAX's usual HVP: the gradient and its tangent, about two gradients.

    >>> import tfgrad as tg
    >>> tg.hvp(lambda x: tg.sum(x ** 3), tg.tensor([1.0, 2.0]), tg.tensor([1.0, 1.0])).numpy()
    array([ 6., 12.])
    """
    if mode not in _HVP_MODES:
        raise OptionError(
            f"hvp: mode must be 'rev-over-fwd' or 'fwd-over-rev', got {mode!r}; "
            "'rev-over-fwd' is the cheaper one."
        )
    single = not isinstance(primals, (tuple, list))
    primals = (primals,) if single else tuple(primals)
    tangents = (tangents,) if single else tuple(tangents)
    if mode == "fwd-over-rev":
        grad_all = grad(f, argnums=tuple(range(len(primals))))
        _, out = jvp(lambda *xs: grad_all(*xs), primals, tangents)
        return out[0] if single else out
    if len(primals) != len(tangents):
        raise ShapeError(f"hvp: {len(primals)} primals but {len(tangents)} tangents.")
    with GradientTape() as tape:
        watched = tree_map(lambda x: tape.watch(_float_leaf(x, "hvp")), list(primals))
        value, directional = jvp(f, watched, list(tangents))  # f and ∇f·v, recorded
    value = as_tensor(value)
    if value.size != 1:
        raise ShapeError(
            f"hvp: the function must return one number, got shape {value.shape}; reduce it "
            "(tfgrad.sum), or use tfgrad.jvp / tfgrad.vjp for vector outputs."
        )
    out = tuple(_zeros_for_none(tape.gradient(as_tensor(directional), watched), watched))
    return out[0] if single else out
