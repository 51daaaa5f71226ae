"""Bad input gets a clear error: the right TfgradError subclass, and a message that names the
op, the shapes or dtypes involved, and the fix. A failed op never corrupts a tape or a tensor."""

from __future__ import annotations

import re

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.errors import (
    BackendError,
    DtypeError,
    GradcheckError,
    MissingRuleError,
    NumericalError,
    ShapeError,
    TapeError,
    TfgradError,
)
from tfgrad.primitive import Primitive, bind


def raises(kind: type, *fragments: str):
    """``pytest.raises(kind)`` that also checks each fragment appears in the message."""
    assert issubclass(kind, TfgradError)
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(kind, match=re.compile(pattern, re.DOTALL))


def test_every_error_is_a_tfgrad_error():
    for kind in (ShapeError, DtypeError, TapeError, BackendError, MissingRuleError,
                 NumericalError, GradcheckError):  # fmt: skip
        assert issubclass(kind, TfgradError)
    # each also derives from the builtin a user would reach for
    assert issubclass(ShapeError, ValueError) and issubclass(DtypeError, TypeError)
    assert issubclass(TapeError, RuntimeError) and issubclass(GradcheckError, AssertionError)


# ---- Shapes ----
@pytest.mark.parametrize(
    "op, name",
    [(lambda a, b: a + b, "add"), (lambda a, b: a - b, "sub"), (lambda a, b: a * b, "mul"),
     (lambda a, b: a / b, "div"), (lambda a, b: a**b, "pow"), (lambda a, b: a < b, "lt"),
     (lambda a, b: a == b, "eq"), (tg.maximum, "maximum")],
)  # fmt: skip
def test_binary_ops_that_do_not_broadcast(op, name):
    with raises(ShapeError, name, "(3,)", "(4,)", "broadcast"):
        op(tg.ones(3), tg.ones(4))
    with raises(ShapeError, name, "(2, 3)", "(2,)"):
        op(tg.ones((2, 3)), np.ones(2))


def test_where_that_does_not_broadcast():
    with raises(ShapeError, "where", "(2,)", "(3,)"):
        tg.where(tg.tensor([True, False]), tg.ones(3), 0.0)


def test_matmul_mismatch():
    with raises(ShapeError, "matmul", "(2, 3)", "(4, 5)"):
        tg.ones((2, 3)) @ tg.ones((4, 5))
    with raises(ShapeError, "matmul", "(3,)", "(2,)"):
        tg.matmul(tg.ones(3), tg.ones(2))
    with raises(ShapeError, "matmul", "(2, 2, 3)", "(3, 3, 1)"):
        tg.ones((2, 2, 3)) @ tg.ones((3, 3, 1))  # batch dimensions 2 and 3
    with raises(ShapeError, "matmul", "()", "multiply"):
        tg.matmul(tg.tensor(2.0), tg.ones(3))


def test_reshape_to_a_wrong_size():
    with raises(ShapeError, "reshape", "(2, 3)", "(4, 2)", "6", "8"):
        tg.reshape(tg.ones((2, 3)), (4, 2))
    with raises(ShapeError, "reshape", "(2, -1)", "5"):
        tg.ones(5).reshape(2, -1)


@pytest.mark.parametrize("reduce", ["sum", "max", "min", "mean", "prod"])
def test_axis_out_of_range(reduce):
    fn = getattr(tg, reduce)
    with raises(ShapeError, reduce, "axis 2", "2 dimensions", "[-2, 1]"):
        fn(tg.ones((2, 3)), axis=2)
    with raises(ShapeError, reduce, "axis -3"):
        fn(tg.ones((2, 3)), axis=-3)


def test_transpose_with_a_bad_permutation():
    with raises(ShapeError, "transpose", "(0, 0)", "(2, 3)", "permutation"):
        tg.transpose(tg.ones((2, 3)), (0, 0))
    with raises(ShapeError, "transpose", "(2, 3)"):
        tg.ones((2, 3)).transpose(1, 0, 2)


def test_concatenate_with_mismatched_shapes():
    with raises(ShapeError, "concatenate", "(2, 3)", "(2, 4)", "axis 0"):
        tg.concatenate([tg.ones((2, 3)), tg.ones((2, 4))])
    with raises(ShapeError, "concatenate", "(2, 3)", "(3,)"):
        tg.concatenate([tg.ones((2, 3)), tg.ones(3)], axis=1)
    with raises(ShapeError, "concatenate", "zero-dimensional"):
        tg.concatenate([tg.tensor(1.0), tg.tensor(2.0)])


def test_max_over_an_empty_axis():
    with raises(ShapeError, "max", "(0, 3)", "zero-size"):
        tg.max(tg.ones((0, 3)), axis=0)
    with raises(ShapeError, "max", "(2, 0)"):
        tg.ones((2, 0)).max()
    with raises(ShapeError, "min", "(2, 0)", "zero-size"):
        tg.min(tg.ones((2, 0)), axis=-1)
    assert tg.max(tg.ones((0, 3)), axis=1).shape == (0,)  # reducing a non-empty axis is fine


def test_index_out_of_range():
    with raises(ShapeError, "getitem", "index 3", "size 3", "(3,)"):
        tg.ones(3)[3]
    with raises(ShapeError, "getitem", "-4", "axis 1", "(2, 3)"):
        tg.ones((2, 3))[:, -4]
    with raises(ShapeError, "getitem", "size 3", "5"):
        tg.ones(3)[[0, 5]]
    with raises(ShapeError, "take", "size 3"):
        tg.take(tg.ones(3), [3])
    with raises(ShapeError, "scatter_add", "size 2"):
        tg.scatter_add(tg.ones(2), [-3], tg.ones(1))
    with raises(ShapeError, "getitem", "2 indices", "(2,)"):
        tg.ones(2)[0, 0]


def test_two_array_indices():
    with raises(ShapeError, "getitem", "one integer-array", "(2, 3)", "x[rows][:, cols]"):
        tg.ones((2, 3))[[0, 1], [0, 1]]


def test_boolean_mask_index():
    x = tg.tensor([1.0, 2.0, 3.0])
    for mask in (np.array([True, False, True]), x > 1.5, [True, False, True], True):
        with raises(ShapeError, "getitem", "boolean", "(3,)", "where"):
            x[mask]


def test_scatter_add_with_wrong_update_shape():
    with raises(ShapeError, "scatter_add", "(2,)", "(3,)", "(1,)"):
        tg.scatter_add(tg.ones(3), [0], tg.ones(2))


# ---- Dtypes ----
def test_unknown_dtype_name():
    for make in (lambda: tg.tensor([1.0], dtype="float8"), lambda: tg.zeros(3, "complex64"),
                 lambda: tg.ones(2).astype("float128")):  # fmt: skip
        with raises(DtypeError, "no dtype", "float32", "bfloat16"):
            make()
    with raises(DtypeError, "tfgrad.tensor", "list"):
        tg.tensor([[1.0, 2.0], [3.0]])  # ragged
    with raises(DtypeError, "no dtype"):
        tg.tensor(["a", "b"])


def test_gradient_with_respect_to_an_int_tensor():
    with tg.GradientTape() as tape:
        with raises(DtypeError, "watch", "int64", "(2,)", "astype"):
            tape.watch(tg.tensor([1, 2]))
        with raises(DtypeError, "watch", "bool"):
            tape.watch(tg.tensor(True))
    with raises(DtypeError, "grad", "int64", "(2,)", "float64"):
        tg.grad(lambda x: tg.sum(x * x))(tg.tensor([1, 2]))
    with raises(DtypeError, "jvp", "int32"):
        tg.jvp(tg.sin, (tg.tensor([1, 2], dtype="int32"),), (tg.ones(2),))
    with raises(DtypeError, "vjp", "int64"):
        tg.vjp(tg.sin, tg.tensor(3))


# ---- Tapes ----
def test_grad_of_a_non_scalar_output():
    with raises(ShapeError, "grad", "(2,)", "jacobian"):
        tg.grad(lambda x: x * x)(tg.tensor([1.0, 2.0]))


def test_second_gradient_on_a_non_persistent_tape():
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(2.0))
        y = x * x
    assert tape.gradient(y, x).item() == 4.0
    with raises(TapeError, "already used", "persistent=True"):
        tape.gradient(y, x)


def test_gradient_with_respect_to_an_unwatched_tensor():
    z = tg.tensor([3.0, 4.0])
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(2.0))
        y = tg.sum(x * z)
    with raises(TapeError, "source 0", "(2,)", "not tracked", "x = tape.watch(x)"):
        tape.gradient(y, z)
    with tg.GradientTape() as other:
        w = other.watch(tg.tensor(1.0))
    with raises(TapeError, "source 1", "watch"):
        tape.gradient(y, [x, w])  # watched, but by another tape


def test_watch_outside_the_with_block():
    tape = tg.GradientTape()
    with raises(TapeError, "not recording", "watch", "with"):
        tape.watch(tg.tensor(1.0))
    with tape:
        x = tape.watch(tg.tensor(1.0))
        with tape.stop_recording():
            with raises(TapeError, "not recording", "stop_recording"):
                tape.watch(tg.tensor(2.0))
    with raises(TapeError, "not recording"):
        tape.watch(x)
    with raises(TapeError, "already entered", "new GradientTape"):
        with tape:
            pass


def test_output_gradients_with_a_wrong_shape():
    with tg.GradientTape(persistent=True) as tape:
        x = tape.watch(tg.tensor([2.0, 3.0]))
        y = x * x
    with raises(ShapeError, "output_gradients[0]", "(3,)", "(2,)"):
        tape.gradient(y, x, output_gradients=tg.ones(3))
    with raises(ShapeError, "output_gradients", "2", "1", "one per target"):
        tape.gradient(y, x, output_gradients=[tg.ones(2), tg.ones(2)])
    _, vjp_fn = tg.vjp(lambda v: v * v, tg.tensor([2.0, 3.0]))
    with raises(ShapeError, "(1, 2)", "(2,)"):
        vjp_fn(tg.ones((1, 2)))


def test_jvp_tangent_shape_mismatch():
    with raises(ShapeError, "jvp", "tangent 0", "(3,)", "(2,)"):
        tg.jvp(tg.sin, (tg.tensor([1.0, 2.0]),), (tg.tensor([1.0, 2.0, 3.0]),))
    with raises(ShapeError, "jvp", "2 primals", "1 tangents"):
        tg.jvp(tg.add, (tg.ones(2), tg.ones(2)), (tg.ones(2),))
    with raises(ShapeError, "jvp", "tuples"):
        tg.jvp(tg.sin, tg.ones(2), tg.ones(2))


# ---- Backends ----
def test_unknown_backend_name():
    before = tg.current_backend()
    with raises(BackendError, "'jax'", "numpy", "taichi", "tfgrad.init(backend="):
        tg.init(backend="jax")
    assert tg.current_backend() is before  # a failed init changes nothing
    with raises(BackendError, "'jax'"):
        with tg.use_backend("jax"):
            pass
    assert tg.current_backend() is before
    with raises(BackendError, "numpy", "CPU only", "arch='gpu'"):
        tg.init(backend="numpy", arch="gpu")
    assert tg.current_backend() is before


# ---- Missing rules ----
def _square_without_rules() -> Primitive:
    prim = Primitive("myop")
    prim.def_impl(lambda x: tg.tensor(x.numpy() ** 2))
    return prim


def test_a_primitive_without_rules_runs_but_cannot_be_differentiated(backend):
    myop = _square_without_rules()
    x = tg.tensor([1.0, 2.0])
    np.testing.assert_array_equal(bind(myop, x).numpy(), [1.0, 4.0])  # the forward still runs

    def f(v):
        return tg.sum(bind(myop, v) * 2.0)

    with raises(MissingRuleError, "'myop'", "VJP", "reverse mode", "myop_p.defvjp"):
        tg.grad(f)(x)
    with raises(MissingRuleError, "'myop'", "JVP", "forward mode", "myop_p.defjvp"):
        tg.jvp(f, (x,), (tg.ones(2),))
    with raises(MissingRuleError, "'myop'", "defvjp"):
        tg.hessian(f)(x)  # the gradient is recorded first, so the missing VJP is met first
    # differentiating with respect to something else does not need the rule
    g = tg.grad(lambda v, w: tg.sum(bind(myop, v) * w), argnums=1)(x, tg.ones(2))
    np.testing.assert_array_equal(g.numpy(), [1.0, 4.0])


# ---- Numerics ----
def test_check_numerics_names_the_op(backend):
    assert np.isnan(tg.log(tg.tensor(-1.0)).item())  # IEEE semantics by default
    assert np.isneginf(tg.log(tg.tensor(0.0)).item())
    with tg.check_numerics():
        with raises(NumericalError, "log", "(2,)", "NaN/inf", "domain"):
            tg.log(tg.tensor([-1.0, 2.0]))
        with raises(NumericalError, "sqrt", "(1,)"):
            tg.sqrt(tg.tensor([-4.0]))
        with raises(NumericalError, "div"):
            tg.tensor([1.0]) / tg.tensor([0.0])
        # NaN that is already there propagates quietly: only new NaN/inf is reported
        out = tg.log(tg.tensor([np.nan, 1.0]))
        assert np.isnan(out.numpy()[0]) and out.numpy()[1] == 0.0
        assert np.isnan((tg.tensor(np.nan) * 2.0).item())
        assert tg.sqrt(tg.tensor(4.0)).item() == 2.0  # finite results are fine
    assert np.isnan(tg.log(tg.tensor(-1.0)).item())  # switched off again on exit


def test_check_numerics_inside_a_derivative(backend):
    with tg.check_numerics():
        with raises(NumericalError, "log"):
            tg.grad(lambda x: tg.sum(tg.log(x)))(tg.tensor([1.0, -1.0]))


def test_gradcheck_on_inputs_holding_nan(backend):
    with raises(NumericalError, "gradcheck", "argument 0", "(2,)", "NaN or inf"):
        tg.gradcheck(tg.sin, (tg.tensor([np.nan, 1.0]),))
    with raises(NumericalError, "argument 1", "NaN or inf"):
        tg.gradcheck(tg.add, (tg.ones(2), tg.tensor([1.0, np.inf])))


def _square_with(vjp_factor: float, jvp_factor: float) -> Primitive:
    prim = Primitive("badsquare")
    prim.def_impl(lambda x: tg.tensor(x.numpy() ** 2))
    prim.defvjp(lambda g, ans, x: g * vjp_factor * x)
    prim.defjvp(lambda t, ans, x: t * jvp_factor * x)
    return prim


def test_gradcheck_catches_a_wrong_vjp(backend):
    wrong_vjp = _square_with(vjp_factor=3.0, jvp_factor=2.0)
    x = (tg.tensor([1.0, -2.0, 0.5]),)
    assert tg.gradcheck(lambda v: bind(wrong_vjp, v), x, order=1, modes=("fwd",))
    with raises(GradcheckError, "reverse mode", "analytic", "numeric", "max abs difference"):
        tg.gradcheck(lambda v: bind(wrong_vjp, v), x, order=1)


def test_gradcheck_catches_a_wrong_jvp(backend):
    wrong_jvp = _square_with(vjp_factor=2.0, jvp_factor=2.5)
    x = (tg.tensor([1.0, -2.0, 0.5]),)
    assert tg.gradcheck(lambda v: bind(wrong_jvp, v), x, order=1, modes=("rev",))
    with raises(GradcheckError, "forward mode", "analytic", "numeric"):
        tg.gradcheck(lambda v: bind(wrong_jvp, v), x, order=1)
    right = _square_with(vjp_factor=2.0, jvp_factor=2.0)
    assert tg.gradcheck(lambda v: bind(right, v), x, order=1)


# ---- A failed op never corrupts a tape or a tensor ----
# Each gets y (float64, recorded), x32 (a watched float32 vector) and m (a watched matrix).
BAD_OPS = {
    "add": lambda y, x32, m: y + tg.ones(4),
    "add_promoting": lambda y, x32, m: x32 + tg.ones(4),  # must not cast x32 first
    "matmul": lambda y, x32, m: x32 @ tg.ones((4, 2)),  # must not cast or reshape first
    "matmul_batch": lambda y, x32, m: m @ tg.ones((4, 2, 1)),
    "conv2d": lambda y, x32, m: tg.conv2d(x32, tg.ones((1, 3, 2, 2))),  # must not cast first
    "conv2d_kernel": lambda y, x32, m: tg.conv2d(tg.ones((1, 1, 2, 2)), m),
    "concatenate": lambda y, x32, m: tg.concatenate([x32, tg.ones((1, 3))]),
    "where": lambda y, x32, m: tg.where(tg.tensor([True, False]), x32, tg.tensor(0.0)),
    "scatter_add": lambda y, x32, m: tg.scatter_add(x32, [0], tg.ones(2)),
    "reshape": lambda y, x32, m: y.reshape(2, 2),
    "transpose": lambda y, x32, m: m.transpose(0, 0),
    "sum": lambda y, x32, m: tg.sum(y, axis=1),
    "max": lambda y, x32, m: tg.max(m, axis=(1, -1)),  # a repeated axis
    "min": lambda y, x32, m: tg.min(m, axis=2),  # must not record -m first
    "getitem_array": lambda y, x32, m: m[1:, [0, 5]],  # must not slice first
    "getitem_int": lambda y, x32, m: y[5],
    "getitem_mask": lambda y, x32, m: y[y > 1.0],
    "grad_int": lambda y, x32, m: tg.grad(tg.sum)(tg.tensor([1, 2])),
}


def _snapshot(tape: tg.GradientTape) -> list:
    return [(r, r.op, r.inputs, r.output) for r in tape.records]


@pytest.mark.parametrize("bad", list(BAD_OPS))
def test_a_failed_op_leaves_the_tape_and_tensors_unchanged(backend, bad):
    x0 = tg.tensor([0.5, 1.0, 2.0])
    with tg.GradientTape() as tape:
        x = tape.watch(x0)
        x32 = tape.watch(tg.tensor([1.0, 2.0, 3.0], dtype="float32"))
        m = tape.watch(tg.ones((2, 3)))
        y = tg.sin(x) * x
        before = _snapshot(tape)
        leaves = list(tape.leaves)
        events = []
        tape.observe(events.append)
        with pytest.raises(TfgradError):
            BAD_OPS[bad](y, x32, m)
        assert _snapshot(tape) == before
        assert tape.leaves == leaves
        assert events == []  # observers saw nothing either
        z = tg.sum(y * y)
    assert [r.op for r in tape.records] == ["sin", "mul", "mul", "sum"]
    np.testing.assert_array_equal(x0.numpy(), [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(x32.numpy(), np.array([1.0, 2.0, 3.0], np.float32))
    g = tape.gradient(z, x)
    v = np.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(g.numpy(), 2 * v * np.sin(v) * (np.cos(v) * v + np.sin(v)))


def test_a_failed_gradient_call_leaves_the_tape_usable(backend):
    with tg.GradientTape(persistent=True) as tape:
        x = tape.watch(tg.tensor([2.0, 3.0]))
        y = x * x
    records = _snapshot(tape)
    with pytest.raises(ShapeError):
        tape.gradient(y, x, output_gradients=tg.ones(3))
    assert _snapshot(tape) == records
    assert all(r.adjoint is None for r in tape.records)  # no partial sweep was left behind
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [4.0, 6.0])
    g = tape.gradient(y, x, output_gradients=tg.tensor([1.0, -1.0]))
    np.testing.assert_array_equal(g.numpy(), [4.0, -6.0])


def test_a_failed_gradient_call_does_not_use_up_a_non_persistent_tape(backend):
    z = tg.tensor(1.0)
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(3.0))
        y = x * x * z
    with pytest.raises(ShapeError):
        tape.gradient(y, x, output_gradients=tg.ones(2))
    with pytest.raises(TapeError):
        tape.gradient(y, z)
    with pytest.raises(DtypeError):
        tape.gradient(tg.tensor([1, 2]), x)
    assert tape.gradient(y, x).item() == 6.0


def test_a_failed_forward_mode_call_leaves_nothing_behind(backend):
    x = tg.tensor([1.0, 2.0])
    with pytest.raises(ShapeError):
        tg.jvp(tg.sin, (x,), (tg.ones(3),))

    def bad(v):
        return tg.sin(v) + tg.ones(3)

    with pytest.raises(ShapeError, match="add"):
        tg.jvp(bad, (x,), (tg.ones(2),))
    # no forward trace is left active: plain ops give plain tensors again
    out = tg.sin(x) * 2.0
    assert type(out) is tg.Tensor
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])
    value, tangent = tg.jvp(lambda v: tg.sin(v) * v, (x,), (tg.tensor([1.0, 0.0]),))
    v = np.array([1.0, 2.0])
    np.testing.assert_allclose(value.numpy(), np.sin(v) * v)
    np.testing.assert_allclose(tangent.numpy(), [np.cos(1.0) + np.sin(1.0), 0.0])
    # and a failed jvp inside a tape leaves that tape as it was
    with tg.GradientTape() as tape:
        w = tape.watch(x)
        y = tg.sum(w * w)
        before = _snapshot(tape)
        for fails in (lambda v: v + tg.ones(3), lambda v: v @ tg.ones((3, 1))):
            with pytest.raises(ShapeError):
                tg.jvp(fails, (w,), (tg.ones(2),))
        with pytest.raises(ShapeError):
            tg.jvp(tg.sin, (w,), (tg.ones(3),))
        assert _snapshot(tape) == before
    np.testing.assert_array_equal(tape.gradient(y, w).numpy(), [2.0, 4.0])


def test_init_on_a_gpu_that_is_not_there():
    # The user-facing path: tfgrad.init(arch="gpu") says clearly when Taichi finds no GPU.
    from tfgrad.backends.taichi.backend import TaichiBackend  # noqa: F401  (imports Taichi)

    before = tg.current_backend()
    try:
        backend = tg.init(backend="taichi", arch="gpu")
    except BackendError as err:
        assert "no GPU" in str(err) or "No GPU" in str(err)
        assert "arch='cpu'" in str(err)
        assert tg.current_backend() is before  # nothing changed
    else:  # on a machine with a GPU the same call must give a GPU backend
        assert backend.device in ("cuda", "vulkan", "metal")
        tg.init(before.name)
