"""Elementwise primitives: each one block with its facts (name, arity, family, linearity, the
values its rules read: ``saves``/``saves_output``, see :class:`~tfgrad.Primitive`) and its VJP
and JVP rules.

Rules are written in tfgrad ops, so they differentiate again. Binary ops broadcast; their rules
may return output-shaped cotangents, and the tape sums broadcast axes away in one place. A
pointwise primitive needs no batching rule: batched forward mode runs its JVP rules on tangents
with a leading batch axis (:mod:`tfgrad.batching`).
"""

from __future__ import annotations

from typing import Any

from ..backends.base import COMPARISON, ELEMENTWISE, TRANSCENDENTAL
from ..errors import DtypeError
from ..primitive import Primitive, Tracer, bind
from ..tensor import Tensor
from ._common import _fast_pair, as_tensor, check_broadcast, promote_args, shape_of, to_float

__all__ = [
    "negative", "exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sqrt", "abs",
    "sign", "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
]  # fmt: skip


def _unary(prim: Primitive, doc: str, keep_int: bool = False):
    def op(x: Any) -> Tensor:
        if isinstance(x, Tensor) and x._dtype.kind == "f":  # the common case: nothing to check
            return bind(prim, x)
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
    name = prim.name

    def op(x: Any, y: Any) -> Tensor:
        # Two float tensors of one dtype and shape: nothing to promote or check (the first
        # case of _fast_pair, inlined: it is most of the hot path).
        if (
            isinstance(x, Tensor)
            and isinstance(y, Tensor)
            and x._dtype is y._dtype
            and x._shape == y._shape
            and x._dtype.kind == "f"
        ):
            return bind(prim, x, y)
        pair = _fast_pair(name, x, y, floating)  # the common cases, in a few comparisons
        if pair is None:
            pair = promote_args(name, x, y, floating=floating)
        return bind(prim, pair[0], pair[1])

    op.__name__ = op.__qualname__ = prim.name
    op.__doc__ = doc
    return op


# ---- Unary ----
neg_p = Primitive("neg", 1, family=ELEMENTWISE, linear=True)
neg_p.defvjp(lambda g, ans, x: -g)
negative = _unary(neg_p, "-x.", keep_int=True)

exp_p = Primitive("exp", 1, family=TRANSCENDENTAL, saves_output=True)
exp_p.defvjp(lambda g, ans, x: g * ans)  # d exp(x) = exp(x) dx
exp_p.defjvp(lambda t, ans, x: t * ans)
exp = _unary(exp_p, "e**x, elementwise.")

log_p = Primitive("log", 1, family=TRANSCENDENTAL, saves=(0,))
log_p.defvjp(lambda g, ans, x: g / x)
log_p.defjvp(lambda t, ans, x: t / x)
log = _unary(log_p, "Natural logarithm; NaN below 0, -inf at 0.")

log1p_p = Primitive("log1p", 1, family=TRANSCENDENTAL, saves=(0,))
log1p_p.defvjp(lambda g, ans, x: g / (1 + x))
log1p_p.defjvp(lambda t, ans, x: t / (1 + x))
log1p = _unary(log1p_p, "log(1 + x), accurate for small x.")

expm1_p = Primitive("expm1", 1, family=TRANSCENDENTAL, saves_output=True)
expm1_p.defvjp(lambda g, ans, x: g * (ans + 1))
expm1_p.defjvp(lambda t, ans, x: t * (ans + 1))
expm1 = _unary(expm1_p, "exp(x) - 1, accurate for small x.")

sin_p = Primitive("sin", 1, family=TRANSCENDENTAL, saves=(0,))
sin_p.defvjp(lambda g, ans, x: g * cos(x))
sin_p.defjvp(lambda t, ans, x: t * cos(x))
sin = _unary(sin_p, "Sine (radians).")

cos_p = Primitive("cos", 1, family=TRANSCENDENTAL, saves=(0,))
cos_p.defvjp(lambda g, ans, x: -g * sin(x))
cos_p.defjvp(lambda t, ans, x: -t * sin(x))
cos = _unary(cos_p, "Cosine (radians).")

tan_p = Primitive("tan", 1, family=TRANSCENDENTAL, saves_output=True)
tan_p.defvjp(lambda g, ans, x: g * (1 + ans * ans))  # d tan = (1 + tan²) dx
tan_p.defjvp(lambda t, ans, x: t * (1 + ans * ans))
tan = _unary(tan_p, "Tangent (radians).")

tanh_p = Primitive("tanh", 1, family=TRANSCENDENTAL, saves_output=True)
tanh_p.defvjp(lambda g, ans, x: g * (1 - ans * ans))  # d tanh = (1 - tanh²) dx
tanh_p.defjvp(lambda t, ans, x: t * (1 - ans * ans))
tanh = _unary(tanh_p, "Hyperbolic tangent.")

sqrt_p = Primitive("sqrt", 1, family=ELEMENTWISE, saves_output=True)
sqrt_p.defvjp(lambda g, ans, x: g * 0.5 / ans)
sqrt_p.defjvp(lambda t, ans, x: t * 0.5 / ans)
sqrt = _unary(sqrt_p, "Square root; NaN below 0.")

abs_p = Primitive("abs", 1, family=ELEMENTWISE, saves=(0,))
abs_p.defvjp(lambda g, ans, x: g * sign(x))  # NOTE: 0 at x = 0 (a subgradient)
abs_p.defjvp(lambda t, ans, x: t * sign(x))
abs = _unary(abs_p, "``|x|``; its derivative at 0 is taken as 0.", keep_int=True)

sign_p = Primitive("sign", 1, family=ELEMENTWISE, saves=())
sign_p.defvjp(lambda g, ans, x: None)  # zero almost everywhere
sign_p.defjvp(lambda t, ans, x: None)
sign = _unary(sign_p, "-1, 0 or 1 (NaN for NaN); derivative 0.", keep_int=True)


# ---- Binary ----
# NOTE: add and sub are linear, but keep explicit JVP rules: an input without a tangent is a
# zero that the linear rule (the primitive applied to the tangents) would materialise and add.
add_p = Primitive("add", 2, family=ELEMENTWISE, linear=True)
add_p.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: g)
add_p.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: t)
add = _binary(add_p, "x + y, broadcasting.")

sub_p = Primitive("sub", 2, family=ELEMENTWISE, linear=True)
sub_p.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g)
sub_p.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t)


def sub_jvp(tangents, ans, x, y):
    # Both tangents: t - u in one op, not t + (-u) in two (the same bits).
    t, u = tangents
    if t is None or u is None:
        return t if u is None else -u
    return t - u


sub_p.jvp_all = sub_jvp
subtract = _binary(sub_p, "x - y, broadcasting.")


def _mul_simplify(out, x, y):
    # A constant of ones (a seed broadcast to a shape, too) times a value of the output's shape
    # is that value: exact, NaN and -0 included.
    for keep, other, value in ((0, y, x), (1, x, y)):
        if isinstance(other, Tensor) and other.dtype.is_floating and other.size >= 1:
            if tuple(value.shape) == out.shape and (other.numpy() == 1.0).all():
                return keep
    return None


mul_p = Primitive("mul", 2, family=ELEMENTWISE, saves=(0, 1))
mul_p.defvjp(lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x)
mul_p.defjvp(lambda t, ans, x, y: t * y, lambda t, ans, x, y: x * t)
mul_p.def_simplify(_mul_simplify)
multiply = _binary(mul_p, "x * y, broadcasting.")

div_p = Primitive("div", 2, family=ELEMENTWISE, saves=(1,), saves_output=True)
div_p.defvjp(lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y)
div_p.defjvp(lambda t, ans, x, y: t / y, lambda t, ans, x, y: -t * ans / y)
divide = _binary(div_p, "x / y (true division: integers give float64).", floating=True)


def _constant_value(v: Tensor) -> Any:
    """A concrete 0-d tensor's value, else None. A tracer's value is not read: it must keep its
    derivatives (or, staged by jit, stay an input of the program)."""
    return None if len(v.shape) or isinstance(v, Tracer) else v.item()


def _pow_dx(x, y):
    """d(x ** y)/dx = y * x**(y - 1).

    For a constant exponent (x ** 2, and the x ** 1 of its derivative) the cases are decided
    here, which leaves the number 0 for y = 0 (x ** 0 is the constant 1), 1 for y = 1 (x ** 0 is
    1, even for NaN) and y * x for y = 2 (x ** 1 is x): the same values in fewer ops, on every
    tape and in every batched push."""
    e = _constant_value(y)
    if e is None:
        # NOTE: at x == 0 with y == 0 the formula is 0 * inf = NaN, though x**0 is the constant
        # 1 (derivative 0). The base is replaced by 1 at exactly those points, so no infinite
        # branch is computed there (a where over an infinite branch still gives NaN one order
        # up: its zero cotangent meets the infinity), and everywhere else the formula is
        # untouched, so its derivatives in x and y (1/x at y == 0) stay right to every order.
        both_zero = where(equal(y, 0), equal(x, 0), False)
        return y * power(where(both_zero, 1.0, x), y - 1)
    if e in (0.0, 1.0):
        return float(e)
    return y * x if e == 2.0 else y * power(x, y - 1)


def _pow_dy(x, ans):
    # ans * log(x); at x == 0 the product is 0, so log is taken of 1 there (as JAX does)
    return ans * log(where(equal(x, 0), 1.0, x))


def _times(d: Tensor, coefficient: Tensor | float) -> Tensor:
    """``d * coefficient``, or ``d`` itself for the number 1 (exact: d * 1 is d)."""
    return d if type(coefficient) is float and coefficient == 1.0 else d * coefficient


def pow_vjp_x(g, ans, x, y):
    return _times(g, _pow_dx(x, y))


def pow_vjp_y(g, ans, x, y):
    return g * _pow_dy(x, ans)


def pow_jvp_x(t, ans, x, y):
    return _times(t, _pow_dx(x, y))


def pow_jvp_y(t, ans, x, y):
    return t * _pow_dy(x, ans)


pow_p = Primitive("pow", 2, family=TRANSCENDENTAL, saves=(0, 1), saves_output=True)
pow_p.defvjp(pow_vjp_x, pow_vjp_y)
pow_p.defjvp(pow_jvp_x, pow_jvp_y)


def power(x: Any, y: Any) -> Tensor:
    """x ** y, broadcasting. Integer bases with integer exponents stay integers."""
    return bind(pow_p, *promote_args("pow", x, y))


# ---- Comparisons (bool results: nothing to differentiate) ----
eq_p, ne_p = Primitive("eq", 2, family=COMPARISON), Primitive("ne", 2, family=COMPARISON)
lt_p, le_p = Primitive("lt", 2, family=COMPARISON), Primitive("le", 2, family=COMPARISON)
gt_p, ge_p = Primitive("gt", 2, family=COMPARISON), Primitive("ge", 2, family=COMPARISON)
equal = _binary(eq_p, "x == y, elementwise (bool).")
not_equal = _binary(ne_p, "x != y, elementwise (bool).")
less = _binary(lt_p, "x < y, elementwise (bool).")
less_equal = _binary(le_p, "x <= y, elementwise (bool).")
greater = _binary(gt_p, "x > y, elementwise (bool).")
greater_equal = _binary(ge_p, "x >= y, elementwise (bool).")


# ---- Maximum and minimum ----
def _share(x, y, pick_x):
    # The fraction of the cotangent x receives: 1 where it wins, 1/2 at ties (as JAX).
    return where(pick_x, 1.0, where(equal(x, y), 0.5, 0.0)).astype(x.dtype)


# The rules of maximum, minimum and where are their own transposes (a mask times the incoming
# value), so one function serves as VJP (d = g) and JVP (d = t).
def _extremum_rules(wins):
    """The rules of an elementwise maximum (``wins`` = greater) or minimum (less)."""

    def rule_x(d, ans, x, y):
        return d * _share(x, y, wins(x, y))

    def rule_y(d, ans, x, y):
        return d * _share(y, x, wins(y, x))

    return rule_x, rule_y


maximum_p = Primitive("maximum", 2, family=ELEMENTWISE, saves=(0, 1))
maximum_p.defvjp(*_extremum_rules(greater))
maximum_p.defjvp(*_extremum_rules(greater))
maximum = _binary(maximum_p, "Elementwise maximum (NaN propagates); ties share the gradient.")

minimum_p = Primitive("minimum", 2, family=ELEMENTWISE, saves=(0, 1))
minimum_p.defvjp(*_extremum_rules(less))
minimum_p.defjvp(*_extremum_rules(less))
minimum = _binary(minimum_p, "Elementwise minimum (NaN propagates); ties share the gradient.")


# ---- Selection ----
def _picks(c, branch: bool) -> bool:
    """Whether ``c`` is a constant that picks ``branch`` for every element (where(c, d, 0.0) is
    then ``d`` itself)."""
    value = _constant_value(c)
    return value is not None and bool(value) == branch


def where_rule_x(d, ans, c, x, y):
    return d if _picks(c, True) else where(c, d, 0.0)


def where_rule_y(d, ans, c, x, y):
    return d if _picks(c, False) else where(c, 0.0, d)


def _where_simplify(out, c, x, y):
    # A one-element constant condition picks one input for every element.
    if isinstance(c, Tensor) and c.size == 1:
        return 1 if bool(c.numpy().reshape(())) else 2
    return None


where_p = Primitive("where", 3, family=ELEMENTWISE, saves=(0,))
where_p.defvjp(None, where_rule_x, where_rule_y)
where_p.defjvp(None, where_rule_x, where_rule_y)
where_p.def_simplify(_where_simplify)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` holds, else ``y`` (broadcasting all three)."""
    from ..dtypes import bool_

    c = as_tensor(condition, bool_)
    shapes = (shape_of(v) for v in (x, y))
    check_broadcast("where", c.shape, *shapes)  # before promote_args records any cast
    x, y = promote_args("where", x, y)
    return bind(where_p, c, x, y)
