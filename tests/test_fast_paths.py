"""The eager hot path's shortcuts give what the general path gives: weak Python constants
converted once, the Taichi backend's NumPy dispatch decided once per (op, dtype) with a
prebuilt errstate, tape entries whose Record views are made on demand, and a reverse sweep
specialised for when nobody observes it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.backends.taichi.dispatch import THRESHOLDS
from tfgrad.ops import _common


# ---- Weak Python constants, cached per (value, dtype, backend) ----
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_cached_constants_keep_the_tensors_dtype(backend, dtype):
    x = tg.tensor([1.0, 2.0], dtype=dtype)
    for _ in range(3):  # the first conversion is cached; the later ones reuse it
        for y in (x * 1.01, 1.01 * x, x + 2, 0.5 - x, x / 3.0):
            assert y.dtype.name == dtype
    np.testing.assert_allclose(
        (x * 1.01).numpy().astype(np.float64),
        (x.numpy() * np.asarray(1.01, x.numpy().dtype)).astype(np.float64),
    )
    # One value in two dtypes is two constants: float32 x then float64 x, and back.
    x64 = tg.tensor([1.0, 2.0], dtype="float64")
    assert (x64 * 1.01).dtype.name == "float64" and (x * 1.01).dtype.name == dtype
    assert (x64 * 1.01).numpy()[0] == 1.01


def test_cached_constants_keep_signed_zero_nan_and_int_rules(backend):
    x = tg.tensor([1.0, -2.0])
    for _ in range(2):
        assert np.signbit((x * 0.0).numpy()).tolist() == [False, True]
        assert np.signbit((x * -0.0).numpy()).tolist() == [True, False]
        assert np.isnan((x + float("nan")).numpy()).all()
        assert ((x * float("inf")).numpy() == [np.inf, -np.inf]).all()
    i = tg.tensor([1, 2])
    assert (i * 2).dtype.name == "int64" and (i * 2.5).dtype.name == "float64"
    assert (tg.tensor([1.0], dtype="float32") * True).dtype.name == "float32"


def test_constant_cache_stays_bounded_and_values_stay_right(backend):
    x = tg.tensor([1.0])
    for k in range(1, 3 * _common.CONSTANTS_KEPT):
        assert (x * float(k)).item() == float(k)
    assert len(_common._CONSTANTS) <= _common.CONSTANTS_KEPT


def test_cached_constants_are_constants_on_a_tape(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([1.0, 2.0]))
        y = tg.sum(x * 3.0 + 3.0 * x)
    assert [r.inputs[1] for r in tape.records[:1]] == [None]
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [6.0, 6.0])


# ---- The NumPy path of tiny arrays: errstate and the dispatch plan ----
def test_ieee_results_without_warnings_and_numpy_state_untouched(backend):
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked RuntimeWarning would raise here
        for _ in range(2):  # the second run takes any cached plan
            assert tg.log(tg.tensor([0.0])).item() == -np.inf
            assert np.isnan(tg.log(tg.tensor([-1.0])).item())
            assert np.isnan(tg.sqrt(tg.tensor([-1.0], dtype="float32")).item())
            assert np.isnan(tg.sin(tg.tensor([np.inf])).item())
            assert (tg.tensor([1e308]) * tg.tensor([10.0])).item() == np.inf
            assert (tg.tensor([1.0]) / tg.tensor([0.0])).item() == np.inf
            assert np.isnan((tg.tensor([0.0]) / tg.tensor([0.0])).item())
            assert tg.exp(tg.tensor([1000.0])).item() == np.inf
    assert np.geterr() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the user's own NumPy still warns as they set it
        with pytest.raises(RuntimeWarning):
            np.log(np.array([0.0]))


def test_dispatch_plan_follows_the_size_class_per_call():
    # One (op, dtype) plan: NumPy below the threshold, the Taichi kernel at it and above, in
    # any order of calls, and the tape records what ran each time.
    n = THRESHOLDS["transcendental"][np.dtype(np.float64)]
    with tg.use_backend("taichi", dispatch="auto") as backend:
        small, big = tg.tensor(np.linspace(0, 1, 4)), tg.tensor(np.linspace(0, 1, n))
        tiny = "numpy" if backend.device == "cpu" else "taichi"  # device buffers stay on it
        for x, want in ((small, tiny), (big, "taichi"), (small, tiny), (big, "taichi")):
            with tg.GradientTape() as tape:
                y = tg.sin(tape.watch(x))
            assert tape.records[0].implementation == want
            np.testing.assert_allclose(y.numpy(), np.sin(x.numpy()), rtol=1e-14)
        # Mixed sizes (one operand at the threshold) leave the tiny-array path.
        with tg.GradientTape() as tape:
            a = tape.watch(tg.tensor(np.ones(1)))
            tg.sin(a) * tg.sin(tape.watch(big))
        assert tape.records[-1].op == "mul" and tape.records[-1].implementation == "taichi"


def test_plain_ufunc_path_matches_the_reference_on_0d_and_broadcast():
    with tg.use_backend("taichi", dispatch="auto"):
        s = tg.tensor(2.0)
        assert (s * s).shape == () and isinstance((s * s).numpy(), np.ndarray)
        assert (tg.sin(s)).shape == ()
        r = tg.tensor([[1.0], [2.0]]) * tg.tensor([1.0, 2.0, 3.0])
        np.testing.assert_array_equal(r.numpy(), [[1, 2, 3], [2, 4, 6]])
        assert r.numpy().flags.c_contiguous
        assert (tg.tensor([1.0, 2.0]) < tg.tensor([2.0, 2.0])).dtype.name == "bool"


# ---- Tape entries and their Record views ----
def _fields(r, value=True):
    return (
        r.index, r.op, r.inputs, r.output, r.params, r.implementation, r.scope, r.shape,
        r.dtype, r.input_shapes, r.input_dtypes,
    ) + ((r.value.tolist(),) if value else ())  # fmt: skip


def test_records_made_on_demand_are_what_observers_saw(backend):
    seen = []
    with tg.GradientTape() as tape:
        tape.observe(lambda e: seen.append(e.record) if e.kind == "record" else None)
        x = tape.watch(tg.tensor([1.0, 2.0]))
        with tg.name_scope("s"):
            y = tg.sin(x) * x
        first = tape.records  # views of the records so far
        z = tg.sum(y, axis=0)
    records = tape.records
    assert records is tape.records and records[:2] == first[:2] == seen[:2]
    assert seen == records and all(a is b for a, b in zip(seen, records))
    assert [(r.op, r.scope) for r in records] == [("sin", "s"), ("mul", "s"), ("sum", "")]
    assert records[2].params == {"axes": (0,), "keepdims": False}
    tape.gradient(z, x)
    for r in records:
        assert r.adjoint is not None and r.adjoint.shape == r.shape
    assert [_fields(r) for r in seen] == [_fields(r) for r in records]


def test_records_of_an_unobserved_tape_equal_an_observed_ones(backend):
    # An observed tape keeps every value (as keep_values=True does); an unobserved one only
    # the residuals, with the same records, adjoints and gradient.
    def run(observed, keep_values):
        with tg.GradientTape(keep_values=keep_values) as tape:
            if observed:
                tape.observe(lambda e: None)
            x = tape.watch(tg.tensor([[1.0, 2.0], [3.0, 4.0]]))
            y = tg.sum(tg.exp(x) * tg.tensor([1.0, 2.0]) + x)
        g = tape.gradient(y, x)
        fields = [_fields(r, value=keep_values or observed) for r in tape.records]
        return fields, [r.adjoint.tolist() for r in tape.records], g

    (f1, a1, g1), (f2, a2, g2) = run(False, True), run(True, False)
    (f3, a3, g3) = run(False, False)
    assert f1 == f2 and a1 == a2 == a3
    assert f3 == [f[:-1] for f in f1]
    np.testing.assert_array_equal(g1.numpy(), g2.numpy())
    np.testing.assert_array_equal(g1.numpy(), g3.numpy())


# ---- The unobserved sweep against the observed one ----
def _loss(x, w):
    # fan-out (x used thrice), broadcasting (w against rows), a dtype cast, a rule returning
    # None (sign), a variadic rule (concatenate's vjp_all) and a constant input.
    h = tg.tanh(x * w) + tg.sign(x) * x
    c = tg.concatenate([h, x * 2.0], axis=0)
    return tg.sum(c * c) + tg.sum(tg.astype(x, "float32") * 1.5)


@pytest.mark.parametrize("persistent", [False, True])
def test_unobserved_sweep_equals_the_observed_sweep(backend, persistent):
    x0 = tg.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
    w0 = tg.tensor([0.3, -0.2, 0.1])
    grads, events = [], []
    for observed in (False, True):
        with tg.GradientTape(persistent=persistent) as tape:
            if observed:
                tape.observe(lambda e: events.append(e.kind))
            x, w = tape.watch(x0), tape.watch(w0)
            y = _loss(x, w)
        grads.append([g.numpy() for g in tape.gradient(y, [x, w])])
    for got, want in zip(grads[0], grads[1]):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    assert "accumulate" in events and events[-1] == "sweep_end"


def test_sweep_of_a_nested_tape_still_gives_second_derivatives(backend):
    x0 = tg.tensor([0.3, 0.7])
    with tg.GradientTape() as outer:
        x = outer.watch(x0)
        with tg.GradientTape() as inner:
            xi = inner.watch(x)
            y = tg.sum(tg.sin(xi) * xi * 2.0)
        g = inner.gradient(y, xi)
        s = tg.sum(g)
    h = outer.gradient(s, x).numpy()
    xn = x0.numpy()
    np.testing.assert_allclose(h, 2 * (2 * np.cos(xn) - xn * np.sin(xn)), rtol=1e-12)
