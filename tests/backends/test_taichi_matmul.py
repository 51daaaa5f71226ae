"""The Taichi matmul kernel (``tfgrad/backends/taichi/linalg.py``) against NumPy.

Every dtype, every ``(m, k, n)`` with sizes in {0, 1, 3, 4, 5, 8, 17} (edges of the 8-row tiles,
of the 4-, 8- and 16-column tiles, and of packed versus in-place b), batches, vectors, shapes
that span several tile groups and packing blocks, and NaN/inf. Both loop paths run: a backend
with ``serial_below=0`` (parallel loops) and one with a huge ``serial_below`` (serial loops);
so do Taichi ndarray buffers and the GPU's tile plan (on this machine's arch).

Checks: integers and bools exactly (wrapping as NumPy's); floats within the summation bound of
``np.matmul`` (k roundings of the accumulator, relative to ``|a| @ |b|``, plus one rounding of a
half), with NaN and infinities where NumPy has them. On the CPU the kernel must also equal, bit
for bit, the in-order sum ``p = 0, 1, ..., k-1`` in the compute dtype (no fast math, no FMA), so
results do not depend on the tile shape, the thread count or whether b was packed.

``TFGRAD_TEST_ARCH`` (default ``cpu``) picks the Taichi arch, e.g. ``cuda`` on a GPU machine.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from tfgrad.backends.taichi.backend import DTYPES as BACKEND_DTYPES
from tfgrad.backends.taichi.backend import TaichiBackend
from tfgrad.errors import DtypeError, ShapeError

ARCH = os.environ.get("TFGRAD_TEST_ARCH", "cpu")
SIZES = (0, 1, 3, 4, 5, 8, 17)
DTYPES = {str(d): d for d in BACKEND_DTYPES}  # "bool", "int32", ..., "bfloat16", "float64"
FLOATS = ("float16", "bfloat16", "float32", "float64")
# the accumulator's unit roundoff, and one rounding of the result to the dtype
ACCUMULATOR_EPS = {"float16": 2.0**-24, "bfloat16": 2.0**-24, "float32": 2.0**-24}
ACCUMULATOR_EPS["float64"] = 2.0**-53
RESULT_EPS = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 0.0, "float64": 0.0}
COMPUTE = {"float16": np.float32, "bfloat16": np.float32, "float32": np.float32}
COMPUTE["float64"] = np.float64

_rng = np.random.default_rng(20261124)


def draw(dtype: str, shape) -> np.ndarray:
    if dtype == "bool":
        return _rng.random(shape) < 0.4
    if dtype in ("int32", "int64"):  # the full range: products and sums wrap
        info = np.iinfo(DTYPES[dtype])
        return _rng.integers(info.min, info.max, shape, dtype=DTYPES[dtype], endpoint=True)
    return _rng.uniform(-3, 3, shape).astype(DTYPES[dtype])


def in_order(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """sum_p a[..., :, p] * b[..., p, :] for p = 0, 1, ..., k-1 in the compute dtype (one
    rounding per multiply and per add), rounded once to the dtype."""
    compute = COMPUTE[dtype]
    a2 = a.astype(compute)[None] if a.ndim == 1 else a.astype(compute)
    b2 = b.astype(compute)[:, None] if b.ndim == 1 else b.astype(compute)
    acc = np.zeros(np.broadcast_shapes(a2.shape[:-1] + (1,), b2.shape[:-2] + (1, 1)), compute)
    acc = acc + np.zeros(b2.shape[-1:], compute)
    with np.errstate(all="ignore"):
        for p in range(a2.shape[-1]):
            acc = acc + a2[..., :, p, None] * b2[..., None, p, :]
    if a.ndim == 1:
        acc = acc[..., 0, :]
    if b.ndim == 1:
        acc = acc[..., 0]
    return acc.astype(DTYPES[dtype])


@pytest.fixture(scope="module", params=["parallel", "serial"])
def backend(request):
    return TaichiBackend(ARCH, serial_below=0 if request.param == "parallel" else 1 << 62)


def run(backend, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    bufs = backend.from_numpy(a), backend.from_numpy(b)
    got = backend.to_numpy(backend.run("matmul", *bufs))
    for x, buf in zip((a, b), bufs):  # inputs untouched
        np.testing.assert_array_equal(backend.to_numpy(buf).view(np.uint8), x.view(np.uint8))
    return got


def check(backend, a: np.ndarray, b: np.ndarray, dtype: str) -> None:
    got = run(backend, a, b)
    with np.errstate(all="ignore"):  # NumPy's bfloat16 matmul returns float32
        want = np.matmul(a, b).astype(DTYPES[dtype])
    where = f"{dtype} {a.shape} @ {b.shape}"
    assert got.shape == want.shape and got.dtype == want.dtype, where
    if dtype not in FLOATS:
        np.testing.assert_array_equal(got, want, err_msg=where)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{where}: NaN positions")
    inf = np.isinf(w)
    np.testing.assert_array_equal(g[inf], w[inf], err_msg=f"{where}: infinities")
    k = a.shape[-1]
    with np.errstate(all="ignore"):
        scale = np.matmul(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64)))
        bound = (k + 1) * ACCUMULATOR_EPS[dtype] * scale + RESULT_EPS[dtype] * np.abs(w)
        finite = ~np.isnan(w) & ~inf & np.isfinite(scale)
        bad = finite & ~(np.abs(g - w) <= bound)
    assert not bad.any(), f"{where}: got {g[bad][:4]}, NumPy {w[bad][:4]}"
    if ARCH == "cpu":  # bit for bit the in-order sum (NaN == NaN here)
        np.testing.assert_array_equal(
            got.astype(np.float64), in_order(a, b, dtype).astype(np.float64), err_msg=where
        )


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_every_small_shape(backend, dtype):
    for m, k, n in itertools.product(SIZES, SIZES, SIZES):
        check(backend, draw(dtype, (m, k)), draw(dtype, (k, n)), dtype)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("batch", [(1,), (2,), (2, 3), (0,)])
def test_batches(backend, dtype, batch):
    for m, k, n in [(1, 1, 1), (3, 5, 4), (17, 8, 5), (5, 17, 17), (8, 0, 3), (4, 3, 16)]:
        check(backend, draw(dtype, batch + (m, k)), draw(dtype, batch + (k, n)), dtype)


@pytest.mark.parametrize("dtype", ["int32", "bfloat16", "float32", "float64"])
def test_larger_shapes(backend, dtype):
    # several groups of row tiles, several packing blocks along k, b read in place with a
    # shifted last column tile, exact multiples of the tile, b packed for its stride
    for shape in [(1, 37, 130, 50), (3, 33, 70, 40), (1, 70, 200, 9), (2, 9, 65, 33)]:
        q, m, k, n = shape
        check(backend, draw(dtype, (q, m, k)), draw(dtype, (q, k, n)), dtype)
    # rows of b 4 KiB apart: packed into panels (1024 four-byte or 512 eight-byte columns)
    for m, k, n in [(64, 64, 64), (16, 16, 32), (40, 128, 48), (5, 9, 1024), (3, 70, 512)]:
        check(backend, draw(dtype, (m, k)), draw(dtype, (k, n)), dtype)


@pytest.mark.parametrize("dtype", ["bool", "int64", "float16", "float32", "float64"])
def test_vectors(backend, dtype):
    for a_shape, b_shape in [
        ((5,), (5,)),
        ((17,), (17, 3)),
        ((4, 17), (17,)),
        ((0,), (0,)),
        ((2, 3, 5), (5,)),
        ((5,), (2, 5, 4)),
    ]:
        check(backend, draw(dtype, a_shape), draw(dtype, b_shape), dtype)


def sprinkle(x: np.ndarray, fraction: float) -> np.ndarray:
    x = x.copy()
    flat = x.reshape(-1)
    picks = _rng.random(flat.shape) < fraction
    flat[picks] = _rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0]), picks.sum())
    return x


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_and_inf_propagate(backend, dtype):
    for m, k, n in [(5, 3, 17), (17, 8, 4), (9, 33, 20), (3, 17, 1)]:
        for fraction in (0.02, 0.2):
            a = sprinkle(draw(dtype, (m, k)), fraction)
            b = sprinkle(draw(dtype, (k, n)), fraction)
            check(backend, a, b, dtype)
    # inf * 0 and inf - inf are NaN, -inf - inf is -inf; NaN spreads along its row
    a = np.array([[np.inf, 1.0], [np.inf, -np.inf], [2.0, 1.0], [np.nan, 0.0]], DTYPES[dtype])
    b = np.array([[0.0, 1.0, -1.0], [1.0, 1.0, 1.0]], DTYPES[dtype])
    got = run(backend, a, b).astype(np.float64)
    expect = [
        [np.nan, np.inf, -np.inf],
        [np.nan, np.nan, -np.inf],
        [1.0, 3.0, -1.0],
        [np.nan, np.nan, np.nan],
    ]
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_serial_and_parallel_agree_bit_for_bit(dtype):
    parallel = TaichiBackend(ARCH, serial_below=0)
    serial = TaichiBackend(ARCH, serial_below=1 << 62)
    a, b = draw(dtype, (2, 37, 70)), draw(dtype, (2, 70, 21))
    np.testing.assert_array_equal(
        run(parallel, a, b).view(np.uint8), run(serial, a, b).view(np.uint8)
    )


@pytest.mark.parametrize("dtype", ["bool", "bfloat16", "float32", "float64", "int64"])
def test_device_buffers(dtype):
    # the GPU's buffer kind (Taichi ndarrays, scratch included), run wherever the tests run
    backend = TaichiBackend(ARCH, buffers="ndarray")
    for a_shape, b_shape in [((3, 5), (5, 17)), ((2, 17, 4), (2, 4, 3)), ((8, 0), (0, 5))]:
        check(backend, draw(dtype, a_shape), draw(dtype, b_shape), dtype)


@pytest.mark.parametrize("dtype", ["bool", "int32", "bfloat16", "float32", "float64"])
def test_gpu_plan_runs_here(monkeypatch, dtype):
    # the GPU's tile plan (4x4 tiles, consecutive tasks along the columns, one step of p per
    # packing task, no spreading), run on this machine's Taichi arch
    backend = TaichiBackend(ARCH, serial_below=0)
    monkeypatch.setattr(backend, "device", "cuda")
    for a_shape, b_shape in [((3, 5), (5, 17)), ((2, 17, 9), (2, 9, 6)), ((1, 1), (1, 1))]:
        check(backend, draw(dtype, a_shape), draw(dtype, b_shape), dtype)
    check(backend, draw(dtype, (37,)), draw(dtype, (37, 5)), dtype)


def test_errors():
    backend = TaichiBackend(ARCH)
    f32, f64 = np.ones((2, 3), np.float32), np.ones((3, 2), np.float64)
    with pytest.raises(DtypeError):
        backend.run("matmul", f32, f64.astype(np.float64))
    with pytest.raises(ShapeError):
        backend.run("matmul", f32, np.ones((2, 2), np.float32))
    with pytest.raises(ShapeError):
        backend.run("matmul", np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32))
