"""tfgrad's ops: primitives (with rules) and composites (without), one family per module."""

from ._common import astype
from .composite import (
    clip,
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
from .reduce import cumsum, max, prod, sum, unbroadcast

__all__ = [
    "abs", "add", "astype", "broadcast_to", "clip", "concatenate", "cos", "cumsum", "diag",
    "divide", "dot", "equal", "exp", "expand_dims", "expm1", "getitem", "greater",
    "greater_equal", "less", "less_equal", "log", "log1p", "log_softmax", "logsumexp", "matmul",
    "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "not_equal", "outer",
    "power", "prod", "relu", "reshape", "scatter_add", "sigmoid", "sign", "sin", "softmax",
    "softplus", "split", "sqrt", "square", "squeeze", "stack", "stop_gradient", "subtract",
    "sum", "take", "tan", "tanh", "trace", "transpose", "unbroadcast", "var", "where",
]  # fmt: skip
