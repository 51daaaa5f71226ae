"""tfgrad.jit: compiled results equal eager ones (the op table, the benchmark workloads, every
derivative transform), the cache is hit and missed when it should be, and what cannot be
compiled says so."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_table import OPS, OpCase

import tfgrad as tg
from tfgrad.errors import TracingError

DIFFERENTIABLE = [case for case in OPS if case.order > 0]


def _close(got, want, rtol):
    got, want = tg.tree.tree_flatten(got)[0], tg.tree.tree_flatten(want)[0]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype is w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("case", OPS, ids=lambda c: c.name)
@given(data=st.data())
@settings(max_examples=3)
def test_jit_forward_equals_eager(backend, case: OpCase, data):
    shapes, params = case.draw(data, 0)
    seed = data.draw(st.integers(0, 2**16))
    for dtype in case.dtypes:
        args = [tg.tensor(a) for a in case.inputs(shapes, seed, dtype)]

        def f(*xs):
            return case.fn(*xs, **params)

        want = f(*args)
        got = tg.jit(f)(*args)
        _close(got, want, 1e-12 if dtype == "float64" else case.rtol32)


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=lambda c: c.name)
@given(data=st.data())
@settings(max_examples=2)
def test_jit_derivatives_equal_eager(backend, case: OpCase, data):
    """grad and, where twice differentiable, hvp (forward over reverse) of a weighted sum."""
    shapes, params = case.draw(data, 1)
    seed = data.draw(st.integers(0, 2**16))
    args = [tg.tensor(a) for a in case.inputs(shapes, seed, "float64")]
    rng = np.random.default_rng(seed + 1)
    weight = tg.tensor(rng.standard_normal(case.fn(*args, **params).shape))
    argnums = tuple(range(len(args)))

    def loss(*xs):
        return tg.sum(case.fn(*xs, **params) * weight)

    _close(tg.jit(tg.grad(loss, argnums))(*args), tg.grad(loss, argnums)(*args), 1e-11)
    if case.order > 1:
        vs = tuple(tg.tensor(rng.standard_normal(a.shape)) for a in args)

        def hvp(*xs):
            return tg.hvp(loss, xs, vs)

        _close(tg.jit(hvp)(*args), hvp(*args), 1e-10)


# ---- The benchmark workloads (float64, so jit and eager agree to round-off) ----
def _chain(x):
    y = x
    for _ in range(20):
        y = tg.sin(y) * 1.01 + 0.1 * y
    return tg.sum(y)


def _mlp_loss(w1, b1, w2, b2, x, y):
    h = tg.tanh(x @ w1 + b1)
    return -tg.sum(y * tg.log_softmax(h @ w2 + b2, axis=-1)) / x.shape[0]


def _rosen(x):
    return tg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _mlp_args(rng, dtype="float64"):
    shapes = [(12, 8), (8,), (8, 3), (3,), (5, 12)]
    arrays = [rng.standard_normal(s).astype(dtype) * 0.3 for s in shapes]
    onehot = np.eye(3, dtype=dtype)[rng.integers(0, 3, 5)]
    return [tg.tensor(a) for a in arrays] + [tg.tensor(onehot)]


WORKLOADS = {
    "tiny_chain": lambda rng: (tg.value_and_grad(_chain), [tg.tensor(rng.standard_normal(4))]),
    "mlp_step": lambda rng: (tg.value_and_grad(_mlp_loss, argnums=(0, 1, 2, 3)), _mlp_args(rng)),
    "hessian_rosen": lambda rng: (tg.hessian(_rosen), [tg.tensor(rng.uniform(-1, 1, 8))]),
    "hvp_mlp": lambda rng: (
        lambda *a: tg.hvp(lambda w1: _mlp_loss(w1, *a[1:]), a[0], tg.ones_like(a[0])),
        _mlp_args(rng),
    ),
    "elementwise": lambda rng: (
        tg.value_and_grad(lambda x: tg.sum(tg.tanh(x) * tg.exp(-x * x))),
        [tg.tensor(rng.standard_normal(1000))],
    ),
}


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_jit_workloads_equal_eager(backend, name):
    fn, args = WORKLOADS[name](np.random.default_rng(0))
    jitted = tg.jit(fn)
    want = fn(*args)
    _close(jitted(*args), want, 1e-11)
    _close(jitted(*args), want, 1e-11)  # the cached program, run again
    assert jitted.cache_info() == (1, 1, 1)


def test_jit_fuses_the_chain_into_one_kernel():
    with tg.use_backend("taichi"):
        f = tg.jit(tg.value_and_grad(_chain))
        x = tg.tensor([0.1, 0.2, 0.3, 0.4])
        program = f.program(x)
        kinds = [s.implementation for s in program.steps]
        assert kinds.count("fused-taichi") == 1, program.summary()
        (source,) = f.kernel_sources(x)
        assert "sin_op(" in source and "cos_op(" in source and "@ti.kernel" in source
        # the tape's 20 sin, 20 cos of the sweep and their arithmetic: one loop
        assert program.kernels[0].n_ops > 100


def test_jit_in_float32_and_halves_equals_eager_taichi():
    def f(x):
        return tg.sum(tg.tanh(x) * tg.exp(-x * x) + x.astype("float64").astype(x.dtype))

    rng = np.random.default_rng(3)
    for dtype in ("float32", "float16", "bfloat16"):
        x = tg.tensor(rng.standard_normal(50), dtype=dtype)
        with tg.use_backend("taichi", dispatch="taichi-only"):
            g = tg.grad(f)
            want = g(x)
            got = tg.jit(g)(x)
            assert got.dtype.name == dtype
            # the fused kernel runs the eager kernels' functions and rounds as they store
            np.testing.assert_array_equal(got.numpy(), want.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 8, 9, 29, 1001])
def test_unrolled_fused_kernels_equal_eager_at_every_length(dtype, n):
    # Fused loops run blocks of UNROLL elements and then the rest one by one: lengths below,
    # at and past a block, with NaN, infinities, zeros and values where exp over/underflows.
    from tfgrad.backends.taichi import fusion

    def f(x, y):
        return tg.sum(tg.tanh(x) * tg.exp(-x * x) + tg.exp(x) * y - tg.sqrt(tg.abs(x)))

    specials = [np.nan, np.inf, -np.inf, 0.0, -0.0, 89.0, -104.0, 710.0, -746.0, 1e-30]
    x = np.random.default_rng(n).standard_normal(n) * 4
    x[: min(n, len(specials))] = specials[:n]
    y = np.random.default_rng(n + 1).standard_normal((3, 1))
    with tg.use_backend("taichi", dispatch="taichi-only"):
        xt, yt = tg.tensor(x, dtype=dtype), tg.tensor(y, dtype=dtype)  # (3, n): broadcast
        g = tg.value_and_grad(f, argnums=(0, 1))
        jitted = tg.jit(g)
        want, got = g(xt, yt), jitted(xt, yt)
        assert any("fused" in s.implementation for s in jitted.program(xt, yt).steps)
        source = "\n".join(jitted.kernel_sources(xt, yt))
        assert (f"for b in range({3 * n // fusion.UNROLL})" in source) == (3 * n >= 8)
        for a, b in zip(tg.tree.tree_flatten(got)[0], tg.tree.tree_flatten(want)[0]):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


# ---- The cache ----
def test_cache_hit_on_same_shapes_miss_on_new_shape_or_dtype():
    calls = []

    def f(x, scale):
        calls.append(1)
        return tg.sum(x * scale)

    jf = tg.jit(f)
    jf(tg.ones(3), 2.0)
    assert jf.cache_info() == (0, 1, 1) and jf.last_call == "miss"
    assert jf(tg.tensor([1.0, 2.0, 3.0]), 2.0).item() == 12.0
    assert jf.cache_info() == (1, 1, 1) and jf.last_call == "hit"
    assert len(calls) == 1  # a hit does not run the Python function
    jf(tg.ones(4), 2.0)  # new shape
    jf(tg.ones(3, dtype="float32"), 2.0)  # new dtype
    assert jf(tg.ones(3), 3.0).item() == 9.0  # a number is static: a new entry
    assert jf.cache_info() == (1, 4, 4)
    jf.clear_cache()
    assert jf.cache_info() == (0, 0, 0)


def test_static_argnums_and_nested_arguments():
    @tg.jit(static_argnums=1)
    def f(params, mode):
        w, b = params["w"], params["b"]
        return w * 2 + b if mode == "double" else w + b

    p = {"w": tg.tensor([1.0, 2.0]), "b": tg.tensor(1.0)}
    assert f(p, "double").numpy().tolist() == [3.0, 5.0]
    assert f(p, "plain").numpy().tolist() == [2.0, 3.0]
    assert f.cache_info().misses == 2


def test_constants_made_inside_are_baked_and_inputs_are_not():
    f = tg.jit(lambda x: x + tg.arange(3.0))
    assert f(tg.zeros(3)).numpy().tolist() == [0.0, 1.0, 2.0]
    assert f(tg.ones(3)).numpy().tolist() == [1.0, 2.0, 3.0]


def test_stop_gradient_inside_jit_still_follows_the_input():
    def f(x):
        return tg.sum(x * tg.stop_gradient(x))

    jf, g = tg.jit(f), tg.jit(tg.grad(f))
    assert jf(tg.tensor([1.0, 2.0])).item() == 5.0
    assert jf(tg.tensor([3.0, 4.0])).item() == 25.0
    assert g(tg.tensor([3.0, 4.0])).numpy().tolist() == [3.0, 4.0]  # d/dx x*c = c


def test_jit_inside_grad_runs_eagerly_and_is_correct():
    jf = tg.jit(lambda x: tg.sum(tg.sin(x)))
    g = tg.grad(jf)(tg.tensor([0.0, 1.0]))
    np.testing.assert_allclose(g.numpy(), np.cos([0.0, 1.0]))
    assert jf.last_call == "eager"


def test_a_graph_is_readable():
    f = tg.jit(lambda x: tg.sum(tg.exp(x) * 2.0))
    text = str(f.graph(tg.ones(3)))
    assert "exp(" in text and "sum(" in text and "inputs: v0: float64[3]" in text
    assert f.cache_info() == (0, 0, 1)  # looking compiles, but is not a call
    f(tg.ones(3))
    assert f.cache_info() == (1, 0, 1)


# ---- What cannot be compiled ----
def test_python_control_flow_on_a_traced_value_is_refused():
    def f(x):
        if tg.sum(x) > 0:
            return x
        return -x

    with pytest.raises(TracingError, match="cannot branch on its inputs' values"):
        tg.jit(f)(tg.ones(2))
    with pytest.raises(TracingError, match="tg.where"):
        tg.jit(lambda x: float(tg.sum(x)))(tg.ones(2))
    with pytest.raises(TracingError):
        tg.jit(lambda x: x.numpy())(tg.ones(2))
    # the same inside a gradient
    with pytest.raises(TracingError):
        tg.jit(tg.grad(lambda x: tg.sum(x) if tg.sum(x).item() > 0 else -tg.sum(x)))(tg.ones(2))


def test_unhashable_and_unknown_leaves_are_refused():
    with pytest.raises(TracingError, match="neither a tensor nor hashable"):
        tg.jit(lambda x, opts: x)(tg.ones(2), {1, 2})  # a set: unhashable
    with pytest.raises(TracingError, match="returned a object"):
        tg.jit(lambda x: object())(tg.ones(2))


def test_a_failed_trace_leaves_no_entry():
    def f(x):
        return x if x.item() > 0 else -x

    jf = tg.jit(f)
    with pytest.raises(TracingError):
        jf(tg.ones(()))
    assert jf.cache_info().entries == 0
    # eager tfgrad is untouched afterwards
    assert tg.grad(lambda x: x * x)(tg.tensor(3.0)).item() == 6.0


def test_results_are_deterministic_run_to_run():
    f = tg.jit(tg.value_and_grad(lambda x: tg.sum(tg.tanh(x) * tg.exp(-x * x))))
    x = tg.tensor(np.random.default_rng(1).standard_normal(200_000).astype("float32"))
    first = [t.numpy() for t in f(x)]
    for _ in range(3):
        again = [t.numpy() for t in f(x)]
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def test_a_program_belongs_to_one_backend():
    jf = tg.jit(lambda x: tg.sum(tg.exp(x)))
    with tg.use_backend("taichi"):
        x = tg.ones(3)
        jf(x)
        jf(x)
    with tg.use_backend("numpy"):
        y = tg.ones(3)
        assert jf(y).item() == pytest.approx(3 * np.e)
        assert jf.last_call == "miss"
        assert jf.program(y).steps[0].implementation == "numpy"
    assert jf.cache_info() == (1, 2, 2)


def test_fused_kernels_survive_a_taichi_reinit_and_keep_their_bits():
    """A compiled program launches its kernels thinly; after Taichi is initialised again (here
    with one thread) they are compiled for the new runtime, with the same results."""
    from tfgrad.backends.taichi.backend import TaichiBackend

    with tg.use_backend("taichi", dispatch="taichi-only"):
        f = tg.jit(tg.value_and_grad(lambda x: tg.sum(tg.tanh(x) * tg.exp(-x * x))))
        x = tg.tensor(np.random.default_rng(2).standard_normal(300_001).astype("float32"))
        first = [t.numpy() for t in f(x)]
        TaichiBackend("cpu", cpu_max_num_threads=1)  # a new Taichi runtime
        again = [t.numpy() for t in f(x)]
        TaichiBackend("cpu")  # and back to the default one
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
        assert f.cache_info().hits == 1


def test_gradients_through_negative_indices_add_up():
    # [-1, 0] on a 1-element axis name the same element twice: both cotangents must land
    def f(x):
        return tg.sum(tg.take(x, tg.tensor([-1, 0]), axis=0) * tg.tensor([2.0, 3.0]))

    for setting in ("numpy", "taichi"):
        with tg.use_backend(setting):
            x = tg.tensor([1.5])
            assert tg.grad(f)(x).numpy().tolist() == [5.0]
            assert tg.jit(tg.grad(f))(x).numpy().tolist() == [5.0]


def test_a_group_with_more_arrays_than_a_kernel_takes_runs_op_by_op():
    # Taichi's own launch path (device buffers, as on a GPU) takes at most 64 arguments: 70
    # inputs summed elementwise run op by op there; the CPU's thin launcher takes them in one loop
    xs = np.arange(70.0)[:, None] * np.ones(3)

    def total(*xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    for buffers, fused in (("ndarray", False), ("numpy", True)):
        with tg.use_backend("taichi", dispatch="taichi-only", buffers=buffers):
            args = [tg.tensor(x) for x in xs]
            jf = tg.jit(total)
            assert jf(*args).numpy().tolist() == [sum(range(70))] * 3
            kinds = {s.implementation for s in jf.program(*args).steps}
            assert ("fused-taichi" in kinds) == fused, kinds
