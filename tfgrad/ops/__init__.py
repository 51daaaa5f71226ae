"""tfgrad's ops: primitives (with rules) and composites (without), one family per module.

Importing this package also installs :class:`~tfgrad.Tensor`'s operators and methods
(:mod:`.tensor_methods`). :data:`PRIMITIVES` are the primitives declared here, and
:data:`BACKEND_OPS` the names of the ops a backend runs for them (one kernel each).
"""

from . import (
    _common,
    conv,
    creation,
    elementwise,
    linalg,
    movement,
    reduce,
    tensor_methods,  # noqa: F401  (installs Tensor's operators and methods)
)
from ._common import astype, tensor
from .composite import (
    all,
    any,
    clip,
    linspace,
    log_softmax,
    logsumexp,
    mean,
    min,
    relu,
    sigmoid,
    softmax,
    softplus,
    square,
    stop_gradient,
    var,
)  # fmt: skip
from .conv import conv2d
from .creation import arange, eye, full, full_like, ones, ones_like, zeros, zeros_like
from .elementwise import (
    abs,
    add,
    cos,
    divide,
    equal,
    exp,
    expm1,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    sign,
    sin,
    sqrt,
    subtract,
    tan,
    tanh,
    where,
)  # fmt: skip
from .linalg import diag, dot, matmul, outer, trace
from .movement import (
    concatenate,
    expand_dims,
    getitem,
    reshape,
    scatter_add,
    split,
    squeeze,
    stack,
    take,
    transpose,
)  # fmt: skip
from .numpy_protocol import install as _install_numpy_protocol
from .reduce import (
    broadcast_to,
    cumprod,
    cumsum,
    linear_recurrence,
    max,
    prod,
    sum,
    unbroadcast,
)  # fmt: skip

_install_numpy_protocol()  # NumPy functions and ufuncs on a Tensor run the ops above

__all__ = [
    "abs", "add", "all", "any", "astype", "broadcast_to", "clip", "concatenate", "conv2d", "cos",
    "cumprod", "cumsum", "diag", "divide", "dot", "equal", "exp", "expand_dims", "expm1", "getitem",
    "greater", "greater_equal", "less", "less_equal", "linear_recurrence", "linspace", "log",
    "log1p", "log_softmax", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "not_equal",
    "outer", "power", "prod", "relu", "reshape", "scatter_add", "sigmoid", "sign", "sin", "softmax",
    "softplus", "split", "sqrt", "square", "squeeze", "stack", "stop_gradient", "subtract", "sum",
    "take", "tan", "tanh", "tensor", "trace", "transpose", "unbroadcast", "var", "where",
    "arange", "eye", "full", "full_like", "ones", "ones_like", "zeros", "zeros_like",
    "PRIMITIVES", "BACKEND_OPS",
]  # fmt: skip

# Each primitive once (a module also holds the primitives it imports), in declaration order.
PRIMITIVES = tuple(
    dict.fromkeys(
        value
        for module in (_common, elementwise, movement, reduce, linalg, conv, creation)
        for value in vars(module).values()
        if isinstance(value, _common.Primitive)
    )
)
BACKEND_OPS = tuple(p.name for p in PRIMITIVES if p.on_backend)
