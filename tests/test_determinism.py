"""tfgrad.determinism: seeds derived stably from one global seed, and deterministic mode's bits:
the same across runs, across 1 and 2 threads (child processes), and between the NumPy and
Taichi matmuls."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from determinism_training import SEED, big_kernels, train
from thread_children import results_with_1_and_2_threads

import tfgrad as tg
import tfgrad.determinism as det
from tfgrad.errors import OptionError


@pytest.fixture(autouse=True)
def fresh_state():
    det.reset_deterministic_state()
    yield
    det.reset_deterministic_state()


# ---- Seeds ----
def test_operation_seed_is_stable_and_follows_the_global_seed():
    det.set_deterministic(True, seed=1)
    a, b = det.operation_seed("init/W1"), det.operation_seed("dropout/1")
    assert a != b and 0 <= a < 2**63 and 0 <= b < 2**63
    assert det.operation_seed("dropout/1") == b and det.operation_seed("init/W1") == a
    # the documented derivation: SHA-256 of "seed:name", not Python's salted hash
    digest = hashlib.sha256(b"1:init/W1").digest()
    assert a == int.from_bytes(digest[:8], "little") >> 1
    det.set_deterministic(True, seed=2)
    assert det.global_seed() == 2
    assert det.operation_seed("init/W1") != a
    det.set_deterministic(True, seed=1)
    assert det.operation_seed("init/W1") == a  # the same global seed gives the same seeds back


def test_clear_operation_seeds_forgets_names_but_not_their_derivation():
    det.set_deterministic(True, seed=5)
    a = det.operation_seed("a")
    det.operation_seed("b")
    assert set(det.operation_seeds()) == {"a", "b"}
    det.clear_operation_seeds()
    assert det.operation_seeds() == {}
    assert det.operation_seed("a") == a  # order-independent: "b" was not asked first this time
    assert set(det.operation_seeds()) == {"a"}
    det.set_deterministic(True, seed=6)  # a new global seed forgets the old derived seeds
    assert det.operation_seeds() == {}


def test_generator_draws_follow_the_operation_seed():
    det.set_deterministic(True, seed=3)
    x = det.generator("noise").normal((4,)).numpy()
    np.testing.assert_array_equal(det.generator("noise").normal((4,)).numpy(), x)
    assert not np.array_equal(det.generator("other").normal((4,)).numpy(), x)


def test_set_and_reset():
    assert not det.is_deterministic() and det.global_seed() == 0
    det.set_deterministic(True, seed=9)
    assert det.is_deterministic() and tg.config.deterministic_enabled()
    det.operation_seed("x")
    det.set_deterministic(False)  # seed=None keeps the seed
    assert not det.is_deterministic() and det.global_seed() == 9
    det.set_deterministic(True)
    det.reset_deterministic_state()
    assert not det.is_deterministic() and det.global_seed() == 0 and det.operation_seeds() == {}


def test_context_managers_restore_the_state():
    det.set_deterministic(False, seed=4)
    seed_4 = det.operation_seed("w")
    with det.deterministic(seed=8):
        assert det.is_deterministic() and det.global_seed() == 8
        assert det.operation_seed("w") != seed_4
        with tg.config.deterministic(False):
            assert not det.is_deterministic()
        assert det.is_deterministic()
    assert not det.is_deterministic() and det.global_seed() == 4
    assert det.operation_seeds() == {"w": seed_4}


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed_is_refused(seed):
    with pytest.raises(OptionError, match="set_deterministic: seed"):
        det.set_deterministic(True, seed=seed)
    assert not det.is_deterministic() and det.global_seed() == 0  # nothing changed


def test_bad_name_is_refused():
    with pytest.raises(OptionError, match="operation_seed: name must be a str"):
        det.operation_seed(3)


# ---- Deterministic mode in the kernels ----
def _watched_matmul_implementation(a, b):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(a))
        tg.matmul(x, tg.tensor(b))
    (record,) = [r for r in tape.records if r.op == "matmul"]
    return record.implementation


def test_deterministic_mode_leaves_blas_for_the_fixed_order_kernel():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((8, 16)), rng.standard_normal((16, 4))
    with tg.use_backend("taichi", dispatch="auto"):
        assert _watched_matmul_implementation(a, b) == "blas"
        with det.deterministic():
            assert _watched_matmul_implementation(a, b) == "taichi"
        assert _watched_matmul_implementation(a, b) == "blas"


def test_jit_compiles_again_in_deterministic_mode():
    rng = np.random.default_rng(1)
    a = tg.tensor(rng.standard_normal((33, 70)).astype(np.float32))
    b = tg.tensor(rng.standard_normal((70, 9)).astype(np.float32))
    with tg.use_backend("taichi", dispatch="auto"):
        f = tg.jit(lambda x, y: tg.matmul(x, y))
        blas = f(a, b).numpy()
        with det.deterministic():
            fixed = f(a, b).numpy()
            eager = tg.matmul(a, b).numpy()
        assert f.cache_info().misses == 2
    np.testing.assert_array_equal(fixed, eager)
    np.testing.assert_allclose(fixed, blas, rtol=1e-5, atol=1e-5)


SHAPES = [((5, 7), (7, 3)), ((2, 9, 40), (2, 40, 6)), ((40,), (40, 5)), ((3, 40), (40,))]


# every shape in float32 and float64; the other dtypes (a kernel variant each to compile) in one
CASES = [(s, d) for d in ("float32", "float64") for s in SHAPES] + [
    (SHAPES[1], d) for d in ("float16", "bfloat16", "int32", "bool")
]


@pytest.mark.parametrize("shapes, dtype", CASES, ids=str)
def test_numpy_ordered_matmul_gives_the_taichi_kernels_bits(shapes, dtype):
    rng = np.random.default_rng(2)
    if dtype in ("int32", "bool"):
        a, b = (rng.integers(-3, 4, s).astype(dtype) for s in shapes)
    else:
        a, b = (rng.standard_normal(s).astype(dtype) for s in shapes)
    with det.deterministic():
        with tg.use_backend("numpy"):
            ordered = tg.matmul(a, b).numpy()
        with tg.use_backend("taichi", dispatch="taichi-only"):
            kernel = tg.matmul(a, b).numpy()
    np.testing.assert_array_equal(ordered, kernel)
    assert ordered.dtype == np.dtype(dtype) and ordered.shape == np.matmul(a, b).shape
    if dtype in ("int32", "bool"):  # exact: NumPy's own integer and boolean matmul
        np.testing.assert_array_equal(ordered, np.matmul(a, b))
        return
    reference = np.matmul(a.astype(np.float64), b.astype(np.float64))
    tol = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(ordered.astype(np.float64), reference, rtol=tol, atol=tol * 10)


# ---- A training loop, bitwise ----
@pytest.mark.parametrize("setting", ["numpy", "taichi-only", "taichi"])
def test_training_is_bitwise_equal_across_runs(setting):
    options = {"numpy": {}, "taichi-only": {"dispatch": "taichi-only"}}.get(setting, {})
    backend = "numpy" if setting == "numpy" else "taichi"
    with tg.use_backend(backend, **options), det.deterministic(seed=SEED):
        assert train() == train()


def test_training_is_bitwise_equal_across_thread_counts():
    """Child processes with 1 and 2 threads (Taichi's and BLAS's), each a fresh run, against
    this process: the same loss, gradient and weights, bit for bit, on the Taichi (auto
    dispatch) and NumPy backends, the same big (parallel) Taichi reductions and matmul, and
    the same operation seed (no salted hash)."""
    one, two = results_with_1_and_2_threads("determinism_training.py", timeout=120)
    assert one == two
    with det.deterministic(seed=SEED):
        assert one["seed"] == det.operation_seed("init/W1")
        with tg.use_backend("taichi", dispatch="auto"):
            assert one["taichi"] == train()
            assert one["kernels"] == big_kernels()
        with tg.use_backend("numpy"):
            assert one["numpy"] == train()
