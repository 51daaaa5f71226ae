"""tfgrad's ops: primitives (with rules) and composites (without), one family per module."""

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
    broadcast_to,
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
from .reduce import cumsum, max, prod, sum, unbroadcast

_install_numpy_protocol()  # NumPy functions and ufuncs on a Tensor run the ops above

__all__ = [
    "abs", "add", "all", "any", "astype", "broadcast_to", "clip", "concatenate", "cos", "cumsum",
    "diag", "divide", "dot", "equal", "exp", "expand_dims", "expm1", "getitem", "greater",
    "greater_equal", "less", "less_equal", "linspace", "log", "log1p", "log_softmax", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "not_equal",
    "outer", "power", "prod", "relu", "reshape", "scatter_add", "sigmoid", "sign", "sin", "softmax",
    "softplus", "split", "sqrt", "square", "squeeze", "stack", "stop_gradient", "subtract", "sum",
    "take", "tan", "tanh", "tensor", "trace", "transpose", "unbroadcast", "var", "where",
]  # fmt: skip
