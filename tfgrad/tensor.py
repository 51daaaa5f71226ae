"""Tensor: an immutable array value (buffer, shape, dtype, backend), and ways to make one."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from . import config
from .dtypes import DType, as_dtype, float64, result_dtype
from .errors import DtypeError, ShapeError, TfgradError

__all__ = [
    "Tensor",
    "tensor",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "full_like",
    "arange",
    "eye",
]


class Tensor:
    """An immutable n-dimensional array.

    Make one with :func:`tfgrad.tensor`; Python operators (``+ - * / ** @``, unary ``-``,
    comparisons, indexing) call the differentiable ops. Inside a :class:`GradientTape` or a
    ``jvp`` the same values arrive as subclasses that carry derivative information
    (:class:`TrackedTensor`, :class:`DualTensor`); they behave like any Tensor.

    >>> import tfgrad as tg
    >>> x = tg.tensor([1.0, 2.0])
    >>> (x * 3).numpy()
    array([3., 6.])
    """

    __slots__ = ("_data", "_shape", "_dtype", "_backend")
    # NumPy's __array_ufunc__ / __array_function__ are installed by tfgrad.ops.numpy_protocol

    def __init__(self, data: Any, shape: tuple[int, ...], dtype: DType, backend: Any):
        # Internal: users call tfgrad.tensor(...). `data` is a backend buffer.
        self._data = data
        self._shape = shape
        self._dtype = dtype
        self._backend = backend

    # ---- Inspection ----
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> DType:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def device(self) -> str:
        return self._backend.device

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the values (safe to modify)."""
        return np.array(self._backend.to_numpy(self._data), copy=True)

    def item(self) -> bool | int | float:
        if self.size != 1:
            raise ShapeError(
                f"item() needs a tensor with one element, got shape {self._shape}; "
                "index it first (x[0]) or reduce it (tfgrad.sum(x))."
            )
        return self._backend.to_numpy(self._data).reshape(()).item()

    def __array__(self, dtype=None, copy=None):
        out = self._backend.to_numpy(self._data)
        return np.array(out, dtype=dtype, copy=True) if dtype is not None else np.array(out)

    def __repr__(self) -> str:
        body = np.array2string(
            self._backend.to_numpy(self._data), separator=", ", prefix=f"{self._label()}("
        )
        return f"{self._label()}({body}, dtype={self._dtype.name}{self._repr_extra()})"

    def _label(self) -> str:
        return "tensor"

    def _repr_extra(self) -> str:
        return ""

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ShapeError(
                f"The truth value of a tensor with shape {self._shape} is ambiguous; "
                "use tfgrad.all / tfgrad.any or compare elements."
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._dtype.kind not in "ib" or self.size != 1:
            raise TypeError(f"only integer tensors with one element can be an index, got {self}")
        return int(self.item())

    __hash__ = object.__hash__  # == is elementwise, so hash by identity

    def __setitem__(self, key, value):
        raise TfgradError(
            "Tensors are immutable; build a new one instead, e.g. "
            "tfgrad.where(mask, new, x) or tfgrad.scatter_add(x, indices, updates)."
        )

    # ---- Methods that forward to ops ----
    def astype(self, dtype) -> Tensor:
        return _ops.astype(self, dtype)

    def reshape(self, *shape) -> Tensor:
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes) -> Tensor:
        return _ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    def sum(self, axis=None, keepdims=False, dtype=None, out=None) -> Tensor:
        # dtype and out as in ndarray.sum (NumPy functions dispatch through numpy_protocol)
        if out is not None:
            raise TfgradError("sum: out= is not supported; tensors are immutable.")
        total = _ops.sum(self, axis, keepdims)
        return total if dtype is None else total.astype(dtype)

    def mean(self, axis=None, keepdims=False) -> Tensor:
        return _ops.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False) -> Tensor:
        return _ops.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False) -> Tensor:
        return _ops.min(self, axis, keepdims)

    def __getitem__(self, key) -> Tensor:
        return _ops.getitem(self, key)

    def __neg__(self):
        return _ops.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.subtract(self, other)

    def __rsub__(self, other):
        return _ops.subtract(other, self)

    def __mul__(self, other):
        return _ops.multiply(self, other)

    def __rmul__(self, other):
        return _ops.multiply(other, self)

    def __truediv__(self, other):
        return _ops.divide(self, other)

    def __rtruediv__(self, other):
        return _ops.divide(other, self)

    def __pow__(self, other):
        return _ops.power(self, other)

    def __rpow__(self, other):
        return _ops.power(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __eq__(self, other):  # type: ignore[override]
        return _ops.equal(self, other)

    def __ne__(self, other):  # type: ignore[override]
        return _ops.not_equal(self, other)

    def __lt__(self, other):
        return _ops.less(self, other)

    def __le__(self, other):
        return _ops.less_equal(self, other)

    def __gt__(self, other):
        return _ops.greater(self, other)

    def __ge__(self, other):
        return _ops.greater_equal(self, other)


def wrap(buf: Any, backend: Any) -> Tensor:
    """Internal: a concrete Tensor around a backend buffer."""
    return Tensor(buf, tuple(buf.shape), as_dtype(buf.dtype), backend)


def tensor(data: Any, dtype=None) -> Tensor:
    """Internal: a Tensor from data (a number, nested lists of numbers, a NumPy array).

    The public :func:`tfgrad.tensor` (in ``ops``) also stacks lists that hold tensors; a list of
    tensors being differentiated reaching this function raises TracerConversionError.
    """
    if isinstance(data, Tensor):
        return data if dtype is None else data.astype(dtype)
    if dtype is not None:
        dt = as_dtype(dtype)
    elif isinstance(data, (bool, int, float, np.generic)) and not isinstance(data, np.ndarray):
        dt = result_dtype(data) if not isinstance(data, np.generic) else as_dtype(data.dtype)
    else:
        dt = None
    try:
        array = np.asarray(data, dtype=dt.numpy if dt is not None else None)
    except (ValueError, TypeError) as err:
        raise DtypeError(f"tfgrad.tensor cannot convert {type(data).__name__}: {err}") from None
    if dt is None:
        if array.dtype.kind == "f" and array.dtype.itemsize > 8:
            raise DtypeError(f"tfgrad has no dtype {array.dtype}; pass dtype='float64'.")
        if array.dtype.kind in "iu":
            array = array.astype(np.int32 if array.dtype == np.int32 else np.int64)
        dt = as_dtype(array.dtype)
    backend = config.current_backend()
    return Tensor(backend.from_numpy(array), tuple(array.shape), dt, backend)


def _creation(op: str, out_shape, dtype: DType, **params) -> Tensor:
    backend = config.current_backend()
    return Tensor(backend.run(op, dtype=dtype.numpy, **params), out_shape, dtype, backend)


def _shape_tuple(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ShapeError(f"Shapes cannot have negative sizes: {shape}.")
    return shape


def full(shape: int | Sequence[int], fill_value: float, dtype=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``."""
    dt = as_dtype(dtype) if dtype is not None else result_dtype(fill_value)
    shape = _shape_tuple(shape)
    return _creation("full", shape, dt, shape=shape, value=fill_value)


def zeros(shape: int | Sequence[int], dtype=float64) -> Tensor:
    return full(shape, 0, as_dtype(dtype))


def ones(shape: int | Sequence[int], dtype=float64) -> Tensor:
    return full(shape, 1, as_dtype(dtype))


def full_like(x: Tensor, fill_value: float, dtype=None) -> Tensor:
    return full(x.shape, fill_value, dtype if dtype is not None else x.dtype)


def zeros_like(x: Tensor, dtype=None) -> Tensor:
    return full_like(x, 0, dtype)


def ones_like(x: Tensor, dtype=None) -> Tensor:
    return full_like(x, 1, dtype)


def arange(start: float, stop: float | None = None, step: float = 1, dtype=None) -> Tensor:
    """Evenly spaced values in ``[start, stop)``, as ``numpy.arange``."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ShapeError("arange: step must not be zero.")
    n = max(0, math.ceil((stop - start) / step))
    dt = as_dtype(dtype) if dtype is not None else result_dtype(start, stop, step)
    return _creation("arange", (n,), dt, start=start, step=step, n=n)


def eye(n: int, m: int | None = None, k: int = 0, dtype=float64) -> Tensor:
    """The ``n`` × ``m`` identity (ones on diagonal ``k``)."""
    m = n if m is None else m
    return _creation("eye", (n, m), as_dtype(dtype), n=n, m=m, k=k)


from . import ops as _ops  # noqa: E402  (operators forward to ops; ops imports Tensor)
