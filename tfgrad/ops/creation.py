"""Creation: tensors made from a shape and a few numbers (``zeros``, ``arange``, ``eye``, ...)
and the random draws of :mod:`tfgrad.random`. Their primitives take no inputs, so what they
make is a constant for every transformation. (``linspace``, differentiable in its endpoints,
is a composite: :mod:`.composite`.)"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..backends.base import CREATION
from ..dtypes import DType, as_dtype, float64, result_dtype
from ..errors import ShapeError
from ..primitive import Primitive, bind
from ..tensor import Tensor

__all__ = [
    "full", "zeros", "ones", "full_like", "zeros_like", "ones_like", "arange", "eye", "shape_tuple",
]  # fmt: skip

full_p = Primitive("full", 0, family=CREATION)
arange_p = Primitive("arange", 0, family=CREATION)
eye_p = Primitive("eye", 0, family=CREATION)
random_uniform_p = Primitive("random_uniform", 0, family=CREATION)
random_normal_p = Primitive("random_normal", 0, family=CREATION)


def shape_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ShapeError(f"Shapes cannot have negative sizes: {shape}.")
    return shape


def full(shape: int | Sequence[int], fill_value: float, dtype=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``."""
    dt = as_dtype(dtype) if dtype is not None else result_dtype(fill_value)
    return bind(full_p, shape=shape_tuple(shape), value=fill_value, dtype=dt.numpy)


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


def _arange(start: float, step: float, n: int, dtype: DType) -> Tensor:
    return bind(arange_p, start=start, step=step, n=n, dtype=dtype.numpy)


def arange(start: float, stop: float | None = None, step: float = 1, dtype=None) -> Tensor:
    """Evenly spaced values in ``[start, stop)``, as ``numpy.arange``."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise ShapeError("arange: step must not be zero.")
    n = max(0, math.ceil((stop - start) / step))
    dt = as_dtype(dtype) if dtype is not None else result_dtype(start, stop, step)
    return _arange(start, step, n, dt)


def eye(n: int, m: int | None = None, k: int = 0, dtype=float64) -> Tensor:
    """The ``n`` × ``m`` identity (ones on diagonal ``k``)."""
    m = n if m is None else m
    return bind(eye_p, n=n, m=m, k=k, dtype=as_dtype(dtype).numpy)
