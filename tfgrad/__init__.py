"""tfgrad: exact automatic differentiation on Taichi kernels.

>>> import tfgrad as tg
>>> tg.grad(lambda x: tg.sum(tg.sin(x) * x))(tg.tensor([0.0, 1.0])).numpy().round(4)
array([0.    , 1.3818])
"""

from . import errors, random
from .api import grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp
from .compiler import jit
from .config import check_numerics, current_backend, empty_cache, init, use_backend
from .dtypes import DType, bfloat16, bool_, float16, float32, float64, int32, int64
from .errors import TfgradError
from .forward import DualTensor
from .gradcheck import gradcheck
from .ops import (
    abs,
    add,
    all,
    any,
    arange,
    astype,
    broadcast_to,
    clip,
    concatenate,
    conv2d,
    cos,
    cumprod,
    cumsum,
    diag,
    divide,
    dot,
    equal,
    exp,
    expand_dims,
    expm1,
    eye,
    full,
    full_like,
    greater,
    greater_equal,
    less,
    less_equal,
    linspace,
    log,
    log1p,
    log_softmax,
    logsumexp,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    multiply,
    negative,
    not_equal,
    ones,
    ones_like,
    outer,
    power,
    prod,
    relu,
    reshape,
    scatter_add,
    sigmoid,
    sign,
    sin,
    softmax,
    softplus,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    stop_gradient,
    subtract,
    sum,
    take,
    tan,
    tanh,
    tensor,
    trace,
    transpose,
    var,
    where,
    zeros,
    zeros_like,
)  # fmt: skip
from .tape import GradientTape, Record, TapeEvent, TrackedTensor, name_scope
from .tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    # tensors and dtypes
    "Tensor", "tensor", "zeros", "ones", "full", "zeros_like", "ones_like", "full_like",
    "arange", "linspace", "eye", "random", "DType", "bool_", "int32", "int64", "float16",
    "bfloat16", "float32", "float64",
    # backends and switches
    "init", "current_backend", "use_backend", "check_numerics", "empty_cache",
    # reverse and forward mode
    "GradientTape", "TrackedTensor", "Record", "TapeEvent", "DualTensor", "stop_gradient",
    "name_scope",
    "grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "jacobian", "hessian", "hvp",
    "gradcheck", "errors", "TfgradError",
    # compiling
    "jit",
    # ops
    "abs", "add", "all", "any", "astype", "broadcast_to", "clip", "concatenate", "conv2d", "cos",
    "cumprod", "cumsum", "diag", "divide", "dot", "equal", "exp", "expand_dims", "expm1",
    "greater", "greater_equal", "less", "less_equal", "log", "log1p", "log_softmax", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "not_equal",
    "outer", "power", "prod", "relu", "reshape", "scatter_add", "sigmoid", "sign", "sin", "softmax",
    "softplus", "split", "sqrt", "square", "squeeze", "stack", "subtract", "sum", "take", "tan",
    "tanh", "trace", "transpose", "var", "where",
]  # fmt: skip
