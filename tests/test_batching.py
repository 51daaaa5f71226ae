"""Batched forward mode over a recorded tape: ``push_tangents(..., batch=B)`` gives, for every
recorded value, exactly the tangents of B separate pushes, stacked on a leading axis; jacfwd and
hessian (which use it) give the same matrices as with one push per column."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from known_functions import rosenbrock
from op_table import OPS, OpCase

import tfgrad as tg
from tfgrad.errors import ShapeError
from tfgrad.extend import ELEMENTWISE, OpInfo, Primitive, bind

B = 3


def assert_batched_equals_separate(tape, tangents: dict, batch: int) -> dict:
    """Push ``tangents`` (each with a leading batch axis) at once and one slice at a time;
    every recorded value must get the same tangent, of shape exactly (batch, *shape)."""
    together = tape.push_tangents({v: tg.tensor(t) for v, t in tangents.items()}, batch=batch)
    separate = [tape.push_tangents({v: tg.tensor(t[b]) for v, t in tangents.items()})
                for b in range(batch)]  # fmt: skip
    for b in range(batch):
        assert set(separate[b]) == set(together)
    shapes = {leaf.variable: leaf.shape for leaf in tape.leaves}
    shapes.update((r.output, r.shape) for r in tape.records)
    for v, t in together.items():
        assert t.shape == (batch,) + shapes[v], (v, t.shape, shapes[v])
        want = np.stack([s[v].numpy() for s in separate]) if batch else t.numpy()
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-13, atol=1e-14)
    return together


@pytest.mark.parametrize("case", OPS, ids=lambda c: c.name)
@given(data=st.data())
@settings(max_examples=6)
def test_batched_push_equals_separate_pushes(backend, case: OpCase, data):
    shapes, params = case.draw(data, 0)  # 0: empty shapes too
    seed = data.draw(st.integers(0, 2**16))
    arrays = case.inputs(shapes, seed)
    # Tangents for a random non-empty subset of the inputs (the others are constants).
    seeded = data.draw(st.sets(st.integers(0, len(arrays) - 1), min_size=1))
    with tg.GradientTape() as tape:
        args = [tape.watch(tg.tensor(a)) if i in seeded else tg.tensor(a)
                for i, a in enumerate(arrays)]  # fmt: skip
        case.fn(*args, **params)
    rng = np.random.default_rng(seed + 1)
    tangents = {args[i].variable: rng.normal(size=(B,) + arrays[i].shape) for i in seeded}
    assert_batched_equals_separate(tape, tangents, B)


def _record(f, *xs, watch=(0,)):
    with tg.GradientTape() as tape:
        args = [tape.watch(tg.tensor(x)) if i in watch else tg.tensor(x) for i, x in enumerate(xs)]
        out = f(*args)
    return tape, args, out


@pytest.mark.parametrize("op", [tg.add, tg.multiply, tg.maximum, tg.divide, tg.power,
                                lambda x, y: tg.where(y > 0.5, x, y)])  # fmt: skip
def test_a_zero_d_tangent_never_pairs_its_batch_axis_with_a_primal_axis(backend, op):
    # x is 0-d, so its tangent is (B,); y has shape (B,) too. Broadcasting (B,) against (B,)
    # would silently pair the batch axis with y's axis.
    x, y = np.array(0.7), np.array([0.6, 1.1, 1.4])
    tape, args, out = _record(op, x, y)
    assert out.shape == (3,)
    got = assert_batched_equals_separate(tape, {args[0].variable: np.array([1.0, 2.0, 3.0])}, 3)
    assert got[out.variable].shape == (3, 3)


def test_broadcasting_against_a_wider_constant(backend):
    x, c = np.array([0.5, 1.5, 2.5]), np.arange(6.0).reshape(2, 1, 3) + 1.0
    for batch in (1, 2, 3):
        rng = np.random.default_rng(batch)
        tape, args, out = _record(lambda x, c: tg.sum(tg.sin(x) * c / x, axis=1), x, c)
        got = assert_batched_equals_separate(
            tape, {args[0].variable: rng.normal(size=(batch, 3))}, batch
        )
        assert got[out.variable].shape == (batch, 2, 3)


def test_broadcasting_both_inputs_tracked(backend):
    x, y = np.array([[0.5], [1.5]]), np.array([0.2, 0.3, 0.4])
    rng = np.random.default_rng(0)
    tape, args, out = _record(lambda x, y: tg.exp(x * y) - y, x, y, watch=(0, 1))
    tangents = {args[0].variable: rng.normal(size=(B, 2, 1)),
                args[1].variable: rng.normal(size=(B, 3))}  # fmt: skip
    got = assert_batched_equals_separate(tape, tangents, B)
    assert got[out.variable].shape == (B, 2, 3)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (0, 3)])
def test_empty_shapes(backend, shape):
    x = np.ones(shape)
    tape, args, out = _record(lambda x: tg.sum(tg.exp(x) * x, axis=-1) + 1.0, x)
    got = assert_batched_equals_separate(tape, {args[0].variable: np.ones((B,) + shape)}, B)
    assert got[out.variable].shape == (B,) + out.shape


def test_a_batch_of_zero_and_a_wrongly_shaped_tangent(backend):
    tape, args, out = _record(lambda x: tg.sum(tg.sin(x)), np.array([1.0, 2.0]))
    got = tape.push_tangents({args[0].variable: tg.zeros((0, 2))}, batch=0)
    assert got[out.variable].shape == (0,)
    with pytest.raises(ShapeError, match=r"must be \(3, 2\)"):
        tape.push_tangents({args[0].variable: tg.zeros((2,))}, batch=3)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0, 3.0, 0.5, -1.0])
def test_power_with_a_constant_exponent(backend, exponent):
    # The batched power rule decides the general formula's tests for a concrete 0-d exponent.
    x = np.array([0.0, 0.5, -1.5, 2.0, np.nan])
    for watch in ((0,), (0, 1)):
        tape, args, out = _record(tg.power, x, np.array(exponent), watch=watch)
        rng = np.random.default_rng(len(watch))
        tangents = {args[i].variable: rng.normal(size=(B,) + np.shape(a))
                    for i, a in zip(watch, (x, exponent))}  # fmt: skip
        got = assert_batched_equals_separate(tape, tangents, B)
        assert got[out.variable].shape == (B, 5)


@pytest.mark.parametrize("indices", [[0, 1, 2], [2, 3], [1, 2, 3], [0, 1, 2, 3], [3], [2, 1],
                                     [0, 2], [1, 1]])  # fmt: skip
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_add_of_consecutive_and_other_indices(backend, indices, axis):
    # Consecutive indices (a slice's derivative) are placed by a concatenation instead of a
    # scatter: same values, down to the sign of zero (a scatter adds into +0.0).
    shape = (4, 4)
    updates_shape = (len(indices), 4) if axis == 0 else (4, len(indices))
    rng = np.random.default_rng(len(indices))
    x, u = rng.normal(size=shape), rng.normal(size=updates_shape)
    for watch in ((1,), (0, 1)):
        tape, args, out = _record(lambda x, u: tg.scatter_add(x, indices, u, axis), x, u,
                                  watch=watch)  # fmt: skip
        tangents = {args[i].variable: rng.normal(size=(B,) + (x, u)[i].shape) for i in watch}
        tangents[args[1].variable][0] = -0.0  # a tangent of negative zeros
        got = assert_batched_equals_separate(tape, tangents, B)[out.variable].numpy()
        for b in range(B):
            one = tape.push_tangents({v: tg.tensor(t[b]) for v, t in tangents.items()})
            want = one[out.variable].numpy()
            np.testing.assert_array_equal(got[b], want)
            np.testing.assert_array_equal(np.signbit(got[b]), np.signbit(want))


@pytest.mark.parametrize("condition", [True, False, [True, False, True]])
def test_where_with_a_constant_condition(backend, condition):
    # A 0-d condition picks one branch for every element; the tangents stay those of the
    # rule, zeros (and their signs) included.
    x, y = np.array([0.5, -1.0, 2.0]), np.array(0.25)
    for watch in ((1,), (2,), (1, 2)):
        tape, args, out = _record(lambda c, x, y: tg.where(c, x, y), np.array(condition), x, y,
                                  watch=watch)  # fmt: skip
        rng = np.random.default_rng(len(watch))
        tangents = {args[i].variable: rng.normal(size=(B,) + (None, x, y)[i].shape)
                    for i in watch}  # fmt: skip
        for t in tangents.values():
            t[0] = -0.0
        got = assert_batched_equals_separate(tape, tangents, B)[out.variable].numpy()
        for b in range(B):
            one = tape.push_tangents({v: tg.tensor(t[b]) for v, t in tangents.items()})
            np.testing.assert_array_equal(np.signbit(got[b]), np.signbit(one[out.variable].numpy()))


def test_recurrence_with_coefficients_repeated_over_leading_axes(backend):
    # The primitive takes a of b's trailing axes (what cumprod's batched rules pass); its rules
    # keep a batch axis of a's tangent apart from b's leading axes, and the tape sums a's
    # cotangent over them.
    from tfgrad.ops.reduce import linear_recurrence_p

    def f(a, b):
        return bind(linear_recurrence_p, a, b, axis=2, reverse=True) * b

    a, b = np.array([[0.5, -1.5, 2.0], [1.0, 0.5, -0.5]]), np.arange(12.0).reshape(2, 2, 3) - 5
    for watch in ((0,), (1,), (0, 1)):
        tape, args, out = _record(f, a, b, watch=watch)
        rng = np.random.default_rng(len(watch))
        tangents = {args[i].variable: rng.normal(size=(B,) + (a, b)[i].shape) for i in watch}
        assert_batched_equals_separate(tape, tangents, B)
    assert tg.gradcheck(f, [tg.tensor(a), tg.tensor(b)], order=2)


def test_keep_returns_only_the_kept_tangents(backend):
    def f(x):
        y = tg.sin(x)
        return tg.sum(y * x), y

    tape, args, (out, y) = _record(f, np.array([0.5, 1.0, 2.0]))
    tangents = {args[0].variable: tg.tensor(np.eye(3))}
    full = tape.push_tangents(tangents, batch=3)
    for keep in ([out.variable], [out.variable, y.variable], [y.variable, args[0].variable]):
        kept = tape.push_tangents(tangents, batch=3, keep=keep)
        assert set(kept) == set(keep)
        for v in keep:
            np.testing.assert_array_equal(kept[v].numpy(), full[v].numpy())
        one = tape.push_tangents({args[0].variable: tg.tensor([1.0, 0.0, 0.0])}, keep=keep)
        assert set(one) == set(keep)
        np.testing.assert_array_equal(one[keep[0]].numpy(), full[keep[0]].numpy()[0])


def test_a_push_with_keep_skips_the_records_on_no_path_to_it(backend, monkeypatch):
    # exp(x) and the sum read only by the second output: their tangents are never needed.
    import tfgrad.replay as replay

    def f(x):
        y = tg.sin(x) * 2.0
        return y, tg.sum(tg.exp(x))

    tape, args, (y, s) = _record(f, np.array([0.5, 1.0, 2.0]))
    tangents = {args[0].variable: tg.tensor(np.eye(3))}
    ran, rule = [], replay.batched_jvp
    monkeypatch.setattr(
        replay, "batched_jvp", lambda prim, *a: ran.append(prim.name) or rule(prim, *a)
    )
    kept = tape.push_tangents(tangents, batch=3, keep=[y.variable])
    assert ran == ["sin", "mul"]
    np.testing.assert_allclose(kept[y.variable].numpy(), np.diag(2.0 * np.cos([0.5, 1.0, 2.0])))
    ran.clear()
    assert set(tape.push_tangents(tangents, batch=3)) >= {y.variable, s.variable}
    assert ran == ["sin", "mul", "exp", "sum"]


# ---- jacfwd and hessian ----
def mixed(x):
    # Every kind of batched rule: slices, take, scatter_add, reshape, transpose, matmul,
    # concatenate, reductions with axes, cumsum, max, prod, broadcasting against constants.
    m = tg.reshape(x, (2, 3))
    w = tg.tensor(np.arange(12.0).reshape(3, 4) / 10.0)
    h = tg.tanh(m @ w)  # (2, 4)
    s = tg.softmax(h, axis=1) * tg.cumsum(h, axis=0)
    p = tg.prod(tg.transpose(m) + 2.0, axis=0)  # (2,)
    c = tg.concatenate([tg.max(h, axis=1), p, x[::2], tg.take(x, [1, 1, 4])])
    d = tg.scatter_add(tg.zeros(6), [0, 2, 2], x[:3] ** 2)
    out = tg.sum(c * c) + tg.sum(tg.broadcast_to(d, (2, 6)) * tg.log1p(x * x)) + tg.var(h)
    return out + tg.sum(s * s)


def test_hessian_equals_one_push_per_column(backend):
    x = tg.tensor(np.linspace(-1.0, 1.2, 6))
    for f in (rosenbrock, mixed):
        old = tg.hessian(f, chunk_size=1)(x).numpy()
        for chunk_size in (None, 4, 6, 100):
            new = tg.hessian(f, chunk_size=chunk_size)(x).numpy()
            np.testing.assert_allclose(new, old, rtol=1e-13, atol=1e-13)
    xs = np.linspace(-1.0, 1.2, 6)
    want = np.zeros((6, 6))
    for i in range(5):
        want[i, i] += 1200 * xs[i] ** 2 - 400 * xs[i + 1] + 2
        want[i, i + 1] = want[i + 1, i] = -400 * xs[i]
        want[i + 1, i + 1] += 200
    np.testing.assert_allclose(tg.hessian(rosenbrock)(x).numpy(), want, rtol=1e-13)


def test_jacfwd_of_a_matrix_function_and_jacobian_fwd(backend):
    rng = np.random.default_rng(1)
    a = tg.tensor(rng.normal(size=(2, 3, 4)))

    def f(x):  # (3, 2) -> (2, 4, 2): batched matmuls with the tangent on either side
        y = tg.sin(x) @ tg.transpose(x) @ x  # (3, 2)
        left = tg.transpose(a, (0, 2, 1)) @ y  # (2, 4, 3) @ (3, 2)
        right = tg.transpose(tg.broadcast_to(x, (2, 3, 2)), (0, 2, 1)) @ a  # (2, 2, 4)
        return left * tg.transpose(right, (0, 2, 1))

    x = tg.tensor(rng.normal(size=(3, 2)))
    jr = tg.jacrev(f)(x).numpy()
    for jac in (tg.jacfwd(f), tg.jacfwd(f, chunk_size=2), tg.jacobian(f, mode="fwd")):
        np.testing.assert_allclose(jac(x).numpy(), jr, rtol=1e-12, atol=1e-13)
    assert jr.shape == (2, 4, 2, 3, 2)


def test_jacfwd_nested_and_under_reverse_mode(backend):
    f = lambda x: tg.sum(tg.sin(x) * x[::-1] ** 3)  # noqa: E731
    x = tg.tensor([0.3, -0.4, 0.9])
    h_rev = tg.jacrev(tg.grad(f))(x).numpy()
    # jacfwd over jacfwd: the outer batched push runs through the inner one's batched rules.
    h_fwd = tg.jacfwd(tg.jacfwd(f))(x).numpy()
    np.testing.assert_allclose(h_fwd, h_rev, rtol=1e-13, atol=1e-14)
    third_fwd = tg.jacfwd(tg.hessian(f))(x).numpy()
    third_rev = tg.jacrev(tg.jacrev(tg.grad(f)))(x).numpy()
    np.testing.assert_allclose(third_fwd, third_rev, rtol=1e-12, atol=1e-13)
    # reverse over the batched forward pass
    g = tg.grad(lambda y: tg.sum(tg.hessian(f)(y) ** 2))(x).numpy()
    g_old = tg.grad(lambda y: tg.sum(tg.hessian(f, chunk_size=1)(y) ** 2))(x).numpy()
    np.testing.assert_allclose(g, g_old, rtol=1e-13)


def test_jacfwd_edge_cases(backend):
    np.testing.assert_array_equal(tg.jacfwd(tg.sin)(tg.tensor(0.0)).numpy(), 1.0)
    assert tg.jacfwd(tg.sin)(tg.zeros((0, 2))).shape == (0, 2, 0, 2)
    const = tg.jacfwd(lambda x: tg.ones(2))(tg.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(const.numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(tg.jacfwd(lambda x: x)(tg.tensor([1.0, 2.0])).numpy(),
                                  np.eye(2))  # fmt: skip
    with pytest.raises(ValueError, match="chunk_size"):
        tg.jacfwd(tg.sin, chunk_size=0)


# ---- A custom primitive: no batched rule, so the per-element fallback ----
cube_p = Primitive("cube_for_batching")


@cube_p.def_impl
def _cube_impl(x):
    return tg.tensor(x.numpy() ** 3)


cube_p.defvjp(lambda g, ans, x: g * 3.0 * x * x)
cube_p.defjvp(lambda t, ans, x: t * 3.0 * x * x)

# Variadic, with a rule over all inputs at once and a zero tangent for the second input.
scaled_p = Primitive("scaled_for_batching")


@scaled_p.def_impl
def _scaled_impl(x, y):
    return tg.tensor(x.numpy() * 2.0 + np.floor(y.numpy()))


scaled_p.vjp_all = lambda g, ans, x, y: (g * 2.0, None)
scaled_p.jvp_all = lambda ts, ans, x, y: None if ts[0] is None else ts[0] * 2.0


def test_a_custom_primitive_falls_back_to_its_own_rules(backend):
    assert cube_p.batched_jvp is None and cube_p.family is None

    def f(x):
        return tg.sum(bind(scaled_p, bind(cube_p, x), x) * tg.sin(x))

    x = np.array([0.5, -1.0, 2.0])
    tape, args, out = _record(f, x)
    assert_batched_equals_separate(tape, {args[0].variable: np.eye(3)}, 3)
    tape, args, out = _record(lambda x, y: bind(scaled_p, x, y), x, x, watch=(1,))
    assert out.variable not in tape.push_tangents({args[1].variable: np.ones((2, 3))}, batch=2)
    h = tg.hessian(f)(tg.tensor(x)).numpy()
    np.testing.assert_allclose(h, tg.hessian(f, chunk_size=1)(tg.tensor(x)).numpy(), rtol=1e-14)
    # f = sum((2 x^3 + floor(x)) sin x), and floor is locally constant
    s, c = np.sin(x), np.cos(x)
    diag = 12 * x * s + 12 * x**2 * c - 2 * x**3 * s - np.floor(x) * s
    np.testing.assert_allclose(h, np.diag(diag), rtol=1e-12, atol=1e-12)


def test_a_custom_elementwise_primitive_can_join_the_batched_rules(backend, monkeypatch):
    monkeypatch.setattr(cube_p, "op", OpInfo(cube_p.name, 1, ELEMENTWISE))
    shapes, rule = [], cube_p.jvps[0]

    def spy(t, ans, x):
        shapes.append(t.shape)
        return rule(t, ans, x)

    monkeypatch.setattr(cube_p, "jvps", (spy,))
    tape, args, out = _record(lambda x, c: bind(cube_p, x) * c, np.array(0.5), np.ones(3))
    assert_batched_equals_separate(tape, {args[0].variable: np.array([1.0, -2.0])}, 2)
    # The rule ran once on the whole batch, then once for each of the two separate pushes.
    assert shapes == [(2,), (), ()]
