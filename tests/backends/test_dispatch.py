"""The dispatch policy of the Taichi backend: which implementation runs each op (by op, dtype and
size), that tape records say so, and that every implementation gives the reference's results."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tfgrad as tg
from tfgrad.backends.taichi.dispatch import FAMILY, MODES, THRESHOLDS, Policy
from tfgrad.errors import BackendError
from tfgrad.ops import BACKEND_OPS

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
HALVES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


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
    for dtype in HALVES:
        assert choose(auto, "add", 4, dtype) == "taichi"
        assert choose(auto, "matmul", 4, dtype) == "taichi"
    assert choose(auto, "add", 4, np.int64) == "taichi"  # kernels keep integer dtype checks
    assert choose(auto, "take", 4, F64) == "taichi"  # index errors come from the kernel
    assert auto.choose("full", (), {"shape": (2, 3), "value": 1.0, "dtype": F64}) == "numpy"


def test_every_family_is_calibrated_for_float32_and_float64():
    assert set(FAMILY.values()) == set(THRESHOLDS)
    for by_dtype in THRESHOLDS.values():
        assert set(by_dtype) == {F32, F64} and all(n > 0 for n in by_dtype.values())
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
            big = tape.watch(tg.ones(THRESHOLDS["elementwise"][F32], dtype="float16"))
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
