"""Tensor: an immutable array value (buffer, shape, dtype, backend), and the internal
constructor from data (the public :func:`tfgrad.tensor`, which also stacks lists of tensors,
lives with the ops).

This module imports no ops: the operators and methods that compute (``+``, ``x.sum()``, ``x[i]``,
...) are installed on :class:`Tensor` by :mod:`tfgrad.ops.tensor_methods`, as JAX attaches its
array methods, so that the ops can build on Tensor without a cycle. The creation functions
(``zeros``, ``arange``, ...) live with the ops too (:mod:`tfgrad.ops.creation`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import config
from .dtypes import _BY_NUMPY, DType, as_dtype, result_dtype
from .errors import DtypeError, ShapeError, TfgradError

__all__ = ["Tensor", "tensor", "wrap"]


class Tensor:
    """An immutable n-dimensional array.

    Make one with :func:`tfgrad.tensor`; Python operators (``+ - * / ** @``, unary ``-``,
    comparisons, indexing) and the methods ``astype``, ``reshape``, ``transpose``, ``T``,
    ``sum``, ``mean``, ``max``, ``min`` call the differentiable ops (installed from
    :mod:`tfgrad.ops.tensor_methods`). Inside a :class:`GradientTape` or a
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

    # ---- Copying and pickling ----
    # Immutable, so a copy may be the tensor itself; a pickle holds the values and the dtype
    # and loads onto the backend current at load time (a checkpoint made on a GPU loads on a
    # CPU). A tensor being differentiated (a tracer) is not a value to save.
    def __copy__(self) -> Tensor:
        return self

    def __deepcopy__(self, memo: dict) -> Tensor:
        return self

    def __reduce__(self):
        if type(self) is not Tensor:
            raise TfgradError(
                f"cannot pickle a {type(self).__name__} (a tensor being differentiated, shape "
                f"{self._shape}); save the values outside the transformation, or "
                "tfgrad.stop_gradient(x) of them."
            )
        return tensor, (self._backend.to_numpy(self._data), self._dtype.name)

    def __setitem__(self, key, value):
        raise TfgradError(
            "Tensors are immutable; build a new one instead, e.g. "
            "tfgrad.where(mask, new, x) or tfgrad.scatter_add(x, indices, updates)."
        )


def wrap(buf: Any, backend: Any) -> Tensor:
    """Internal: a concrete Tensor around a backend buffer."""
    shape = buf.shape
    return Tensor(
        buf,
        shape if type(shape) is tuple else tuple(shape),
        _BY_NUMPY.get(buf.dtype) or as_dtype(buf.dtype),
        backend,
    )


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
