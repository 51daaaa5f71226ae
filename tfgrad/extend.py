"""Defining your own primitive: its facts, a forward, and VJP/JVP rules written in tfgrad ops.

Most new ops should be *composites* (plain Python functions of tfgrad ops): they get every
derivative for free. Make a primitive when you need a new forward computation or a better rule
(stability, speed). The rules receive the cotangent ``g`` (or tangent ``t``), the output ``ans``
and the inputs, and return one tensor per input (``None`` for no contribution). Rules written in
tfgrad ops differentiate again, so Hessians through your op stay exact.

A primitive's forward is either Python on tensors (``def_impl``: it runs as written, eagerly,
under every transformation) or, for a pointwise op, the math of one element (``def_scalar``):
then every backend compiles it like its own kernels, the dispatch policy picks NumPy or Taichi by
its family and size, ``tfgrad.jit`` fuses it, and ``jacfwd``/``hessian`` push all tangents
through its JVP rule at once. Its family (:data:`FAMILIES`) says what it does with elements.

>>> import numpy as np
>>> import tfgrad as tg
>>> from tfgrad.extend import Primitive, bind
>>> cube_p = Primitive("cube", 1)
>>> @cube_p.def_impl
... def cube_impl(x):
...     return tg.tensor(x.numpy() ** 3)
>>> cube_p.defvjp(lambda g, ans, x: g * 3.0 * x * x)
>>> cube_p.defjvp(lambda t, ans, x: t * 3.0 * x * x)
>>> cube = lambda x: bind(cube_p, tg.tensor(x))
>>> tg.grad(tg.grad(cube))(tg.tensor(2.0)).item()
12.0
"""

from .backends.base import (
    CAST,
    COMPARISON,
    CREATION,
    ELEMENTWISE,
    FAMILIES,
    INDEXING,
    LINALG,
    MOVEMENT,
    REDUCTION,
    TRANSCENDENTAL,
    OpInfo,
)  # fmt: skip
from .primitive import Primitive, bind
from .tape import Record

__all__ = [
    "Primitive", "bind", "Record", "OpInfo", "FAMILIES", "ELEMENTWISE", "TRANSCENDENTAL",
    "COMPARISON", "CAST", "REDUCTION", "MOVEMENT", "INDEXING", "LINALG", "CREATION",
]  # fmt: skip
