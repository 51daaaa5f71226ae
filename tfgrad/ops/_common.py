"""What every op front end shares: turning arguments into tensors, promotion, shape checks."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import config
from ..backends.base import CAST
from ..dtypes import DType, as_dtype, float64, result_dtype
from ..errors import DtypeError, ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ..tensor import tensor as concrete_tensor  # from data only; the public one is below

PYTHON_SCALARS = (bool, int, float)  # weak; NumPy scalars carry their dtype


def as_tensor(x: Any, dtype: DType | None = None) -> Tensor:
    """A Tensor from a Tensor, a NumPy array, a list or a Python scalar (cast to ``dtype``).

    Nested lists and tuples that hold tensors are stacked with tfgrad ops, so derivatives flow
    through them (``[x, 2 * x]`` is ``stack([x, 2 * x])``).
    """
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype is dtype else bind(cast_p, x, dtype=dtype.numpy)
    if isinstance(x, (list, tuple)) and holds_tensor(x):
        shape_of(x)  # a ragged nesting fails here, before any stack is recorded on a tape
        return _stack_nested(x, dtype if dtype is not None else dtype_of(x))
    return concrete_tensor(x, dtype)  # a scalar constant is a host-to-backend copy, not a kernel


def holds_tensor(x: Any) -> bool:
    """Whether a (nested) list or tuple has a Tensor among its elements."""
    return any(
        isinstance(e, Tensor) or (isinstance(e, (list, tuple)) and holds_tensor(e)) for e in x
    )


def _nested_leaves(x: Any):
    for e in x:
        if isinstance(e, (list, tuple)):
            yield from _nested_leaves(e)
        else:
            yield e


def _stack_nested(x: Any, dtype: DType) -> Tensor:
    if not (isinstance(x, (list, tuple)) and holds_tensor(x)):
        return as_tensor(x, dtype)  # a tensor, or constants only: one host-to-backend copy
    return _stack([_stack_nested(e, dtype) for e in x])


def _stack(tensors: list[Tensor]) -> Tensor:
    raise AssertionError("tfgrad.ops.movement installs stack here when it is imported")


def install_stack(stack: Callable[[list[Tensor]], Tensor]) -> None:
    """Called by :mod:`.movement` with its ``stack``: it builds on this module, so the lifting
    of nested lists gets it this way and the imports point one way."""
    global _stack
    _stack = stack


def tensor(data: Any, dtype: Any = None) -> Tensor:
    """Make a Tensor from a Python number, nested lists, a NumPy array or a Tensor.

    The dtype follows NumPy (``tensor(1.0)`` is float64, ``tensor([1, 2])`` int64) unless given.
    Lists may hold tensors, also ones being differentiated: they are stacked, and derivatives
    flow through (Python numbers among them are weak, as in arithmetic).

    >>> import tfgrad as tg
    >>> tg.tensor([[1, 2], [3, 4]], dtype="float32").shape
    (2, 2)
    >>> tg.grad(lambda x: tg.sum(tg.tensor([x, 2.0 * x])))(tg.tensor(1.0)).item()
    3.0
    """
    return as_tensor(data, None if dtype is None else as_dtype(dtype))


def dtype_of(x: Any) -> DType | Any:
    """A tensor's dtype, or the value itself for a weak Python scalar (see result_dtype)."""
    if isinstance(x, Tensor):
        return x.dtype
    if isinstance(x, np.generic):  # before the Python check: np.float64 subclasses float
        return as_dtype(x.dtype)
    if isinstance(x, PYTHON_SCALARS):
        return x
    if isinstance(x, np.ndarray):
        return as_dtype(x.dtype)
    if isinstance(x, (list, tuple)) and holds_tensor(x):
        return result_dtype(*(dtype_of(leaf) for leaf in _nested_leaves(x)))
    return concrete_tensor(x).dtype


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape ``x`` has as a tensor, found without converting it (nothing is recorded)."""
    if isinstance(x, Tensor):
        return x.shape
    if not (isinstance(x, (list, tuple)) and holds_tensor(x)):
        return tuple(np.shape(x))
    shapes = [shape_of(e) for e in x]
    if len(set(shapes)) > 1:
        listed = ", ".join(str(s) for s in dict.fromkeys(shapes))
        raise ShapeError(
            f"tensor: a nested list of tensors must be rectangular, but its elements have "
            f"shapes {listed}; give every element of a list the same shape (or stack and "
            "concatenate explicitly)."
        )
    return (len(shapes),) + shapes[0]


def to_float(x: Any, op: str) -> Tensor:
    """``x`` as a floating tensor: integers and bools become float64, as in NumPy. The
    composites start here, so a cast hook (``tfgrad.amp.autocast``) sees them by ``op``."""
    x = as_tensor(x)
    if config._cast_policy is not None:
        (x,) = config._cast_policy(op, (x,))
    return x if x.dtype.is_floating else bind(cast_p, x, dtype=float64.numpy)


def broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = " and ".join(str(s) for s in shapes)
        raise ShapeError(
            f"{op}: shapes {listed} do not broadcast (NumPy rules: trailing dimensions must be "
            "equal or 1); reshape or expand_dims one of them."
        ) from None


def check_broadcast(op: str, *shapes: tuple[int, ...]) -> None:
    """Raise :func:`broadcast_shapes`' error unless ``shapes`` broadcast together: a few Python
    comparisons for the shapes of the hot path ((B, 1, n) against (n,), say), as shapes that
    broadcast pairwise broadcast together."""
    for i, a in enumerate(shapes):
        for b in shapes[i + 1 :]:
            if a != b:
                for m, n in zip(reversed(a), reversed(b)):
                    if m != n and m != 1 and n != 1:
                        broadcast_shapes(op, *shapes)


def _fast_pair(op: str, x: Any, y: Any, floating: bool) -> list[Tensor] | None:
    # The common cases of the hot path, answered without the general promotion: two tensors of
    # one dtype (any shapes that broadcast: a batch of tangents against a primal, too), or a
    # float tensor with a Python float or int (weak: it takes the tensor's dtype).
    if isinstance(x, Tensor):
        if isinstance(y, Tensor):
            if x._dtype is y._dtype and (not floating or x._dtype.kind == "f"):
                if x._shape != y._shape and x._shape and y._shape:  # () broadcasts to any
                    check_broadcast(op, x._shape, y._shape)
                return [x, y]
            return None
        if type(y) in _WEAK_NUMBERS and x._dtype.kind == "f":
            return [x, weak_constant(y, x._dtype)]
    elif type(x) in _WEAK_NUMBERS and isinstance(y, Tensor) and y._dtype.kind == "f":
        return [weak_constant(x, y._dtype), y]
    return None


_WEAK_NUMBERS = (float, int)  # exact types: bool (an int subclass) promotes differently
_CONSTANTS: dict[tuple, Tensor] = {}
CONSTANTS_KEPT = 512  # distinct constants cached at most (a loop over many values: no growth)


def weak_constant(value: float | int, dtype: DType) -> Tensor:
    """A weak Python number (``x * 1.01``) as a tensor of ``dtype``, converted once per value,
    dtype and backend: tensors are immutable, so one serves every use. Zeros and NaN are made
    afresh each time (``-0.0 == 0.0`` and ``nan != nan``: as a key, neither is exact)."""
    backend = config._current or config.current_backend()
    key = (value, type(value), dtype, backend)
    found = _CONSTANTS.get(key)
    if found is not None:
        return found
    made = concrete_tensor(value, dtype)
    if value and value == value and type(made._data) is np.ndarray:  # host buffers only
        if len(_CONSTANTS) >= CONSTANTS_KEPT:
            _CONSTANTS.clear()
        _CONSTANTS[key] = made
    return made


def promote_args(op: str, *args: Any, floating: bool = False) -> list[Tensor]:
    """Promote arguments to one dtype (weak Python scalars, as NumPy 2), check broadcasting."""
    if len(args) == 2:
        fast = _fast_pair(op, args[0], args[1], floating)
        if fast is not None:
            return fast
    dt = result_dtype(*(dtype_of(a) for a in args))
    if floating and not dt.is_floating:
        dt = float64
    # Shapes first: a failed op must not leave a cast of a tracked input on the tape.
    broadcast_shapes(op, *(shape_of(a) for a in args))
    return [as_tensor(a, dt) for a in args]


def normalize_axes(op: str, axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or sequence) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise ShapeError(
                f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions; "
                f"use an axis in [{-ndim}, {ndim - 1}]."
            )
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(
            f"{op}: axis {axis} names an axis twice (tensor with {ndim} dimensions); list each "
            "axis once."
        )
    return tuple(sorted(out)) if ndim else ()


def require_float(op: str, x: Tensor) -> None:
    if not x.dtype.is_floating:
        raise DtypeError(
            f"{op} needs a floating tensor, got {x.dtype.name}; cast with "
            f"x.astype('float64') first."
        )


# ---- Cast: needed by the lifting above, so it lives here ----
# ``dtype`` is a NumPy dtype, as the backends take it. Linear: its JVP is the cast of the tangent.
cast_p = Primitive("cast", 1, family=CAST, linear=True)
cast_p.defvjp(lambda g, ans, x, dtype: bind(cast_p, g, dtype=x.dtype.numpy))


def astype(x: Any, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between floating dtypes)."""
    return as_tensor(x, as_dtype(dtype))


def promote_args_nobroadcast(op: str, args) -> list[Tensor]:
    """Promote a sequence of arguments to one dtype (shapes are checked by the caller). A cast
    hook sees them first, by ``op``: under autocast, matmul of a float16 and a float32 tensor
    casts the float32 one down, rather than the float16 one up and both down again."""
    args = list(args)
    if not args:
        raise ShapeError(f"{op}: needs at least one tensor.")
    if config._cast_policy is not None:
        args = list(config._cast_policy(op, tuple(args)))
    dt = result_dtype(*(dtype_of(a) for a in args))
    return [as_tensor(a, dt) for a in args]
