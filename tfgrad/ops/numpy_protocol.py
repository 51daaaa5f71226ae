"""NumPy functions and ufuncs on tensors run tfgrad's ops (NumPy's dispatch protocols).

NumPy hands a call to ``__array_ufunc__`` (NEP 13) or ``__array_function__`` (NEP 18) of a
Tensor argument before touching its values; both are installed on Tensor here, from the ops
side, so ``np.sin(t)``, ``np.sum(t, axis=0)``, ``np.prod(t)``, ``np.where(c, t, 0)``,
``np.linspace(a, b)`` and ``array * t`` give a Tensor and differentiate like the tfgrad op
they call. Anything without a tfgrad counterpart raises :class:`~tfgrad.errors.NumpyDispatchError`
naming it: turning the tensor into a plain array instead would drop its derivative without a
word. So does an argument tfgrad does not take (``out=``: tensors are immutable; ``where=``,
``initial=``, ``order=`` ...).

The tables below (``UFUNCS``, ``UFUNC_METHODS``, ``FUNCTIONS``) are the whole mapping. An
entry lists NumPy's parameter names in NumPy's order, so positional arguments bind as in NumPy;
``numpy_name:tfgrad_name`` renames one. NumPy's first parameter is passed positionally; ``out``
must be None; ``dtype`` goes to the tfgrad function when it takes one, and otherwise casts the
input first (NumPy's accumulator dtype); any other parameter the tfgrad function does not take
is refused when given.

>>> import numpy as np
>>> import tfgrad as tg
>>> tg.grad(lambda x: np.sum(np.sin(x) * np.array([1.0, 2.0])))(tg.tensor([0.0, 0.0])).numpy()
array([1., 2.])
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import numpy as np

from ..dtypes import as_dtype
from ..errors import NumpyDispatchError
from ..tensor import Tensor
from . import composite, elementwise, linalg, movement, reduce
from ._common import as_tensor, astype, shape_of
from .creation import full_like, ones_like, zeros_like

__all__ = ["install"]


def _positive(x: Any) -> Tensor:
    return as_tensor(x)


def _take(x: Any, indices: Any, axis: int | None = None) -> Tensor:
    # numpy.take reads the flattened array when axis is None; tfgrad.take defaults to axis 0
    if axis is None:
        return movement.take(movement.reshape(x, (-1,)), indices, 0)
    return movement.take(x, indices, axis)


def _where(condition: Any, x: Any = None, y: Any = None) -> Tensor:
    if x is None or y is None:
        raise NumpyDispatchError(
            "numpy.where with only a condition returns the positions where it holds, whose "
            "number depends on the values; tfgrad has no such op. Use the three-argument form "
            "np.where(condition, x, y), or np.nonzero(condition.numpy()) for the positions."
        )
    return elementwise.where(condition, x, y)


def _ndim(x: Any) -> int:
    return len(shape_of(x))


def _size(x: Any, axis: int | None = None) -> int:
    shape = shape_of(x)
    return math.prod(shape) if axis is None else shape[axis]


def _reduce_along_axis_zero(reduction: Callable) -> Callable:
    # ufunc.reduce starts at axis 0 by default; tfgrad's reductions reduce every axis
    def reduce(x: Any, axis: Any = 0, keepdims: bool = False) -> Tensor:
        return reduction(x, axis, keepdims)

    return reduce


def _accumulate_along_axis_zero(scan: Callable) -> Callable:
    # ufunc.accumulate runs along axis 0 by default; tfgrad's scans flatten without an axis
    def accumulate(x: Any, axis: int = 0) -> Tensor:
        return scan(x, axis)

    return accumulate


# ---- The tables ----
# ufuncs whose tfgrad op has the same name, then the others
_SAME_NAME = (
    "add subtract multiply divide power negative sign exp expm1 log log1p sqrt sin cos tan tanh "
    "maximum minimum equal not_equal less less_equal greater greater_equal"
)
UFUNCS: dict[np.ufunc, Callable] = {
    **{getattr(np, name): getattr(elementwise, name) for name in _SAME_NAME.split()},
    np.positive: _positive,
    np.absolute: elementwise.abs,
    np.square: composite.square,
    np.matmul: linalg.matmul,
}

_REDUCE = "array axis dtype out keepdims initial where"
UFUNC_METHODS: dict[tuple[str, np.ufunc], tuple[Callable, str]] = {
    ("reduce", np.add): (_reduce_along_axis_zero(reduce.sum), _REDUCE),
    ("reduce", np.multiply): (_reduce_along_axis_zero(reduce.prod), _REDUCE),
    ("reduce", np.maximum): (_reduce_along_axis_zero(reduce.max), _REDUCE),
    ("reduce", np.minimum): (_reduce_along_axis_zero(composite.min), _REDUCE),
    ("accumulate", np.add): (_accumulate_along_axis_zero(reduce.cumsum), "array axis dtype out"),
    ("accumulate", np.multiply): (
        _accumulate_along_axis_zero(reduce.cumprod),
        "array axis dtype out",
    ),
}

_REDUCTION = "a axis dtype out keepdims initial where"
_EXTREMUM = "a axis out keepdims initial where"
FUNCTIONS: dict[Callable, tuple[Callable, str]] = {
    np.sum: (reduce.sum, _REDUCTION),
    np.prod: (reduce.prod, _REDUCTION),
    np.max: (reduce.max, _EXTREMUM),
    np.amax: (reduce.max, _EXTREMUM),
    np.min: (composite.min, _EXTREMUM),
    np.amin: (composite.min, _EXTREMUM),
    np.mean: (composite.mean, "a axis dtype out keepdims where"),
    np.var: (composite.var, "a axis dtype out ddof keepdims where mean correction"),
    np.all: (composite.all, "a axis out keepdims where"),
    np.any: (composite.any, "a axis out keepdims where"),
    np.cumsum: (reduce.cumsum, "a axis dtype out"),
    np.cumprod: (reduce.cumprod, "a axis dtype out"),
    np.clip: (composite.clip, "a a_min:lo a_max:hi out min:lo max:hi"),
    np.concatenate: (movement.concatenate, "arrays axis out dtype casting"),
    np.stack: (movement.stack, "arrays axis out dtype casting"),
    np.split: (movement.split, "ary indices_or_sections axis"),
    np.reshape: (movement.reshape, "a shape order newshape:shape copy"),
    np.transpose: (movement.transpose, "a axes"),
    np.broadcast_to: (reduce.broadcast_to, "array shape subok"),
    np.expand_dims: (movement.expand_dims, "a axis"),
    np.squeeze: (movement.squeeze, "a axis"),
    np.take: (_take, "a indices axis out mode"),
    np.where: (_where, "condition x y"),
    np.dot: (linalg.dot, "a b out"),
    np.outer: (linalg.outer, "a b out"),
    np.diag: (linalg.diag, "v k"),
    np.trace: (linalg.trace, "a offset:k axis1 axis2 dtype out"),
    np.linspace: (composite.linspace, "start stop num endpoint retstep dtype axis device"),
    np.zeros_like: (zeros_like, "a dtype order subok shape device"),
    np.ones_like: (ones_like, "a dtype order subok shape device"),
    np.full_like: (full_like, "a fill_value dtype order subok shape device"),
    np.shape: (shape_of, "a"),
    np.ndim: (_ndim, "a"),
    np.size: (_size, "a axis"),
}


# ---- Calling a tfgrad op with NumPy's arguments ----
def _name(func: Any) -> str:
    return f"{func.__module__}.{func.__name__}"


def _missing(what: str, values: tuple) -> NumpyDispatchError:
    tensors = [v for v in values if isinstance(v, Tensor)]
    about = ""
    if tensors:
        about = f" (called on a tensor of shape {tensors[0].shape}, {tensors[0].dtype.name})"
    return NumpyDispatchError(
        f"{what} has no tfgrad counterpart{about}, so it cannot run on a tensor and keep its "
        "derivative. Write it with tfgrad ops, define it as a primitive with tfgrad.extend, or "
        "call it on x.numpy() to work with plain values (no derivative flows through them)."
    )


def _refuse(what: str, parameter: str) -> NumpyDispatchError:
    if parameter == "out":
        return NumpyDispatchError(
            f"{what}: out= is not supported, tensors are immutable; use the returned tensor "
            "(x = x + y instead of x += y on a NumPy array)."
        )
    return NumpyDispatchError(
        f"{what}: tfgrad does not take the argument {parameter}=; leave it out, or call "
        f"{what} on x.numpy() to work with plain values (no derivative flows through them)."
    )


def _cast(value: Any, dtype: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_cast(v, dtype) for v in value]
    return astype(value, as_dtype(dtype))


_PARAMETERS: dict[Callable, frozenset[str]] = {}


def _takes(target: Callable) -> frozenset[str]:
    if target not in _PARAMETERS:
        _PARAMETERS[target] = frozenset(inspect.signature(target).parameters)
    return _PARAMETERS[target]


def call(what: str, target: Callable, spec: str, args: tuple, kwargs: dict) -> Any:
    """Run ``target`` on the arguments of a NumPy call whose parameters ``spec`` lists."""
    names = [entry.partition(":")[0] for entry in spec.split()]
    renames = dict(entry.split(":") for entry in spec.split() if ":" in entry)
    # NumPy has checked the call against its own signature before dispatching it here
    given = {**dict(zip(names, args)), **kwargs}
    takes = _takes(target)
    first = given.pop(names[0]) if names[0] in given else None
    options = {}
    for key, value in given.items():
        name = renames.get(key, key)
        if key == "dtype" and "dtype" not in takes:
            first = first if value is None else _cast(first, value)
        elif key != "out" and name in takes:
            options[name] = value
        elif value is not None:  # out=, or a parameter tfgrad does not have
            raise _refuse(what, key)
    return target(first, **options)


# ---- The protocols ----
def _foreign(values) -> bool:
    # Another library's array: let it (or NumPy) answer instead
    return any(
        hasattr(type(v), "__array_ufunc__") and not isinstance(v, (Tensor, np.ndarray, np.generic))
        for v in values
    )


def array_ufunc(self: Tensor, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
    """``Tensor.__array_ufunc__``: a ufunc (or its ``reduce``/``accumulate``/``outer``) on
    tensors runs the tfgrad op."""
    if _foreign(inputs + tuple(kwargs.get("out", None) or ())):
        return NotImplemented
    what = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
    if method in ("reduce", "accumulate"):
        if (method, ufunc) not in UFUNC_METHODS:
            raise _missing(what, inputs)
        target, spec = UFUNC_METHODS[(method, ufunc)]
        return call(what, target, spec, inputs, kwargs)
    if method not in ("__call__", "outer") or ufunc not in UFUNCS:
        raise _missing(what, inputs)
    out = kwargs.pop("out", None)
    if out is not None and any(o is not None for o in out):
        raise _refuse(what, "out")
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise _refuse(what, next(iter(kwargs)))
    if dtype is not None:
        inputs = tuple(v if isinstance(v, (bool, int, float)) else _cast(v, dtype) for v in inputs)
    if method == "outer":  # a[..., None, ...] op b: every pair of elements
        a, b = (as_tensor(v) for v in inputs)
        inputs = (movement.reshape(a, a.shape + (1,) * b.ndim), b)
    return UFUNCS[ufunc](*inputs)


def array_function(self: Tensor, func: Callable, types: tuple, args: tuple, kwargs: dict) -> Any:
    """``Tensor.__array_function__``: a NumPy function on tensors runs the tfgrad op."""
    if not all(issubclass(t, (Tensor, np.ndarray)) for t in types):
        return NotImplemented
    if func not in FUNCTIONS:
        raise _missing(_name(func), args + tuple(kwargs.values()))
    target, spec = FUNCTIONS[func]
    return call(_name(func), target, spec, args, kwargs)


def install() -> None:
    """Put the two protocol methods on Tensor (and so on every tracer, its subclasses)."""
    Tensor.__array_ufunc__ = array_ufunc
    Tensor.__array_function__ = array_function
