"""Elementwise primitives: each one block with its forward, VJP and JVP rules.

Rules are written in tfgrad ops, so they differentiate again. Binary ops broadcast; their rules
may return output-shaped cotangents, and the tape sums broadcast axes away in one place.
"""

from __future__ import annotations

from typing import Any

from ..errors import DtypeError
from ..primitive import Primitive, bind
from ..tensor import Tensor
from ._common import as_tensor, broadcast_shapes, promote_args, shape_of, to_float

__all__ = [
    "negative", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt", "abs",
    "sign", "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
]  # fmt: skip


def _unary(prim: Primitive, doc: str, keep_int: bool = False):
    def op(x: Any) -> Tensor:
        x = as_tensor(x) if keep_int else to_float(x, prim.name)
        if x.dtype.kind == "b" and prim is not abs_p:
            raise DtypeError(
                f"{op.__name__}: not defined for bool tensors (shape {x.shape}); cast first, "
                "e.g. x.astype('int64'), or use ~ logic with tfgrad.where."
            )
        return bind(prim, x)

    op.__name__ = op.__qualname__ = prim.name if prim.name != "neg" else "negative"
    op.__doc__ = doc
    return op


def _binary(prim: Primitive, doc: str, floating: bool = False):
    def op(x: Any, y: Any) -> Tensor:
        return bind(prim, *promote_args(prim.name, x, y, floating=floating))

    op.__name__ = op.__qualname__ = prim.name
    op.__doc__ = doc
    return op


# ---- Unary ----
neg_p = Primitive("neg", linear=True)
neg_p.defvjp(lambda g, ans, x: -g)
neg_p.defjvp(lambda t, ans, x: -t)
negative = _unary(neg_p, "-x.", keep_int=True)

exp_p = Primitive("exp")
exp_p.defvjp(lambda g, ans, x: g * ans)  # d exp(x) = exp(x) dx
exp_p.defjvp(lambda t, ans, x: t * ans)
exp = _unary(exp_p, "e**x, elementwise.")

log_p = Primitive("log")
log_p.defvjp(lambda g, ans, x: g / x)
log_p.defjvp(lambda t, ans, x: t / x)
log = _unary(log_p, "Natural logarithm; NaN below 0, -inf at 0.")

log1p_p = Primitive("log1p")
log1p_p.defvjp(lambda g, ans, x: g / (1 + x))
log1p_p.defjvp(lambda t, ans, x: t / (1 + x))
log1p = _unary(log1p_p, "log(1 + x), accurate for small x.")

expm1_p = Primitive("expm1")
expm1_p.defvjp(lambda g, ans, x: g * (ans + 1))
expm1_p.defjvp(lambda t, ans, x: t * (ans + 1))
expm1 = _unary(expm1_p, "exp(x) - 1, accurate for small x.")

sin_p = Primitive("sin")
sin_p.defvjp(lambda g, ans, x: g * cos(x))
sin_p.defjvp(lambda t, ans, x: t * cos(x))
sin = _unary(sin_p, "Sine (radians).")

cos_p = Primitive("cos")
cos_p.defvjp(lambda g, ans, x: -g * sin(x))
cos_p.defjvp(lambda t, ans, x: -t * sin(x))
cos = _unary(cos_p, "Cosine (radians).")

tan_p = Primitive("tan")
tan_p.defvjp(lambda g, ans, x: g * (1 + ans * ans))  # d tan = (1 + tan²) dx
tan_p.defjvp(lambda t, ans, x: t * (1 + ans * ans))
tan = _unary(tan_p, "Tangent (radians).")

tanh_p = Primitive("tanh")
tanh_p.defvjp(lambda g, ans, x: g * (1 - ans * ans))  # d tanh = (1 - tanh²) dx
tanh_p.defjvp(lambda t, ans, x: t * (1 - ans * ans))
tanh = _unary(tanh_p, "Hyperbolic tangent.")

sqrt_p = Primitive("sqrt")
sqrt_p.defvjp(lambda g, ans, x: g * 0.5 / ans)
sqrt_p.defjvp(lambda t, ans, x: t * 0.5 / ans)
sqrt = _unary(sqrt_p, "Square root; NaN below 0.")

abs_p = Primitive("abs")
abs_p.defvjp(lambda g, ans, x: g * sign(x))  # NOTE: 0 at x = 0 (a subgradient)
abs_p.defjvp(lambda t, ans, x: t * sign(x))
abs = _unary(abs_p, "``|x|``; its derivative at 0 is taken as 0.", keep_int=True)

sign_p = Primitive("sign")
sign_p.defvjp(lambda g, ans, x: None)  # zero almost everywhere
sign_p.defjvp(lambda t, ans, x: None)
sign = _unary(sign_p, "-1, 0 or 1 (NaN for NaN); derivative 0.", keep_int=True)


# ---- Binary ----
add_p = Primitive("add", linear=True)
add_p.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: g)
add_p.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: t)
add = _binary(add_p, "x + y, broadcasting.")

sub_p = Primitive("sub", linear=True)
sub_p.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g)
sub_p.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t)
subtract = _binary(sub_p, "x - y, broadcasting.")

mul_p = Primitive("mul")
mul_p.defvjp(lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x)
mul_p.defjvp(lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)
multiply = _binary(mul_p, "x * y, broadcasting.")

div_p = Primitive("div")
div_p.defvjp(lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y)
div_p.defjvp(lambda t, ans, x, y: t / y, lambda t, ans, x, y: -t * ans / y)
divide = _binary(div_p, "x / y (true division: integers give float64).", floating=True)


def _pow_dx(x, y):
    # y * x**(y - 1). NOTE: at x == 0 with y == 0 that is 0 * inf = NaN, though x**0 is the
    # constant 1 (derivative 0). The base is replaced by 1 at exactly those points, so no
    # infinite branch is computed there (a where over an infinite branch still gives NaN one
    # order up: its zero cotangent meets the infinity), and everywhere else the formula is
    # untouched, so its derivatives in x and y (1/x at y == 0) stay right to every order.
    both_zero = where(equal(y, 0), equal(x, 0), False)
    return y * power(where(both_zero, 1.0, x), y - 1)


def _pow_dy(x, ans):
    # ans * log(x); at x == 0 the product is 0, so log is taken of 1 there (as JAX does)
    return ans * log(where(equal(x, 0), 1.0, x))


pow_p = Primitive("pow")
pow_p.defvjp(lambda g, ans, x, y: g * _pow_dx(x, y), lambda g, ans, x, y: g * _pow_dy(x, ans))
pow_p.defjvp(lambda t, ans, x, y: t * _pow_dx(x, y), lambda t, ans, x, y: t * _pow_dy(x, ans))


def power(x: Any, y: Any) -> Tensor:
    """x ** y, broadcasting. Integer bases with integer exponents stay integers."""
    return bind(pow_p, *promote_args("pow", x, y))


def _share(x, y, pick_x):
    # The fraction of the cotangent x receives: 1 where it wins, 1/2 at ties (as JAX).
    return where(pick_x, 1.0, where(equal(x, y), 0.5, 0.0)).astype(x.dtype)


maximum_p = Primitive("maximum")
maximum_p.defvjp(
    lambda g, ans, x, y: g * _share(x, y, greater(x, y)),
    lambda g, ans, x, y: g * _share(y, x, greater(y, x)),
)
maximum_p.defjvp(
    lambda t, ans, x, y: t * _share(x, y, greater(x, y)),
    lambda t, ans, x, y: t * _share(y, x, greater(y, x)),
)
maximum = _binary(maximum_p, "Elementwise maximum (NaN propagates); ties share the gradient.")

minimum_p = Primitive("minimum")
minimum_p.defvjp(
    lambda g, ans, x, y: g * _share(x, y, less(x, y)),
    lambda g, ans, x, y: g * _share(y, x, less(y, x)),
)
minimum_p.defjvp(
    lambda t, ans, x, y: t * _share(x, y, less(x, y)),
    lambda t, ans, x, y: t * _share(y, x, less(y, x)),
)
minimum = _binary(minimum_p, "Elementwise minimum (NaN propagates); ties share the gradient.")


# ---- Comparisons (bool results: nothing to differentiate) ----
eq_p, ne_p = Primitive("eq"), Primitive("ne")
lt_p, le_p, gt_p, ge_p = Primitive("lt"), Primitive("le"), Primitive("gt"), Primitive("ge")
equal = _binary(eq_p, "x == y, elementwise (bool).")
not_equal = _binary(ne_p, "x != y, elementwise (bool).")
less = _binary(lt_p, "x < y, elementwise (bool).")
less_equal = _binary(le_p, "x <= y, elementwise (bool).")
greater = _binary(gt_p, "x > y, elementwise (bool).")
greater_equal = _binary(ge_p, "x >= y, elementwise (bool).")


# ---- Selection ----
where_p = Primitive("where")
where_p.defvjp(
    None,
    lambda g, ans, c, x, y: where(c, g, 0.0),
    lambda g, ans, c, x, y: where(c, 0.0, g),
)
where_p.defjvp(
    None,
    lambda t, ans, c, x, y: where(c, t, 0.0),
    lambda t, ans, c, x, y: where(c, 0.0, t),
)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` holds, else ``y`` (broadcasting all three)."""
    from ..dtypes import bool_

    c = as_tensor(condition, bool_)
    shapes = (shape_of(v) for v in (x, y))
    broadcast_shapes("where", c.shape, *shapes)  # before promote_args records any cast
    x, y = promote_args("where", x, y)
    return bind(where_p, c, x, y)
