"""What every kernel shares: reading and writing elements in their storage dtype.

Each kernel takes flat 1-D arrays whose Taichi dtype is the *storage* dtype, and works in a
*compute* dtype:

==========  ==============  ==================================================================
tfgrad      storage         compute
==========  ==============  ==================================================================
bool        u8 (0 or 1)     i32; stored as ``v != 0``
int32       i32             i32 (sums and products accumulate in i64, as NumPy does)
int64       i64             i64
float16     f16             f32
bfloat16    u16 (the bits)  f32: read as ``bits << 16``, written rounded to nearest even
float32     f32             f32
float64     f64             f64
==========  ==============  ==================================================================

``u8`` and ``u16`` mean bool and bfloat16 *only* in kernels that compute; kernels that only move
elements (gathers, copies) take raw unsigned views of any dtype on the CPU and never decode.

Dtypes are chosen at compile time: ``ti.static(storage_of(x) == ti.u16)`` picks a branch, and
``x.get_type().element_type`` names the storage dtype inside Taichi code.

# NOTE: a bare float literal in an f64 kernel is an f32 constant (0.1 loses 8 digits). Kernels
# here use integers, powers of two, ``ti.f64(PYTHON_CONSTANT)`` (exact) or casts to the
# argument's dtype.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import taichi as ti

INTEGER_STORAGE = (ti.u8, ti.i32, ti.i64)  # bool, int32, int64


def storage_of(array):
    """The Taichi dtype of a kernel's ndarray argument (call inside ``ti.static``)."""
    return array.get_type().element_type


@ti.func
def is_nan(v):
    """v is NaN (False for integers).

    # NOTE: Taichi compiles float ``a != b`` as an *ordered* comparison (False when either is
    # NaN, unlike IEEE and NumPy) and folds ``v != v`` to False; write ``not (a == b)``."""
    if ti.static(ti.types.is_integral(v.ptr.get_rvalue_type())):
        return False
    else:
        return ti.math.isnan(v)


@ti.func
def bf16_to_f32(bits):
    """A bfloat16 is the top half of a float32: f32 bits = u16 << 16 (exact)."""
    return ti.bit_cast(ti.cast(bits, ti.u32) << ti.u32(16), ti.f32)


@ti.func
def f32_to_bf16(v):
    """Round a float32 to bfloat16 bits, to nearest with ties to even; NaN stays a quiet NaN
    (0x7FC0 with the sign, as ml_dtypes gives)."""
    u = ti.bit_cast(v, ti.u32)
    r = ti.u32(0)
    if is_nan(v):
        r = (u >> ti.u32(16)) & ti.u32(0x8000) | ti.u32(0x7FC0)
    else:
        # Adding 0x7FFF plus the lowest kept bit, then truncating, rounds to nearest even;
        # a carry into the exponent rounds up to the next binade (or to inf).
        r = (u + ti.u32(0x7FFF) + ((u >> ti.u32(16)) & ti.u32(1))) >> ti.u32(16)
    return ti.cast(r, ti.u16)


@ti.func
def f64_to_f32_odd(v):
    """Round a float64 to float32 *to odd*: truncate toward zero, then set the last bit if any
    bits were lost. Rounding that to a format at least two bits narrower (float16) gives the
    correctly rounded value of ``v``: f64 -> f16 rounds once, as NumPy's astype does."""
    r = ti.cast(v, ti.f32)  # to nearest
    if ti.cast(r, ti.f64) != v and not is_nan(v) and ti.abs(r) != ti.math.inf:
        bits = ti.bit_cast(r, ti.u32)
        if ti.abs(ti.cast(r, ti.f64)) > ti.abs(v):
            bits -= ti.u32(1)  # one step toward zero (sign-magnitude format)
        r = ti.bit_cast(bits | ti.u32(1), ti.f32)
    return r


@ti.func
def load(x: ti.template(), i):
    """Element ``i`` of ``x`` in its compute dtype."""
    if ti.static(storage_of(x) == ti.u16):
        return bf16_to_f32(x[i])
    elif ti.static(storage_of(x) == ti.u8):
        return ti.cast(x[i] != 0, ti.i32)
    elif ti.static(storage_of(x) == ti.f16):
        return ti.cast(x[i], ti.f32)
    else:
        return x[i]


@ti.func
def store(out: ti.template(), i, v):
    """Write ``v`` (a compute-dtype value, or an integer) to element ``i`` of ``out``."""
    if ti.static(storage_of(out) == ti.u16):
        out[i] = f32_to_bf16(ti.cast(v, ti.f32))
    elif ti.static(storage_of(out) == ti.u8):
        out[i] = ti.cast(not (v == 0), ti.u8)  # NaN is True
    elif ti.static(storage_of(out) == ti.f16):
        out[i] = ti.cast(ti.cast(v, ti.f32), ti.f16)
    else:
        out[i] = ti.cast(v, out.get_type().element_type)


@ti.func
def store_f64(out: ti.template(), i, v):
    """Write a float64 ``v`` with NumPy's ``astype`` rounding: float16 and bfloat16 round once
    (through float32 rounded to odd; ml_dtypes rounds float64 to bfloat16 directly, so
    127.74999999999999 is 127.5, where a float32 step would give 127.75 and then 128)."""
    if ti.static(storage_of(out) == ti.f16):
        out[i] = ti.cast(f64_to_f32_odd(v), ti.f16)
    elif ti.static(storage_of(out) == ti.u16):
        out[i] = f32_to_bf16(f64_to_f32_odd(v))
    else:
        store(out, i, v)


@ti.func
def store_exact(out: ti.template(), i, value_float, value_int):
    """Write a value given both ways: ``value_float`` an f64 holding a float dtype's value
    exactly, ``value_int`` an i64 holding an integer, a bool (0/1) or bfloat16 bits."""
    if ti.static(storage_of(out) in (ti.f16, ti.f32, ti.f64)):
        out[i] = ti.cast(value_float, out.get_type().element_type)
    else:
        out[i] = ti.cast(value_int, out.get_type().element_type)


@ti.func
def compute_zero(x: ti.template()):
    """0 in the compute dtype of ``x``."""
    if ti.static(storage_of(x) in (ti.u8, ti.i32)):
        return ti.cast(0, ti.i32)
    elif ti.static(storage_of(x) == ti.i64):
        return ti.cast(0, ti.i64)
    elif ti.static(storage_of(x) == ti.f64):
        return ti.cast(0, ti.f64)
    else:
        return ti.cast(0, ti.f32)


@ti.func
def accumulate_zero(x: ti.template()):
    """0 in the accumulator dtype of ``x``: i64 for integers and bools (NumPy's platform
    integer), f32 for float16/bfloat16/float32, f64 for float64."""
    if ti.static(storage_of(x) in INTEGER_STORAGE):
        return ti.cast(0, ti.i64)
    elif ti.static(storage_of(x) == ti.f64):
        return ti.cast(0, ti.f64)
    else:
        return ti.cast(0, ti.f32)
