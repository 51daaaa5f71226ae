"""Elementwise kernels: unary math, binary arithmetic, comparisons, ``where`` and ``cast``.

Every kernel loops over a flat output. A binary kernel reads its inputs at ``i * stride`` with a
stride of 1 (same shape as the output) or 0 (one element, broadcast); the backend materialises
any other broadcast first. ``serial`` (a compile-time flag) runs the loop on the calling thread:
Taichi's parallel dispatch costs more than a small loop (see ``backend.SERIAL_BELOW``).

The math of each op is one ``ti.func`` of compute-dtype values (see :mod:`.codec`); the kernels
are built from it by :func:`unary_kernel` and :func:`binary_kernel`.
"""

# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import taichi as ti

from .codec import INTEGER_STORAGE, is_nan, load, storage_of, store, store_f64


def unary_kernel(op, name: str):
    """A kernel computing ``out[i] = op(x[i])``."""

    def kernel(x: ti.types.ndarray(ndim=1), out: ti.types.ndarray(ndim=1), serial: ti.template()):
        if ti.static(serial):
            ti.loop_config(serialize=True)
        for i in range(out.shape[0]):
            store(out, i, op(load(x, i)))

    kernel.__name__ = kernel.__qualname__ = name
    return ti.kernel(kernel)


def binary_kernel(op, name: str):
    """A kernel computing ``out[i] = op(x[i * sx], y[i * sy])``, strides 0 or 1. Unless
    ``strided`` (compile time), both strides are 1: the common case, 30 % faster serially."""

    def kernel(
        x: ti.types.ndarray(ndim=1),
        y: ti.types.ndarray(ndim=1),
        out: ti.types.ndarray(ndim=1),
        sx: ti.i32,
        sy: ti.i32,
        strided: ti.template(),
        serial: ti.template(),
    ):
        if ti.static(serial):
            ti.loop_config(serialize=True)
        for i in range(out.shape[0]):
            if ti.static(strided):
                store(out, i, op(load(x, i * sx), load(y, i * sy)))
            else:
                store(out, i, op(load(x, i), load(y, i)))

    kernel.__name__ = kernel.__qualname__ = name
    return ti.kernel(kernel)


# ---- Unary: v is f32 (float16, bfloat16, float32), f64, or an integer for neg/abs/sign ----
# Cephes tanh coefficients (tanh.c, tanhf.c). Kernels wrap them as ti.f64(...)/ti.f32(...):
# a bare float literal would be an f32 constant in an f64 kernel.
TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
TANHF = (
    -5.70498872745e-3,
    2.06390887954e-2,
    -5.37397155531e-2,
    1.33314422036e-1,
    -3.33332819422e-1,
)


@ti.func
def neg_op(v):
    return -v  # -v (integers wrap: -INT_MIN == INT_MIN, as NumPy)


@ti.func
def exp_op(v):
    return ti.exp(v)  # e^v


@ti.func
def log_op(v):
    return ti.log(v)  # ln v (-inf at 0, NaN below)


@ti.func
def log1p_op(v):
    # ln(1 + v), accurate for tiny v (Kahan): with u = fl(1 + v), ln(u) * v / (u - 1) cancels
    # the rounding error of u to first order.
    u = 1 + v
    r = v
    if u == ti.math.inf:
        r = u
    elif u != 1:
        r = ti.log(u) * (v / (u - 1))
    return r


@ti.func
def expm1_op(v):
    # e^v - 1, accurate for tiny v (Kahan): with u = fl(e^v), (u - 1) * v / ln(u).
    u = ti.exp(v)
    r = v
    if u == ti.math.inf:
        r = u
    elif u - 1 == -1:
        r = u - 1
    elif u != 1:
        r = (u - 1) * (v / ti.log(u))
    return r


@ti.func
def sin_op(v):
    return ti.sin(v)


@ti.func
def cos_op(v):
    return ti.cos(v)


@ti.func
def tan_op(v):
    return ti.tan(v)


@ti.func
def tanh_op(v):
    # tanh v = sign(v) (1 - 2 / (e^{2|v|} + 1)) for |v| >= 0.625: e^{2|v|} -> inf gives +-1,
    # never inf/inf. Below, where 1 - ... cancels, Cephes' fit tanh v = v + v^3 P(v^2)/Q(v^2)
    # (float64: rational, relative error ~2e-16; float32: polynomial, ~1e-7). Both are
    # computed and one selected: a data-dependent branch mispredicts and costs more.
    a = ti.abs(v)
    z = v * v
    small = v
    if ti.static(v.ptr.get_rvalue_type() == ti.f64):
        p = (ti.f64(TANH_P[0]) * z + ti.f64(TANH_P[1])) * z + ti.f64(TANH_P[2])
        q = ((z + ti.f64(TANH_Q[0])) * z + ti.f64(TANH_Q[1])) * z + ti.f64(TANH_Q[2])
        small = v + v * z * (p / q)
    else:
        p = ti.f32(TANHF[0])
        for j in ti.static(range(1, 5)):
            p = p * z + ti.f32(TANHF[j])
        small = v + v * z * p
    large = 1 - 2 / (ti.exp(2 * a) + 1)
    large = ti.select(v < 0, -large, large)
    return ti.select(a >= 0.625, large, small)  # NaN: the comparison fails, small is NaN


@ti.func
def sqrt_op(v):
    return ti.sqrt(v)


@ti.func
def abs_op(v):
    return ti.abs(v)  # |v| (abs(INT_MIN) == INT_MIN, as NumPy)


@ti.func
def sign_op(v):
    # -1, 0 or 1; NaN for NaN (no branch taken)
    r = v
    if v > 0:
        r = 1
    elif v < 0:
        r = -1
    elif v == 0:
        r = 0  # +0 for -0 too, as NumPy
    return r


neg_kernel = unary_kernel(neg_op, "neg_kernel")
exp_kernel = unary_kernel(exp_op, "exp_kernel")
log_kernel = unary_kernel(log_op, "log_kernel")
log1p_kernel = unary_kernel(log1p_op, "log1p_kernel")
expm1_kernel = unary_kernel(expm1_op, "expm1_kernel")
sin_kernel = unary_kernel(sin_op, "sin_kernel")
cos_kernel = unary_kernel(cos_op, "cos_kernel")
tan_kernel = unary_kernel(tan_op, "tan_kernel")
tanh_kernel = unary_kernel(tanh_op, "tanh_kernel")
sqrt_kernel = unary_kernel(sqrt_op, "sqrt_kernel")
abs_kernel = unary_kernel(abs_op, "abs_kernel")
sign_kernel = unary_kernel(sign_op, "sign_kernel")


# ---- Binary: a, b share one compute dtype ----
@ti.func
def add_op(a, b):
    return a + b


@ti.func
def sub_op(a, b):
    return a - b


@ti.func
def mul_op(a, b):
    return a * b


@ti.func
def div_op(a, b):
    # a / b; integers divide in float64 and truncate toward zero (NumPy's true divide, then
    # astype back to the integer dtype, which is what the reference backend returns)
    r = a
    if ti.static(ti.types.is_integral(a.ptr.get_rvalue_type())):
        r = ti.cast(ti.cast(a, ti.f64) / ti.cast(b, ti.f64), a.ptr.get_rvalue_type())
    else:
        r = a / b
    return r


@ti.func
def maximum_op(a, b):
    # max(a, b), NaN if either is NaN
    return a if (a > b or is_nan(a)) else b


@ti.func
def minimum_op(a, b):
    # min(a, b), NaN if either is NaN
    return a if (a < b or is_nan(a)) else b


@ti.func
def eq_op(a, b):
    return a == b


@ti.func
def ne_op(a, b):
    return not (a == b)  # True when either is NaN (Taichi's != is ordered: see codec.is_nan)


@ti.func
def lt_op(a, b):
    return a < b


@ti.func
def le_op(a, b):
    return a <= b


@ti.func
def gt_op(a, b):
    return a > b


@ti.func
def ge_op(a, b):
    return a >= b


add_kernel = binary_kernel(add_op, "add_kernel")
sub_kernel = binary_kernel(sub_op, "sub_kernel")
mul_kernel = binary_kernel(mul_op, "mul_kernel")
div_kernel = binary_kernel(div_op, "div_kernel")
maximum_kernel = binary_kernel(maximum_op, "maximum_kernel")
minimum_kernel = binary_kernel(minimum_op, "minimum_kernel")
eq_kernel = binary_kernel(eq_op, "eq_kernel")
ne_kernel = binary_kernel(ne_op, "ne_kernel")
lt_kernel = binary_kernel(lt_op, "lt_kernel")
le_kernel = binary_kernel(le_op, "le_kernel")
gt_kernel = binary_kernel(gt_op, "gt_kernel")
ge_kernel = binary_kernel(ge_op, "ge_kernel")


@ti.func
def int_pow(base, exponent):
    # base ** exponent for exponent >= 0 by repeated squaring, wrapping like NumPy's integers
    r = base * 0 + 1
    b = base
    e = exponent
    while e > 0:
        if e & 1:
            r *= b
        b *= b
        e >>= 1
    return r


@ti.func
def float_pow(a, b):
    # a ** b by the platform's pow, except (-inf) ** b for b > 0, which IEEE (and NumPy) make
    # -inf for odd integers b and +inf otherwise; CUDA's float64 pow gave -inf for b = 0.5.
    r = ti.pow(a, b)
    if a == -ti.math.inf and b > 0:
        odd = b == ti.floor(b) and ti.floor(b / 2) * 2 != b  # b = inf is not odd
        r = -a if not odd else a
    return r


@ti.kernel
def pow_kernel(
    x: ti.types.ndarray(ndim=1),
    y: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    sx: ti.i32,
    sy: ti.i32,
    strided: ti.template(),
    serial: ti.template(),
) -> ti.i32:
    # out = x ** y: libm pow for floats (NumPy's special cases: (-2.0) ** 2 = 4, (-2.0) ** 0.5
    # = NaN, 1 ** NaN = 1); integers by squaring. Returns how many integer exponents were
    # negative (NumPy refuses those; the caller raises).
    negative = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        a = load(x, i * sx) if ti.static(strided) else load(x, i)
        b = load(y, i * sy) if ti.static(strided) else load(y, i)
        if ti.static(storage_of(x) in INTEGER_STORAGE):
            if b < 0:
                negative += 1
            store(out, i, int_pow(a, b))
        else:
            store(out, i, float_pow(a, b))
    return negative


@ti.kernel
def where_kernel(
    c: ti.types.ndarray(ndim=1),
    x: ti.types.ndarray(ndim=1),
    y: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    sc: ti.i32,
    sx: ti.i32,
    sy: ti.i32,
    strided: ti.template(),
    serial: ti.template(),
):
    # out = x if c else y (elements copied as they are stored: no rounding, NaN bits kept)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        if ti.static(strided):
            out[i] = x[i * sx] if c[i * sc] != 0 else y[i * sy]
        else:
            out[i] = x[i] if c[i] != 0 else y[i]


@ti.kernel
def cast_kernel(x: ti.types.ndarray(ndim=1), out: ti.types.ndarray(ndim=1), serial: ti.template()):
    # out = x converted as NumPy's astype: floats to integers truncate toward zero, anything to
    # bool is x != 0 (NaN is True), float64 to float16 rounds once.
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        if ti.static(storage_of(x) == ti.f64):
            store_f64(out, i, x[i])
        else:
            store(out, i, load(x, i))
