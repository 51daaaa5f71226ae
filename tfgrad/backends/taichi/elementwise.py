"""The pointwise families (elementwise, transcendental, comparison, cast): kernels, their host
adapters and the tables that name them.

Every kernel loops over a flat output. A binary kernel reads each input as its ``layout`` (a
compile-time tuple, one entry per input) says: ``WHOLE``, of the output's shape, at ``i``;
``SCALAR``, one element, at 0; ``BLOCK``, broadcast along leading and trailing axes (a bias
row, a ``keepdims`` column), at ``(i // s) % m`` (faster than materialising the broadcast and
reading that: benchmarks/README.md, "Broadcasting in the kernel"). The adapter materialises
any other broadcast first. ``serial`` (a compile-time flag) runs the loop on the calling thread:
Taichi's parallel dispatch costs more than a small loop (see ``backend.SERIAL_BELOW``).

The math of each op is one ``ti.func`` of compute-dtype values (see :mod:`.codec`). A table
entry (:class:`Unary`, :class:`Binary`, ...) builds the op's kernel from it, runs it on buffers
the front end has validated, and gives the fused kernels of ``tfgrad.jit`` the same function
(:mod:`.fusion`), so a fused result equals the unfused one. An op defined by its scalar math
(``tfgrad.extend``) gets an entry from that math (:func:`scalar_entry`).
"""

# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.
import numpy as np
import taichi as ti

from ...errors import DtypeError, MissingKernelError
from .buffers import BOOL, FLOAT16, FLOAT64, FLOATS, INTEGERS
from .codec import INTEGER_STORAGE, is_nan, load, storage_of, store, store_f64
from .movement import broadcast_to


def unary_kernel(op, name: str):
    """A kernel computing ``out[i] = op(x[i])``."""

    def kernel(x: ti.types.ndarray(ndim=1), out: ti.types.ndarray(ndim=1), serial: ti.template()):
        if ti.static(serial):
            ti.loop_config(serialize=True)
        for i in range(out.shape[0]):
            store(out, i, op(load(x, i)))

    kernel.__name__ = kernel.__qualname__ = name
    return ti.kernel(kernel)


WHOLE, SCALAR, BLOCK = 0, 1, 2  # how a binary kernel reads an input (module docstring)


@ti.func
def at(i, s, m, mode: ti.template()):
    """Where an input read as ``mode`` holds output element ``i``."""
    r = i
    if ti.static(mode == SCALAR):
        r = 0
    elif ti.static(mode == BLOCK):
        r = (i // s) % m
    return r


def binary_kernel(op, name: str):
    """A kernel computing ``out[i] = op(x[at(i)], y[at(i)])``, each input read as its entry of
    ``layout`` says."""

    def kernel(
        x: ti.types.ndarray(ndim=1),
        y: ti.types.ndarray(ndim=1),
        out: ti.types.ndarray(ndim=1),
        sx: ti.i32,
        sy: ti.i32,
        mx: ti.i32,
        my: ti.i32,
        layout: ti.template(),
        serial: ti.template(),
    ):
        if ti.static(serial):
            ti.loop_config(serialize=True)
        for i in range(out.shape[0]):
            a, b = load(x, at(i, sx, mx, layout[0])), load(y, at(i, sy, my, layout[1]))
            store(out, i, op(a, b))

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
    mx: ti.i32,
    my: ti.i32,
    layout: ti.template(),
    serial: ti.template(),
) -> ti.i32:
    # out = x ** y: libm pow for floats (NumPy's special cases: (-2.0) ** 2 = 4, (-2.0) ** 0.5
    # = NaN, 1 ** NaN = 1); integers by squaring. Returns how many integer exponents were
    # negative (NumPy refuses those; the caller raises).
    negative = 0
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        a = load(x, at(i, sx, mx, layout[0]))
        b = load(y, at(i, sy, my, layout[1]))
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
    mc: ti.i32,
    mx: ti.i32,
    my: ti.i32,
    layout: ti.template(),
    serial: ti.template(),
):
    # out = x if c else y (elements copied as they are stored: no rounding, NaN bits kept)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        pick = c[at(i, sc, mc, layout[0])] != 0
        out[i] = x[at(i, sx, mx, layout[1])] if pick else y[at(i, sy, my, layout[2])]


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


# ---- Host adapters: one entry per op in its family's table ----
def _operands(backend, bufs, shape, raw=None):
    """``(args, steps, moduli, layout)`` for the inputs of a broadcasting op of output
    ``shape``: the kernel arguments (``raw[i]``: input i as stored, ``backend.raw``), and how
    the kernel reads each (module docstring)."""
    raw = raw or (False,) * len(bufs)
    args, steps, moduli, layout = [], [], [], []
    for b, r in zip(bufs, raw):
        step, n, mode = 1, 1, WHOLE
        if tuple(b.shape) != shape:
            block = None if b.size == 1 else _block(b.shape, shape)
            if b.size == 1:
                mode = SCALAR
            elif block is None:  # another broadcast: materialised
                b = broadcast_to(backend, None, b, shape)
            elif block != (1, int(np.prod(shape))):  # (else only leading 1s differ: whole)
                (step, n), mode = block, BLOCK
        args.append(backend.raw(b) if r else backend.arg(b))
        steps.append(step)
        moduli.append(n)
        layout.append(mode)
    return args, steps, moduli, tuple(layout)


def _block(in_shape, out_shape):
    """``(inner, n)`` when an input of ``in_shape`` broadcast to ``out_shape`` is one block of
    its axes (its n elements along a run of axes, ``inner`` elements of the output after
    each), so that output element ``i`` reads input ``(i // inner) % n``; else None."""
    in_shape = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    kept = [a for a, (n, m) in enumerate(zip(in_shape, out_shape)) if n == m and n != 1]
    if not kept or kept != list(range(kept[0], kept[-1] + 1)):
        return None
    if any(in_shape[a] != 1 for a in range(len(in_shape)) if a not in kept):
        return None
    return int(np.prod(out_shape[kept[-1] + 1 :])), int(np.prod(in_shape))


class Unary:
    """``out[i] = func(x[i])``, for float inputs and ``dtypes``."""

    def __init__(self, func, dtypes=(), name=None):
        self.func = func
        self.dtypes = FLOATS + tuple(dtypes)
        name = name or func.__name__.removesuffix("_op")
        self.kernel = unary_kernel(func, f"{name}_kernel")

    def __call__(self, backend, op, x):
        if x.dtype not in self.dtypes:
            kinds = ", ".join(str(d) for d in self.dtypes)
            raise DtypeError(
                f"{op.name}: takes {kinds} arrays, got {x.dtype} of shape {x.shape}; cast it "
                "first (x.astype('float64'))."
            )
        out = backend.empty(x.shape, x.dtype)
        if out.size:
            self.kernel(backend.arg(x), backend.arg(out), backend.serial(out.size, op.family))
        return out

    def fusable(self, in_dtypes, out_dtype):
        return all(d in FLOATS for d in (*in_dtypes, out_dtype))

    def expression(self, call, args, in_dtypes, params):
        return f"{call}({args[0]})"


class Binary:
    """``out[i] = func(x[i], y[i])`` with broadcasting; ``bools``: defined on bool arrays (as
    NumPy's logical or/and for add/mul). ``kernel`` replaces the one built from ``func``; it
    returns how many elements it refused (pow: integers to negative integer powers)."""

    def __init__(self, func, bools=False, kernel=None, name=None):
        self.func = func
        self.bools = bools
        name = name or func.__name__.removesuffix("_op")
        self.kernel = kernel or binary_kernel(func, f"{name}_kernel")

    def out_dtype(self, dtype):
        return dtype

    def __call__(self, backend, op, x, y):
        if x.dtype == BOOL and not self.bools:
            raise DtypeError(
                f"{op.name}: bool arrays cannot be used here (as in NumPy); cast first."
            )
        shape = x.shape if x.shape == y.shape else tuple(np.broadcast_shapes(x.shape, y.shape))
        out = backend.empty(shape, self.out_dtype(x.dtype))
        if not out.size:
            return out
        (xa, ya), steps, moduli, layout = _operands(backend, (x, y), shape)
        serial = backend.serial(out.size, op.family)
        refused = self.kernel(xa, ya, backend.arg(out), *steps, *moduli, layout, serial)
        if refused:
            raise DtypeError(
                f"{op.name}: integers to negative integer powers are not allowed ({x.dtype}, "
                f"shapes {x.shape} and {y.shape}); cast to a float dtype first."
            )
        return out

    def fusable(self, in_dtypes, out_dtype):
        return all(d in FLOATS for d in (*in_dtypes, out_dtype))

    def expression(self, call, args, in_dtypes, params):
        return f"{call}({args[0]}, {args[1]})"


class Comparison(Binary):
    """A binary op with a bool result (defined on every dtype)."""

    def __init__(self, func):
        super().__init__(func, bools=True)

    def out_dtype(self, dtype):
        return BOOL

    def fusable(self, in_dtypes, out_dtype):
        return all(d in FLOATS for d in in_dtypes)

    def expression(self, call, args, in_dtypes, params):
        return f"ti.cast({call}({args[0]}, {args[1]}), ti.i32)"


class Select:
    """``where(c, x, y)``: elements copied as they are stored, broadcasting all three."""

    func = None

    def __call__(self, backend, op, condition, x, y):
        shape = tuple(np.broadcast_shapes(condition.shape, x.shape, y.shape))
        out = backend.empty(shape, x.dtype)
        if not out.size:
            return out
        raw = (False, True, True)  # x and y copied as stored
        (ca, xa, ya), steps, moduli, layout = _operands(backend, (condition, x, y), shape, raw)
        serial = backend.serial(out.size, op.family)
        where_kernel(ca, xa, ya, backend.raw(out), *steps, *moduli, layout, serial)
        return out

    def fusable(self, in_dtypes, out_dtype):
        return in_dtypes[0] == BOOL and all(d in FLOATS for d in (*in_dtypes[1:], out_dtype))

    def expression(self, call, args, in_dtypes, params):
        return f"ti.select({args[0]} != 0, {args[1]}, {args[2]})"


class Cast:
    """``cast(x, dtype)``, as NumPy's ``astype``."""

    func = None

    def __call__(self, backend, op, x, dtype):
        dtype = np.dtype(dtype)
        backend.check_dtype("cast", dtype)
        if dtype == x.dtype:
            return x  # buffers are immutable: the same values may be shared
        out = backend.empty(x.shape, dtype)
        if out.size:
            cast_kernel(backend.arg(x), backend.arg(out), backend.serial(out.size, op.family))
        return out

    def fusable(self, in_dtypes, out_dtype):
        return all(d in FLOATS for d in (*in_dtypes, out_dtype))

    def expression(self, call, args, in_dtypes, params):
        source, target = in_dtypes[0], np.dtype(params["dtype"])
        if target == FLOAT64:
            return f"ti.cast({args[0]}, ti.f64)"
        if source == FLOAT64 and target == FLOAT16:  # round once, as NumPy's astype
            return f"ti.cast(f64_to_f32_odd({args[0]}), ti.f32)"
        return f"ti.cast({args[0]}, ti.f32)"  # halves round afterwards (as they are stored)


ELEMENTWISE = {
    "neg": Unary(neg_op, INTEGERS),
    "abs": Unary(abs_op, INTEGERS + (BOOL,)),
    "sign": Unary(sign_op, INTEGERS),
    "sqrt": Unary(sqrt_op),
    "add": Binary(add_op, bools=True),
    "sub": Binary(sub_op),
    "mul": Binary(mul_op, bools=True),
    "div": Binary(div_op),
    "maximum": Binary(maximum_op, bools=True),
    "minimum": Binary(minimum_op, bools=True),
    "where": Select(),
}
TRANSCENDENTAL = {
    "exp": Unary(exp_op),
    "log": Unary(log_op),
    "log1p": Unary(log1p_op),
    "expm1": Unary(expm1_op),
    "sin": Unary(sin_op),
    "cos": Unary(cos_op),
    "tan": Unary(tan_op),
    "tanh": Unary(tanh_op),
    "pow": Binary(float_pow, bools=True, kernel=pow_kernel),  # pow_kernel: integers too
}
COMPARISON = {
    "eq": Comparison(eq_op),
    "ne": Comparison(ne_op),
    "lt": Comparison(lt_op),
    "le": Comparison(le_op),
    "gt": Comparison(gt_op),
    "ge": Comparison(ge_op),
}
CAST = {"cast": Cast()}


def scalar_entry(op):
    """The entry of an op defined by its scalar math (``OpInfo.scalar``): its kernel is built
    from that math as a ``ti.func``, as the built-in ops' kernels are from theirs."""
    entries = {1: Unary, 2: Binary}
    if op.arity not in entries:
        raise MissingKernelError(
            f"{op.name}: an op defined by its scalar math takes one or two inputs on the taichi "
            f"backend, not {op.arity}; declare it with n_in=1 or n_in=2."
        )
    func = ti.func(op.scalar)
    return Unary(func, name=op.name) if op.arity == 1 else Binary(func, name=op.name)
