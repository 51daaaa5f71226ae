"""The creation family: full, arange, eye, and counter-based random draws; the kernels, their
host adapters and the table.

Random draws reproduce :mod:`tfgrad.backends.rng` bit for bit: word ``i`` of a stream is
``splitmix64(splitmix64(seed) + counter + i)`` in wrapping uint64 arithmetic; a uniform keeps the
word's top ``rng.MANTISSA_BITS[dtype]`` bits (exact in the dtype, never 1.0); a normal is
Box-Muller in float64 on words ``2i`` and ``2i + 1``, rounded to the dtype as NumPy's ``astype``.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import math

import numpy as np
import taichi as ti

from ...errors import DtypeError
from ..base import TRANSCENDENTAL
from ..rng import MANTISSA_BITS
from .buffers import FLOAT64, FLOATS
from .codec import store_exact, store_f64
from .elementwise import log1p_op

TWO_PI = 2.0 * math.pi  # the float64 NumPy computes for 2.0 * np.pi
INV_2_53 = 2.0**-53


@ti.kernel
def full_kernel(
    out: ti.types.ndarray(ndim=1),
    value_float: ti.f64,
    value_int: ti.i64,
    serial: ti.template(),
):
    # out[i] = value (given exactly, as a float64 for float dtypes, else as an int64/bits)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        store_exact(out, i, value_float, value_int)


@ti.kernel
def arange_kernel(
    out: ti.types.ndarray(ndim=1), start: ti.f64, step: ti.f64, serial: ti.template()
):
    # out[i] = start + step * i, in float64, then rounded to the dtype
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        store_f64(out, i, start + step * ti.cast(i, ti.f64))


@ti.kernel
def eye_kernel(
    out: ti.types.ndarray(ndim=1),
    columns: ti.i32,
    diagonal: ti.i32,
    one_float: ti.f64,
    one_int: ti.i64,
    serial: ti.template(),
):
    # out[r, c] = 1 if c - r == diagonal else 0, out viewed as (rows, columns)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        if i % columns - i // columns == diagonal:
            store_exact(out, i, one_float, one_int)
        else:
            store_exact(out, i, ti.cast(0, ti.f64), ti.cast(0, ti.i64))


@ti.func
def splitmix64(x):
    # SplitMix64's output function of x + golden ratio, in wrapping uint64 arithmetic
    z = x + ti.u64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> ti.u64(30))) * ti.u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> ti.u64(27))) * ti.u64(0x94D049BB133111EB)
    return z ^ (z >> ti.u64(31))


@ti.func
def unit_float64(word):
    # uniform in [0, 1) from the top 53 bits (exact in float64)
    return ti.cast(word >> ti.u64(11), ti.f64) * ti.f64(INV_2_53)


@ti.kernel
def random_uniform_kernel(
    out: ti.types.ndarray(ndim=1),
    seed: ti.u64,
    counter: ti.u64,
    bits_kept: ti.i32,
    scale: ti.f64,
    serial: ti.template(),
):
    # out[i] = (w >> (64 - bits_kept)) * scale, scale = 2^-bits_kept, w = splitmix64(
    # splitmix64(seed) + counter + i): exact in the dtype when bits_kept is its significand width
    key = splitmix64(seed)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        word = splitmix64(key + counter + ti.cast(i, ti.u64))
        store_f64(out, i, ti.cast(word >> ti.cast(64 - bits_kept, ti.u64), ti.f64) * scale)


@ti.kernel
def random_normal_kernel(
    out: ti.types.ndarray(ndim=1), seed: ti.u64, counter: ti.u64, serial: ti.template()
):
    # out[i] = sqrt(-2 log(1 - u1)) cos(2 pi u2), u1, u2 = unit(words 2i and 2i + 1);
    # 1 - u1 lies in (0, 1], so the log is finite
    key = splitmix64(seed)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for i in range(out.shape[0]):
        word = key + counter + ti.cast(i, ti.u64) * ti.u64(2)
        u1 = unit_float64(splitmix64(word))
        u2 = unit_float64(splitmix64(word + ti.u64(1)))
        store_f64(out, i, ti.sqrt(-2 * log1p_op(-u1)) * ti.cos(ti.f64(TWO_PI) * u2))


# ---- Host adapters ----
def _shape(shape):
    return (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def fill(backend, shape, value, dtype):
    """A new buffer of ``shape`` and ``dtype`` (a NumPy dtype) holding ``value``."""
    out = backend.empty(_shape(shape), dtype)
    if out.size:
        value_float, value_int = backend.exact_scalar(value, dtype)
        full_kernel(backend.arg(out), value_float, value_int, backend.serial(out.size))
    return out


def full(backend, op, shape, value, dtype):
    dtype = np.dtype(dtype)
    backend.check_dtype(op.name, dtype)
    return fill(backend, shape, value, dtype)


def arange(backend, op, start, step, n, dtype):
    dtype = np.dtype(dtype)
    backend.check_dtype(op.name, dtype)
    out = backend.empty(_shape(n), dtype)
    if out.size:
        arange_kernel(backend.arg(out), float(start), float(step), backend.serial(out.size))
    return out


def eye(backend, op, n, m=None, k=0, dtype=FLOAT64):
    dtype = np.dtype(dtype)
    backend.check_dtype(op.name, dtype)
    m = n if m is None else m
    out = backend.empty((int(n), int(m)), dtype)
    if out.size:
        one_float, one_int = backend.exact_scalar(1, dtype)
        eye_kernel(backend.arg(out), int(m), int(k), one_float, one_int, backend.serial(out.size))
    return out


def _random_dtype(name, dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOATS:
        raise DtypeError(f"{name}: draws are floats; got dtype {dtype}, use a float dtype.")
    return dtype


def random_uniform(backend, op, shape, seed, counter, dtype):
    dtype = _random_dtype(op.name, dtype)
    out = backend.empty(_shape(shape), dtype)
    if out.size:
        bits_kept = MANTISSA_BITS[dtype.name]
        random_uniform_kernel(
            backend.arg(out),
            int(seed) % 2**64,
            int(counter) % 2**64,
            bits_kept,
            2.0**-bits_kept,
            backend.serial(out.size),
        )
    return out


def random_normal(backend, op, shape, seed, counter, dtype):
    dtype = _random_dtype(op.name, dtype)
    out = backend.empty(_shape(shape), dtype)
    if out.size:
        # a log, a square root and a cosine per element: a transcendental's serial threshold
        serial = backend.serial(out.size, TRANSCENDENTAL)
        random_normal_kernel(backend.arg(out), int(seed) % 2**64, int(counter) % 2**64, serial)
    return out


CREATION = {
    "full": full,
    "arange": arange,
    "eye": eye,
    "random_uniform": random_uniform,
    "random_normal": random_normal,
}
