"""The dispatch policy of the Taichi backend: which implementation runs each op (by op, dtype and
size), that tape records say so, and that every implementation gives the reference's results."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tfgrad as tg
from tfgrad.backends.numpy_backend import NumpyBackend
from tfgrad.backends.taichi.backend import TaichiBackend
from tfgrad.backends.taichi.dispatch import FAMILY, MODES, THRESHOLDS, Policy
from tfgrad.errors import BackendError
from tfgrad.ops import BACKEND_OPS

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
F16, BF16 = np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)
HALVES = (F16, BF16)


class _Buf:
    """Stands for a buffer: the policy looks at dtype and size only."""

    def __init__(self, size, dtype):
        self.size, self.dtype = size, np.dtype(dtype)


def choose(policy, op, size, dtype, n=2):
    return policy.choose(op, tuple(_Buf(size, dtype) for _ in range(n)), {})


def test_auto_policy_table():
    auto = Policy("auto", "cpu")
    large = THRESHOLDS["elementwise"][F64]
    assert choose(auto, "add", 4, F64) == "numpy"  # a launch costs more than the work
    assert choose(auto, "add", large, F64) == "taichi"
    assert choose(auto, "add", large - 1, F64) == "numpy"
    for dtype in (F32, F64):
        assert choose(auto, "matmul", 4, dtype) == "blas"
        assert choose(auto, "matmul", 10**7, dtype) == "blas"
    for dtype in HALVES:  # each half by its own thresholds; products widen to float32 BLAS
        assert choose(auto, "add", 4, dtype) == "numpy"
        assert choose(auto, "add", THRESHOLDS["elementwise"][dtype], dtype) == "taichi"
        for op in ("matmul", "conv2d", "conv2d_input_grad", "conv2d_weight_grad"):
            assert choose(auto, op, 4, dtype) == "blas"
            with tg.config.deterministic():  # the fixed-order kernels, in halves too
                assert choose(auto, op, 4, dtype) == "taichi"
    assert choose(auto, "add", 4, np.int64) == "taichi"  # kernels keep integer dtype checks
    assert choose(auto, "take", 4, F64) == "taichi"  # index errors come from the kernel
    assert auto.choose("full", (), {"shape": (2, 3), "value": 1.0, "dtype": F64}) == "numpy"


def test_every_family_is_calibrated_for_every_float_dtype():
    assert set(FAMILY.values()) == set(THRESHOLDS)
    for by_dtype in THRESHOLDS.values():
        assert set(by_dtype) == {F32, F64, *HALVES} and all(n > 0 for n in by_dtype.values())
    assert set(FAMILY) < set(BACKEND_OPS)


@pytest.mark.parametrize("policy", [Policy("taichi-only", "cpu"), Policy("auto", "device")])
def test_taichi_only_and_device_buffers_run_taichi_everywhere(policy):
    for op in BACKEND_OPS:
        for dtype in (F32, F64) + HALVES:
            assert choose(policy, op, 4, dtype) == "taichi"


def test_unknown_dispatch_is_a_backend_error():
    for call in (
        lambda: tg.init("taichi", dispatch="fastest"),
        lambda: tg.use_backend("taichi", dispatch="fastest").__enter__(),
    ):
        with pytest.raises(BackendError) as err:
            call()
        assert all(mode in str(err.value) for mode in MODES)
    with pytest.raises(BackendError, match="dispatch"):
        tg.init("numpy", dispatch="auto")
    tg.init("taichi")  # leave the default current


def _step(x, w):
    h = tg.tanh(x @ w)
    return tg.sum(h * h + tg.exp(-h))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_auto_equals_taichi_only_equals_numpy(dtype):
    rng = np.random.default_rng(0)
    x_np, w_np = rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    results = {}
    for name, opts in {
        "numpy": {"backend": "numpy"},
        "taichi-only": {"backend": "taichi", "dispatch": "taichi-only"},
        "auto": {"backend": "taichi", "dispatch": "auto"},
    }.items():
        with tg.use_backend(**opts):
            x, w = tg.tensor(x_np, dtype=dtype), tg.tensor(w_np, dtype=dtype)
            value, grads = tg.value_and_grad(_step, argnums=(0, 1))(x, w)
            results[name] = [value.numpy(), *(g.numpy() for g in grads)]
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    for name in ("taichi-only", "auto"):
        for got, want in zip(results[name], results["numpy"]):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_records_carry_the_implementation_that_ran():
    with tg.use_backend("taichi", dispatch="auto") as backend:
        with tg.GradientTape() as tape:
            x = tape.watch(tg.tensor(np.ones((2, 2), np.float32)))
            big = tape.watch(tg.ones(THRESHOLDS["elementwise"][F16], dtype="float16"))
            y = x @ x + 1.0
            z = big * big
        impl = {r.op: r.implementation for r in tape.records}
    if backend.device == "cpu":
        assert impl["matmul"] == "blas" and impl["add"] == "numpy" and impl["mul"] == "taichi"
    else:  # on a GPU the buffers live on the device: Taichi for everything
        assert set(impl.values()) == {"taichi"}
    with tg.use_backend("taichi", dispatch="taichi-only"):
        with tg.GradientTape() as tape:
            x = tape.watch(tg.tensor(np.ones((2, 2), np.float32)))
            y = x @ x + 1.0
        assert {r.implementation for r in tape.records} == {"taichi"}
    del y, z
    with tg.use_backend("taichi", dispatch="auto") as backend, tg.GradientTape() as tape:
        w = tape.watch(tg.ones((3, 3), dtype="bfloat16"))
        y = tg.sum(w @ w)
        with tg.config.deterministic():
            z = w @ w
    impl = [(r.op, r.implementation) for r in tape.records if r.op in ("matmul", "sum")]
    if backend.device == "cpu":
        assert impl == [("matmul", "blas"), ("sum", "numpy"), ("matmul", "taichi")]
    del y, z


# ---- Halves outside Taichi: the same bits as the kernels (one half ulp where stated) ----
def _half_bits(dtype, size, rng):
    """Every 16-bit pattern equally likely: normals of every exponent, subnormals, zeros of
    both signs, infinities and NaNs."""
    return rng.integers(0, 1 << 16, size, dtype=np.uint16).view(dtype)


def _ulps(a, b):
    """The distance of two half arrays in units in the last place (NaN to NaN: 0)."""
    ia, ib = (np.asarray(v).view(np.int16).astype(np.int64) for v in (a, b))
    ia, ib = (np.where(i < 0, -(i & 0x7FFF), i) for i in (ia, ib))  # sign-magnitude to a line
    both_nan = np.isnan(np.asarray(a, np.float32)) & np.isnan(np.asarray(b, np.float32))
    return np.where(both_nan, 0, np.abs(ia - ib))


UNARY = ["neg", "abs", "sign", "sqrt", "exp", "log", "log1p", "expm1", "sin", "cos", "tanh"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "pow", "eq", "ne", "lt", "ge"]
# NumPy's float32 exp, tanh, ... are not Taichi's (LLVM's): a result one half ulp apart now and
# then (16 of 40,000 random patterns measured); IEEE-exact ops give the kernels' bits.
LIBRARY = {"exp", "log", "log1p", "expm1", "sin", "cos", "tanh", "pow"}


@pytest.fixture(scope="module")
def auto_and_taichi():
    return TaichiBackend("cpu", dispatch="auto"), TaichiBackend("cpu", dispatch="taichi-only")


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_small_half_ops_run_numpy_with_the_kernels_bits(auto_and_taichi, dtype):
    auto, taichi = auto_and_taichi
    rng = np.random.default_rng(7)
    x, y = _half_bits(dtype, 4096, rng), _half_bits(dtype, 4096, rng)
    # Results that are exact ties in float32: one rounding, to even (1 + 2**-11 is a float16
    # tie, 1 + 2**-8 a bfloat16 one); a sum past the largest float16 overflows to inf.
    eps = 2.0 ** {F16: -11, BF16: -8}[dtype]
    x[:4] = np.array([1.0, 1.0, 60000.0, 2.0**-14], dtype)
    y[:4] = np.array([eps, 3 * eps, 60000.0, -(2.0**-15)], dtype)
    for op in UNARY + BINARY:
        args = (x,) if op in UNARY else (x, y)
        got, want = auto.run(op, *args), taichi.run(op, *args)
        assert auto.implementation(op) == "numpy" and taichi.implementation(op) == "taichi"
        assert got.dtype == want.dtype, op
        if want.dtype == np.bool_:
            np.testing.assert_array_equal(got, want, err_msg=op)
        else:
            assert _ulps(got, want).max() <= (op in LIBRARY), op
    total = auto.run("add", x[:4], y[:4])
    big = np.inf if dtype == F16 else np.array(2 * float(x[2])).astype(dtype)  # 119808
    np.testing.assert_array_equal(total.astype(np.float64)[:3], [1.0, 1.0 + 4 * eps, big])
    for to in (F32, F16, BF16):
        got, want = auto.run("cast", x, dtype=to), taichi.run("cast", x, dtype=to)
        assert auto.implementation("cast") == "numpy" and got.dtype == want.dtype == to
        if to == F32:  # exact both ways (NaNs equal)
            np.testing.assert_array_equal(got, want)
        else:
            assert _ulps(got, want).max() == 0, to
    finite = rng.normal(size=(33, 65)).astype(dtype)
    for axes in ((0,), (0, 1)):
        got = auto.run("sum", finite, axes=axes, keepdims=False)
        want = taichi.run("sum", finite, axes=axes, keepdims=False)
        assert auto.implementation("sum") == "numpy"
        assert _ulps(got, want).max() <= 1  # float32 sums in another order, rounded once


def _rounded_once(exact, dtype):
    """float64 ``exact`` rounded once to ``dtype`` (ties to even, float16 overflows to inf)."""
    with np.errstate(over="ignore"):
        return exact.astype(dtype)


def _linalg_cases(a, b, x, w, g, conv):
    """The linear-algebra family's four ops: ``a @ b``, conv2d of ``x`` by ``w`` and its two
    transposes at the output gradient ``g``: {op: (args, params)}."""
    return {
        "matmul": ((a, b), {}),
        "conv2d": ((x, w), conv),
        "conv2d_input_grad": ((g, w), {"input_size": x.shape[2:], **conv}),
        "conv2d_weight_grad": ((x, g), {"kernel_size": w.shape[2:], **conv}),
    }


@pytest.mark.parametrize("dtype", HALVES, ids=str)
def test_half_products_run_float32_blas_rounded_once(auto_and_taichi, dtype):
    auto, taichi = auto_and_taichi
    rng = np.random.default_rng(8)
    a = rng.normal(size=(5, 33)).astype(dtype)
    b = (rng.normal(size=(33, 7)) * 2.0 ** rng.integers(-20, 9, (33, 7))).astype(dtype)
    a[0] = 200.0  # row 0 of a @ b passes float16's largest value: inf there, large in bfloat16
    b[:, 0] = 100.0
    x = rng.normal(size=(2, 3, 6, 5)).astype(dtype)
    w = rng.normal(size=(4, 3, 3, 2)).astype(dtype)
    conv = {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}
    g = rng.normal(size=(2, 4, 3, 3)).astype(dtype)
    cases = _linalg_cases(a, b, x, w, g, conv)
    f64 = NumpyBackend()
    for op, (args, params) in cases.items():
        got = auto.run(op, *args, **params)
        assert auto.implementation(op) == "blas"
        want = taichi.run(op, *args, **params)
        assert got.dtype == want.dtype == dtype and got.shape == want.shape
        # float32 sums in BLAS's order against the kernel's: one half ulp at most
        assert _ulps(got, want).max() <= 1, op
        exact = f64.run(op, *(v.astype(np.float64) for v in args), **params)
        assert _ulps(got, _rounded_once(exact, dtype)).max() <= 1, op
    assert np.isinf(auto.run("matmul", a, b)[0, 0]) == (dtype == F16)
    with tg.config.deterministic():
        for op, (args, params) in cases.items():
            got = auto.run(op, *args, **params)
            assert auto.implementation(op) == "taichi"
            want = taichi.run(op, *args, **params)
            np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))


@pytest.mark.parametrize("forced", [True, False], ids=["taichi casts", "numpy casts"])
def test_float16_products_convert_on_taichi_with_numpys_bits(auto_and_taichi, forced, monkeypatch):
    # Large float16 products convert their operands and result on Taichi's cast kernel (NumPy's
    # float16 casts are ~35x slower on subnormal and overflowing values); the bits are the
    # reference backend's (widen, float32 function, round once), at results in float16's
    # subnormal range, overflowing, zero and normal, forced both ways on small shapes.
    from tfgrad.backends.taichi import dispatch

    auto, _ = auto_and_taichi
    monkeypatch.setattr(dispatch, "FLOAT16_CAST_BELOW", 0 if forced else 10**12)
    rng = np.random.default_rng(9)
    a = (rng.normal(size=(8, 16)) * 2.0 ** rng.integers(-14, 9, (8, 16))).astype(F16)
    b = (rng.normal(size=(16, 6)) * 2.0 ** rng.integers(-14, 9, (16, 6))).astype(F16)
    a[0], a[1], b[:, 0] = 300.0, 0.0, 300.0  # overflow to inf; a zero row
    x = (rng.normal(size=(2, 5, 6, 6)) * 1e-3).astype(F16)  # products in the subnormal range
    w = (rng.normal(size=(4, 5, 3, 3)) * 1e-2).astype(F16)
    g = (rng.normal(size=(2, 4, 6, 6)) * 1e-3).astype(F16)
    conv = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)}
    cases = _linalg_cases(a, b, x, w, g, conv)
    reference = NumpyBackend()
    subnormal = 0
    for op, (args, params) in cases.items():
        got = auto.run(op, *args, **params)
        assert auto.implementation(op) == "blas" and got.dtype == F16
        with np.errstate(all="ignore"):
            want = reference.run(op, *args, **params)
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16), err_msg=op)
        bits = got.view(np.uint16) & 0x7FFF
        subnormal += int(((bits > 0) & (bits < 0x0400)).sum())
    assert subnormal > 50  # the slow values of NumPy's casts were there
    product = auto.run("matmul", a, b)
    assert np.isinf(product[0, 0]) and (product[1] == 0).all()


@pytest.mark.parametrize("source, target", [(F32, F16), (np.float64, F16), (F16, F32)])
def test_large_float16_casts_run_taichi_with_numpys_bits(auto_and_taichi, source, target):
    # NumPy's float16 casts are slow on subnormal values (a float16 sweep's small gradients):
    # from FLOAT16_CAST_BELOW elements a cast to or from float16 runs Taichi's kernel, with
    # NumPy's bits at subnormal, overflowing, tie, zero, inf and NaN values; smaller ones NumPy
    from tfgrad.backends.taichi.dispatch import FLOAT16_CAST_BELOW

    auto, _ = auto_and_taichi
    rng = np.random.default_rng(11)
    n = FLOAT16_CAST_BELOW
    x = rng.normal(size=n) * 2.0 ** rng.integers(-30, 17, n)  # subnormal to overflowing
    x[:6] = [1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 0.0, -0.0, np.inf, np.nan]  # ties to even
    with np.errstate(over="ignore"):  # a float16 source: the largest values are inf already
        x = x.astype(source)
    for size, implementation in ((n, "taichi"), (n - 1, "numpy")):
        got = auto.run("cast", x[:size].copy(), dtype=np.dtype(target))
        assert auto.implementation("cast") == implementation
        with np.errstate(all="ignore"):
            want = x[:size].astype(target)
        assert got.dtype == target
        np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{got.itemsize}"))
    half = (got if target == F16 else x).view(np.uint16) & 0x7FFF
    assert ((half > 0) & (half < 0x0400)).sum() > 1000  # subnormals were there
    assert auto.run("cast", x.astype(F32), dtype=np.dtype(np.float64)) is not None
    assert auto.implementation("cast") == "numpy"  # no float16 side: the calibrated rule


def test_float16_widens_by_table_with_astypes_bits():
    # The reference backend widens float16 arrays from WIDEN_BY_TABLE elements by a lookup of
    # all 65,536 patterns (NumPy's cast is ~11x slower on subnormals); the same bits as astype,
    # NaN payloads included, in a cast and inside the ops that compute in float32
    from tfgrad.backends.numpy_backend import WIDEN_BY_TABLE

    every = np.arange(1 << 16, dtype=np.uint16).view(F16).reshape(256, 256)
    assert every.size >= WIDEN_BY_TABLE
    reference = NumpyBackend()
    got = reference.run("cast", every, dtype=np.dtype(F32))
    np.testing.assert_array_equal(got.view(np.uint32), every.astype(F32).view(np.uint32))
    finite = np.where(np.isfinite(every), every, np.float16(0))
    with np.errstate(all="ignore"):
        want = finite.astype(F32).sum(axis=0).astype(F16)
    np.testing.assert_array_equal(reference.run("sum", finite, axes=(0,), keepdims=False), want)
    transposed = every.T  # a strided view: the lookup reads it as it is laid out
    np.testing.assert_array_equal(
        reference.run("cast", transposed, dtype=np.dtype(F32)).view(np.uint32),
        transposed.astype(F32).view(np.uint32),
    )


@pytest.mark.parametrize(
    "dtype", ["bool", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
)
@pytest.mark.parametrize(
    "c_shape, x_shape, y_shape",
    [((64, 128), (64, 128), (64, 128)), ((64, 128), (64, 128), ()), ((64, 1), (128,), (64, 128)),
     ((128,), (64, 1), (1, 128)), ((8, 16), (8, 16), (8, 16))],  # the last below the limit
)  # fmt: skip
def test_where_by_masks_copies_numpys_bits(dtype, c_shape, x_shape, y_shape):
    # From SELECT_BY_MASKS elements the reference backend's where selects by bit masks (np.where
    # mispredicts a branch per element of a random mask): the same bits as np.where, NaN
    # payloads, -0.0 and infinities included, broadcasting every way
    from tfgrad.backends.numpy_backend import SELECT_BY_MASKS

    rng = np.random.default_rng(12)
    c = rng.random(c_shape) > 0.5
    np_dtype = np.dtype(BF16) if dtype == "bfloat16" else np.dtype(dtype)
    x, y = (_bits_of(np_dtype, shape, rng) for shape in (x_shape, y_shape))
    got = NumpyBackend().run("where", c, x, y)
    want = np.where(c, x, y)
    assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
    view = f"u{np_dtype.itemsize}"
    np.testing.assert_array_equal(got.view(view), want.view(view))
    if x_shape == (8, 16):
        assert got.size < SELECT_BY_MASKS
    zero = np.zeros((), np_dtype)  # where(c, x, 0), ReLU's form, and its -0.0 twin
    np.testing.assert_array_equal(NumpyBackend().run("where", c, x, zero).view(view),
                                  np.where(c, x, zero).view(view))  # fmt: skip
    if np_dtype.kind == "f" or np_dtype == BF16:
        negative_zero = np.array(-0.0, np_dtype)
        np.testing.assert_array_equal(
            NumpyBackend().run("where", c, x, negative_zero).view(view),
            np.where(c, x, negative_zero).view(view),
        )


def _bits_of(dtype: np.dtype, shape, rng) -> np.ndarray:
    # every bit pattern equally likely (NaNs with payloads, infinities, -0.0, subnormals)
    if dtype == np.bool_:
        return rng.random(shape) > 0.5
    raw = rng.integers(0, 256, (*shape, dtype.itemsize), dtype=np.uint8)
    return np.ascontiguousarray(raw).view(dtype).reshape(shape)


def test_compiled_float16_products_take_the_same_route(auto_and_taichi, monkeypatch):
    # tfgrad.jit resolves its steps through kernel_for: a float16 product there is the same
    # function as the eager run (Taichi's casts around BLAS), with the same bits
    from tfgrad.backends.taichi import dispatch

    auto, _ = auto_and_taichi
    monkeypatch.setattr(dispatch, "FLOAT16_CAST_BELOW", 0)
    rng = np.random.default_rng(10)
    a, b = (rng.normal(size=(6, 9)) * 1e-4).astype(F16), rng.normal(size=(9, 4)).astype(F16)
    calls = []
    route = auto._float16_blas
    monkeypatch.setattr(auto, "_float16_blas", lambda *args: calls.append(1) or route(*args))
    fn, implementation = auto.kernel_for("matmul", a, b)
    assert implementation == "blas"
    with np.errstate(all="ignore"):
        want = NumpyBackend().run("matmul", a, b)
    np.testing.assert_array_equal(fn(a, b).view(np.uint16), want.view(np.uint16))
    np.testing.assert_array_equal(auto.run("matmul", a, b).view(np.uint16), want.view(np.uint16))
    assert len(calls) == 2  # the compiled step and the eager run, both on the Taichi casts
