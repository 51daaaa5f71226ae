"""The operators and methods of :class:`~tfgrad.Tensor` that compute, installed from the ops
side (as JAX's ``array_methods`` does) so that ``tensor.py`` imports no ops.

Each is a differentiable op of this package: ``x + y`` is ``add(x, y)``, ``x[i]`` is
``getitem(x, i)``, ``x.sum()`` is ``sum(x)``.

>>> import tfgrad as tg
>>> x = tg.tensor([1.0, 2.0])
>>> (x * 3 - 1).sum().item()
7.0
"""

from __future__ import annotations

from ..errors import TfgradError
from ..tensor import Tensor
from . import composite, elementwise, linalg, movement, reduce
from ._common import astype

__all__: list[str] = []  # nothing to import: the methods land on Tensor


def _reshape(self: Tensor, *shape) -> Tensor:
    return movement.reshape(self, shape[0] if len(shape) == 1 else shape)


def _transpose(self: Tensor, *axes) -> Tensor:
    return movement.transpose(self, axes[0] if len(axes) == 1 else (axes or None))


def _sum(self: Tensor, axis=None, keepdims=False, dtype=None, out=None) -> Tensor:
    # dtype/out: numpy.sum(tensor) calls tensor.sum(axis=..., dtype=..., out=...)
    if out is not None:
        raise TfgradError("sum: out= is not supported; tensors are immutable.")
    total = reduce.sum(self, axis, keepdims)
    return total if dtype is None else total.astype(dtype)


def _mean(self: Tensor, axis=None, keepdims=False) -> Tensor:
    return composite.mean(self, axis, keepdims)


def _max(self: Tensor, axis=None, keepdims=False) -> Tensor:
    return reduce.max(self, axis, keepdims)


def _min(self: Tensor, axis=None, keepdims=False) -> Tensor:
    return composite.min(self, axis, keepdims)


def _reflected(op):
    def method(self, other):
        return op(other, self)

    return method


_METHODS = {
    "astype": astype,
    "reshape": _reshape,
    "transpose": _transpose,
    "T": property(lambda self: movement.transpose(self)),
    "sum": _sum,
    "mean": _mean,
    "max": _max,
    "min": _min,
    "__getitem__": movement.getitem,
    "__neg__": elementwise.negative,
    "__pos__": lambda self: self,
    "__abs__": elementwise.abs,
    "__matmul__": linalg.matmul,
    "__rmatmul__": _reflected(linalg.matmul),
    "__eq__": elementwise.equal,
    "__ne__": elementwise.not_equal,
    "__lt__": elementwise.less,
    "__le__": elementwise.less_equal,
    "__gt__": elementwise.greater,
    "__ge__": elementwise.greater_equal,
}
_ARITHMETIC = {
    "add": elementwise.add,
    "sub": elementwise.subtract,
    "mul": elementwise.multiply,
    "truediv": elementwise.divide,
    "pow": elementwise.power,
}
for _name, _op in _ARITHMETIC.items():
    _METHODS[f"__{_name}__"] = _op
    _METHODS[f"__r{_name}__"] = _reflected(_op)

for _name, _method in _METHODS.items():
    setattr(Tensor, _name, _method)
