"""A primitive defined through the public extension API alone (tfgrad.extend): its facts, its
scalar math, its VJP and JVP rules. With no other edit anywhere, it runs on every backend with
the implementation the dispatch policy picks for its family, fuses under tg.jit, batches in
jacfwd/hessian through its own JVP rule, and passes gradcheck to second order."""

from __future__ import annotations

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.extend import ELEMENTWISE, Primitive, bind

# softsign(x) = x / (1 + |x|); d/dx = 1 / (1 + |x|)^2
softsign_p = Primitive("softsign", 1, family=ELEMENTWISE)


@softsign_p.def_scalar
def softsign_scalar(x):
    return x / (1 + abs(x))


def softsign_slope(x):
    shifted = 1.0 + tg.abs(x)
    return 1.0 / (shifted * shifted)


softsign_p.defvjp(lambda g, ans, x: g * softsign_slope(x))
softsign_p.defjvp(lambda t, ans, x: t * softsign_slope(x))


def softsign(x):
    return bind(softsign_p, x)


def reference(x: np.ndarray) -> np.ndarray:
    return x / (1 + np.abs(x))


X = np.array([-2.0, -0.5, 0.25, 1.5, 3.0])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_it_runs_where_the_dispatch_policy_sends_it(backend, dtype):
    x = tg.tensor(X, dtype=dtype)
    with tg.GradientTape() as tape:
        y = softsign(tape.watch(x))
    np.testing.assert_allclose(y.numpy(), reference(X.astype(dtype)), rtol=1e-6)
    assert y.dtype.name == dtype
    (record,) = tape.records
    assert record.op == "softsign"
    auto_on_cpu = (
        backend.name == "taichi" and backend.dispatch == "auto" and not (backend.device_buffers)
    )
    if backend.name == "numpy" or auto_on_cpu:  # a tiny array: NumPy's loop, not a launch
        assert record.implementation == "numpy"
    else:
        assert record.implementation == "taichi"
    if auto_on_cpu:
        # A large array leaves NumPy at the threshold calibrated for the elementwise family.
        from tfgrad.backends.taichi.dispatch import THRESHOLDS

        big = THRESHOLDS["elementwise"][np.dtype(dtype)]
        buffers = (np.broadcast_to(np.zeros((), dtype), (big,)),)  # size and dtype, no memory
        assert backend.policy.choose(softsign_p.op, buffers, {}) == "taichi"


def test_it_fuses_under_jit():
    def f(x):
        return tg.sum(softsign(x) * x + 1.0)

    with tg.use_backend("taichi", dispatch="taichi-only"):
        x = tg.tensor(X)
        jitted = tg.jit(tg.value_and_grad(f))
        value, grad = jitted(x)
        want_value, want_grad = tg.value_and_grad(f)(x)
        np.testing.assert_allclose(value.numpy(), want_value.numpy(), rtol=1e-14)
        np.testing.assert_allclose(grad.numpy(), want_grad.numpy(), rtol=1e-14)
        program = jitted.program(x)
        fused = [s for s in program.steps if s.implementation == "fused-taichi"]
        assert any("softsign" in [e.prim.name for e in s.eqns] for s in fused), program.summary()
        assert any("softsign_scalar(" in source for source in jitted.kernel_sources(x))


def test_it_batches_through_its_jvp_rule(backend, monkeypatch):
    shapes, rule = [], softsign_p.jvps[0]

    def spy(t, ans, x):
        shapes.append(t.shape)
        return rule(t, ans, x)

    monkeypatch.setattr(softsign_p, "jvps", (spy,))

    def f(x):
        return tg.sum(softsign(x) * x)

    x = tg.tensor(X)
    hessian = tg.hessian(f)(x).numpy()
    # One push of all 5 basis tangents at once: the rule saw them as one (5, 5) batch.
    assert (5, 5) in shapes and (5,) not in shapes
    s = 1 + np.abs(X)
    # f = sum(x^2 / (1 + |x|)); f'' = 2 / (1 + |x|)^3 on the diagonal (x != 0)
    np.testing.assert_allclose(hessian, np.diag(2 / s**3), rtol=1e-12, atol=1e-14)
    shapes.clear()
    jacobian = tg.jacfwd(softsign)(x).numpy()
    assert shapes == [(5, 5)]
    np.testing.assert_allclose(jacobian, np.diag(1 / s**2), rtol=1e-12)


def test_it_passes_gradcheck_to_second_order(backend):
    assert tg.gradcheck(lambda x: tg.sum(softsign(x) * tg.sin(x)), (tg.tensor(X),), order=2)
    assert tg.gradcheck(lambda x: softsign(x * x), (tg.tensor(X[:3]),), order=2)


def test_a_primitive_declared_by_name_only_runs_the_kernel_of_that_name(backend):
    # As before families existed: Primitive("exp") with no family runs the backends' exp.
    exp_again_p = Primitive("exp")
    exp_again_p.defvjp(lambda g, ans, x: g * ans)
    x = tg.tensor(X)
    np.testing.assert_allclose(bind(exp_again_p, x).numpy(), np.exp(X), rtol=1e-15)
    grad = tg.grad(lambda x: tg.sum(bind(exp_again_p, x)))(x)
    np.testing.assert_allclose(grad.numpy(), np.exp(X), rtol=1e-15)
    nameless_p = Primitive("no_such_kernel", 1)
    with pytest.raises(tg.errors.MissingKernelError, match="no_such_kernel.*def_impl"):
        bind(nameless_p, x)
