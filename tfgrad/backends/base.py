"""The narrow interface between tfgrad and where numbers live.

A backend stores arrays in its own buffers and runs named backend ops on them. It never sees a
Tensor, a tape or a rule: the core asks ``backend.run("exp", buf)`` and gets a buffer back.
Buffers are immutable by contract: an op always returns a new buffer (or an alias of an input
that nobody writes to). Backends are registered by name and imported lazily.

Backend ops and their parameters (the NumPy backend is the executable spec of each):

=================  ===========================================================================
unary              neg exp log log1p expm1 sin cos tan tanh sqrt abs sign (float inputs;
                   neg/abs/sign take ints too). float16/bfloat16 compute in float32.
binary             add sub mul div pow maximum minimum, eq ne lt le gt ge (-> bool); inputs
                   share one dtype and broadcast as in NumPy
where              where(cond, x, y), broadcasting
cast               cast(x, dtype=np.dtype)
reductions         sum/max/prod(x, axes=tuple, keepdims=bool); float16/bfloat16 accumulate in
                   float32. cumsum(x, axis=int, reverse=bool)
movement           reshape(x, shape), transpose(x, axes), broadcast_to(x, shape),
                   slice(x, index=((start, stop, step), ...)) one triple per axis, normalised,
                   ``concatenate(*xs, axis)``
gather/scatter     take(x, indices, axis) with int64 indices; scatter_add(operand, indices,
                   updates, axis): operand with updates added at indices along axis
matmul             matmul(a, b): a (..., m, k), b (..., k, n), equal batch dims, same dtype
creation           full(shape, value, dtype), arange(start, step, n, dtype),
                   eye(n, m, k, dtype), random_uniform(shape, seed, counter, dtype),
                   random_normal(shape, seed, counter, dtype)
=================  ===========================================================================
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from ..errors import BackendError

__all__ = ["Backend", "register_backend", "get_backend_class", "BACKEND_OPS"]

UNARY_OPS = (
    "neg",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sqrt",
    "abs",
    "sign",
)
BINARY_OPS = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
COMPARE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
BACKEND_OPS = (
    UNARY_OPS
    + BINARY_OPS
    + COMPARE_OPS
    + ("where", "cast", "sum", "max", "prod", "cumsum")
    + ("reshape", "transpose", "broadcast_to", "slice", "concatenate", "take", "scatter_add")
    + ("matmul", "full", "arange", "eye", "random_uniform", "random_normal")
)


class Backend(Protocol):
    """What the core needs from a backend."""

    name: str  # "numpy", "taichi"
    device: str  # "cpu", "cuda", "vulkan", "metal": buffers move freely between equal devices

    def from_numpy(self, array: np.ndarray) -> Any:
        """A buffer holding a copy of ``array`` (already in the storage dtype)."""

    def to_numpy(self, buf: Any) -> np.ndarray:
        """The buffer's values as a NumPy array (may alias the buffer on CPU: do not write)."""

    def run(self, op: str, *bufs: Any, **params: Any) -> Any:
        """Run backend op ``op`` on buffers; return the new buffer."""

    def kernel_for(
        self, op: str, *bufs: Any, indices_checked: bool = False, **params: Any
    ) -> tuple[Any, str]:
        """``(fn, implementation)``: what ``run`` would call for these buffers' shapes and
        dtypes, decided once, as ``fn(*bufs)`` (``tfgrad.jit`` compiles its steps to these;
        ``indices_checked``: take/scatter_add indices are known to be in range)."""

    def implementation(self, op: str) -> str:
        """Which implementation ran the latest ``run(op, ...)`` (shown on tape records), e.g.
        ``"taichi"``, or ``"numpy"``/``"blas"`` where a backend's dispatch policy chose them."""


_REGISTRY: dict[str, str] = {
    "numpy": "tfgrad.backends.numpy_backend:NumpyBackend",
    "taichi": "tfgrad.backends.taichi.backend:TaichiBackend",
}


def register_backend(name: str, path: str) -> None:
    """Register a backend class by ``"module:Class"`` path, imported on first use."""
    _REGISTRY[name] = path


def get_backend_class(name: str) -> type:
    if name not in _REGISTRY:
        raise BackendError(
            f"Unknown backend {name!r}; registered backends are {sorted(_REGISTRY)}. "
            "Call tfgrad.init(backend='taichi') or tfgrad.init(backend='numpy')."
        )
    module_name, class_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
