"""GradientTape semantics: what is recorded, how the sweep accumulates, persistence, nesting,
stopping gradients, long chains, determinism and the observer events widgets build on."""

from __future__ import annotations

import re
import weakref

import numpy as np
import pytest

import tfgrad as tg
from tfgrad.errors import NotSavedError, TapeError
from tfgrad.extend import Primitive, bind
from tfgrad.tape import NotSaved


def test_records_are_plain_data(backend):
    with tg.GradientTape(keep_values=True) as tape:  # every value, to read record.value
        x = tape.watch(tg.tensor([1.0, 2.0]))
        y = tg.sum(x * x + tg.sin(x))
    ops = [r.op for r in tape.records]
    assert ops == ["mul", "sin", "add", "sum"]
    mul = tape.records[0]
    assert mul.index == 0 and mul.inputs == (0, 0) and mul.shape == (2,)
    assert mul.input_shapes == ((2,), (2,)) and mul.dtype == "float64"
    # a 2-element float64 mul: NumPy under auto on a CPU (tiny), else a Taichi kernel
    # (taichi-only, or a GPU, where buffers live on the device)
    if backend.name == "numpy":
        expected = "numpy"
    elif backend.dispatch == "auto" and backend.device == "cpu":
        expected = "numpy"
    else:
        expected = "taichi"
    assert mul.implementation == expected
    assert tape.records[3].params == {"axes": (0,), "keepdims": False}
    np.testing.assert_allclose(tape.records[0].value, [1.0, 4.0])
    assert all(r.adjoint is None for r in tape.records)  # no sweep yet
    tape.gradient(y, x)
    np.testing.assert_allclose(tape.records[3].adjoint, 1.0)
    np.testing.assert_allclose(tape.records[0].adjoint, [1.0, 1.0])
    np.testing.assert_allclose(tape.leaves[0].adjoint, 2 * np.array([1.0, 2.0]) + np.cos([1, 2]))


def test_fan_out_accumulates(backend):
    # y = x*x + x uses x three times: dy/dx = 2x + 1
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(3.0))
        y = x * x + x
    assert tape.gradient(y, x).item() == 7.0


def test_broadcasting_is_summed_away(backend):
    with tg.GradientTape() as tape:
        a = tape.watch(tg.tensor([[1.0], [2.0]]))  # (2, 1)
        b = tape.watch(tg.tensor([10.0, 20.0, 30.0]))  # (3,)
        y = tg.sum(a * b)
    ga, gb = tape.gradient(y, [a, b])
    assert ga.shape == (2, 1) and gb.shape == (3,)
    np.testing.assert_allclose(ga.numpy(), [[60.0], [60.0]])
    np.testing.assert_allclose(gb.numpy(), [3.0, 3.0, 3.0])


def test_unconnected_source_gives_none_and_structure_is_kept(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(1.0))
        z = tape.watch(tg.tensor(2.0))
        y = x * 5.0
    grads = tape.gradient(y, {"x": x, "z": z})
    assert grads["z"] is None and grads["x"].item() == 5.0


def test_persistent_tape_allows_several_sweeps(backend):
    with tg.GradientTape(persistent=True) as tape:
        x = tape.watch(tg.tensor(2.0))
        y = x**3
        z = y * 2.0
    assert tape.gradient(y, x).item() == 12.0
    assert tape.gradient(z, x).item() == 24.0
    assert tape.gradient(z, y).item() == 2.0  # an intermediate as source


def test_non_persistent_tape_refuses_a_second_sweep(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(2.0))
        y = x * x
    tape.gradient(y, x)
    with pytest.raises(TapeError, match="persistent=True"):
        tape.gradient(y, x)


def test_output_gradients_give_a_vjp(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([1.0, 2.0, 3.0]))
        y = x * x
    g = tape.gradient(y, x, output_gradients=tg.tensor([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(g.numpy(), [2.0, 0.0, -6.0])


def test_nested_tapes_give_exact_second_and_third_derivatives(backend):
    with tg.GradientTape() as t3:
        x3 = t3.watch(tg.tensor(0.7))
        with tg.GradientTape() as t2:
            x2 = t2.watch(x3)
            with tg.GradientTape() as t1:
                x1 = t1.watch(x2)
                y = tg.sin(x1) * x1
            dy = t1.gradient(y, x1)
        d2y = t2.gradient(dy, x2)
    d3y = t3.gradient(d2y, x3)
    v = 0.7
    assert dy.item() == pytest.approx(np.cos(v) * v + np.sin(v), rel=1e-14)
    assert d2y.item() == pytest.approx(-np.sin(v) * v + 2 * np.cos(v), rel=1e-14)
    assert d3y.item() == pytest.approx(-np.cos(v) * v - 3 * np.sin(v), rel=1e-14)


def test_watch_returns_the_tensor_to_use(backend):
    # The TensorFlow habit (calling watch for its side effect) gets an error that says why.
    x = tg.tensor(1.0)
    with tg.GradientTape() as tape:
        tape.watch(x)
        y = x * x
    with pytest.raises(TapeError, match="x = tape.watch"):
        tape.gradient(y, x)


def test_outer_tape_records_the_inner_sweep(backend):
    with tg.GradientTape() as outer:
        x = outer.watch(tg.tensor(2.0))
        with tg.GradientTape() as inner:
            x_in = inner.watch(x)
            y = x_in * x_in * x_in
        n_before = len(outer.records)
        inner.gradient(y, x_in)
        swept = outer.records[n_before:]
    assert swept, "the inner sweep's ops must appear on the outer tape"
    assert {r.op for r in swept} >= {"mul"}


def test_stop_gradient_and_stop_recording(backend):
    with tg.GradientTape(persistent=True) as tape:
        x = tape.watch(tg.tensor(3.0))
        y = x * tg.stop_gradient(x)  # d/dx = stop_gradient(x) = 3
        with tape.stop_recording():
            z = x * x  # not recorded: a constant
        n = len(tape.records)
        w = y + z
    assert tape.gradient(y, x).item() == 3.0
    assert tape.gradient(w, x).item() == 3.0
    assert [r.op for r in tape.records[:n]] == ["mul"]


def test_stop_gradient_in_every_mode(backend):
    f = lambda x: tg.sum(x * tg.stop_gradient(x))  # noqa: E731
    x = tg.tensor([1.0, 2.0])
    np.testing.assert_allclose(tg.grad(f)(x).numpy(), [1.0, 2.0])
    np.testing.assert_allclose(tg.jvp(f, (x,), (tg.ones(2),))[1].item(), 3.0)


def test_a_100000_op_chain_sweeps_iteratively():
    with tg.use_backend("numpy"):
        with tg.GradientTape() as tape:
            x = tape.watch(tg.tensor(1.0))
            y = x
            for _ in range(100_000):
                y = y * 1.0
        assert len(tape.records) == 100_000
        assert tape.gradient(y, x).item() == 1.0


def test_sweep_order_is_deterministic(backend):
    def sweep_order():
        order = []
        with tg.GradientTape() as tape:
            x = tape.watch(tg.tensor([0.5, 1.5]))
            a, b = tg.sin(x), tg.cos(x)
            y = tg.sum(a * b + a + b * x)
        tape.observe(lambda e: order.append((e.kind, e.record.index if e.record else None)))
        g = tape.gradient(y, x)
        return order, g.numpy().tobytes()

    first = sweep_order()
    assert all(sweep_order() == first for _ in range(3))
    indices = [i for kind, i in first[0] if kind == "adjoint" and i is not None]
    assert indices == sorted(indices, reverse=True)


def test_observer_sees_recording_and_sweep(backend):
    events = []
    tape = tg.GradientTape()
    stop = tape.observe(events.append)
    with tape:
        x = tape.watch(tg.tensor(2.0))
        y = x * x + 1.0
    tape.gradient(y, x)
    kinds = [e.kind for e in events]
    assert kinds == [
        "watch", "record", "record", "sweep_start",
        "adjoint", "accumulate",  # add: its cotangent reaches x*x
        "adjoint", "accumulate", "accumulate",  # mul: x used twice, fan-out adds up
        "adjoint", "sweep_end",
    ]  # fmt: skip
    assert events[1].record is tape.records[0]
    first, second = events[7], events[8]
    assert first.variable == second.variable == 0 and (first.slot, second.slot) == (0, 1)
    assert first.total.item() == 2.0 and second.total.item() == 4.0  # running sum: 2 + 2
    assert events[-2].leaf is tape.leaves[0] and events[-2].leaf.adjoint == 4.0
    stop()
    with tg.GradientTape() as tape2:
        tape2.watch(tg.tensor(1.0))
    assert len(events) == 11  # the other tape is not observed; stop() also detached this one


def test_push_tangents_is_forward_mode_on_the_recorded_tape(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([0.5, 1.0]))
        w = tape.watch(tg.tensor(3.0))
        y = tg.sum(tg.sin(x) * w)
    tangents = tape.push_tangents({x.variable: tg.tensor([1.0, 0.0])})
    assert w.variable not in tangents
    expected = np.cos(0.5) * 3.0  # dy/dx0
    assert tangents[y.variable].item() == pytest.approx(expected, rel=1e-14)
    _, t = tg.jvp(lambda x: tg.sum(tg.sin(x) * 3.0), (tg.tensor([0.5, 1.0]),),
                  (tg.tensor([1.0, 0.0]),))  # fmt: skip
    assert t.item() == pytest.approx(expected, rel=1e-14)


def test_name_scope_labels_records(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(1.0))
        with tg.name_scope("net"):
            with tg.name_scope("layer1"):
                h = tg.tanh(x)
            y = h * 2.0
        z = y + 1.0
    assert [r.scope for r in tape.records] == ["net/layer1", "net", ""]
    assert z.item() == pytest.approx(np.tanh(1.0) * 2 + 1)


def test_tracked_values_escape_as_constants(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor(2.0))
        y = x * x
    z = y * 3.0  # after the block: not recorded
    assert len(tape.records) == 1
    assert z.item() == 12.0
    assert "TrackedTensor" in repr(x)


def test_watch_requires_an_active_tape(backend):
    tape = tg.GradientTape()
    with pytest.raises(TapeError, match="with"):
        tape.watch(tg.tensor(1.0))
    with tape:
        pass
    with pytest.raises(TapeError):
        tape.watch(tg.tensor(1.0))
    with pytest.raises(TapeError, match="already entered"):
        with tape:
            pass


def test_integer_ops_are_not_recorded(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([1.0, -2.0]))
        mask = x > 0
        y = tg.sum(tg.where(mask, x, 0.0))
    assert "gt" not in [r.op for r in tape.records]
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [1.0, 0.0])


def test_saved_bytes_counts_each_held_buffer_once(backend):
    # Each record holds only what its rules read (its residuals), each buffer counted once.
    with tg.GradientTape() as tape:
        assert tape.saved_bytes() == 0  # nothing recorded yet
        x = tape.watch(tg.ones((250,), "float64"))  # 2000 bytes
        y = tg.sin(x)  # keeps x (its rule reads cos(x)), not y
        z = y * y  # keeps y (twice: once), not z
        h = tg.astype(z, "float16")  # a cast keeps nothing
        t = tg.tanh(tg.astype(h, "float32"))  # the cast nothing; tanh its output (1000 bytes)
        tg.sum(t)  # nothing
    assert tape.saved_bytes() == 2000 + 2000 + 1000
    assert tape.saved_bytes(watched=False) == 2000 + 1000  # without x
    tape.gradient(z, x)
    assert tape.saved_bytes() == 2000 + 2000 + 1000  # the records outlive the sweep
    with tg.GradientTape(keep_values=True) as tape:  # every input and output
        x = tape.watch(tg.ones((250,), "float64"))
        z = tg.sin(x) * tg.sin(x)
    assert tape.saved_bytes() == 4 * 2000


def test_saved_bytes_counts_a_view_once():
    with tg.use_backend("numpy"):
        with tg.GradientTape() as tape:
            w = tape.watch(tg.ones((4, 8), "float32"))  # 128 bytes
            m = w * 2.0  # keeps w and the constant 2.0 as a float32 scalar (4)
            e = tg.exp(m)  # keeps its output (128)
            r = tg.reshape(e, (32,))  # a view of e's buffer; a reshape keeps nothing
            r * 3.0  # keeps r (the view: counted once with e) and 3.0 (4)
    assert np.shares_memory(r.primal._data, e.primal._data)
    assert tape.saved_bytes() == 128 + 4 + 128 + 4
    assert tape.saved_bytes(watched=False) == 4 + 128 + 4


# ---- Residuals: a record keeps only the values its primitive's rules read ----
def _chain(x, dead):
    a = tg.sin(x)  # sin keeps x, not a
    b = a + a  # an add keeps nothing
    c = tg.astype(b, "float32")  # nor does a cast
    d = tg.transpose(c)  # nor a transpose (a view of c's buffer)
    dead.extend(weakref.ref(t.primal._data) for t in (a, b, c, d))
    return tg.tanh(d)  # tanh keeps its output only, not d


def test_add_astype_and_transpose_do_not_keep_their_inputs_alive():
    x0 = np.array([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4]])
    with tg.use_backend("numpy"):  # host buffers, which weakref can watch
        with tg.GradientTape() as tape:
            x = tape.watch(tg.tensor(x0))
            dead = []
            e = _chain(x, dead)
        assert [ref() for ref in dead] == [None] * 4  # freed while the tape lives
        # the tape holds x (for sin) and tanh's output: 48 + 24 bytes
        assert tape.saved_bytes() == x0.nbytes + e.size * 4
        g = tape.gradient(e, x).numpy()
    t = np.tanh((2 * np.sin(x0)).astype(np.float32).T)
    np.testing.assert_allclose(g, ((1 - t * t).T * 2 * np.cos(x0)), rtol=1e-6)


def test_tanh_keeps_its_output_only_and_mul_its_inputs(backend):
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([0.5, -1.0]))
        y = tg.tanh(x) * x
    tanh, mul = tape.records
    (x_kept,) = tanh.primals
    assert isinstance(x_kept, NotSaved) and x_kept.shape == (2,) and x_kept.ndim == 1
    assert x_kept.dtype is tg.float64 and x_kept.size == 2
    np.testing.assert_allclose(tanh.ans.numpy(), np.tanh([0.5, -1.0]))
    assert not any(isinstance(p, NotSaved) for p in mul.primals)
    assert isinstance(mul.ans, NotSaved) and mul.shape == (2,) and mul.dtype == "float64"
    assert tanh.input_shapes == ((2,),) and tanh.input_dtypes == ("float64",)
    with pytest.raises(NotSavedError, match="keep_values=True"):
        mul.value  # noqa: B018
    v = np.array([0.5, -1.0])
    want = (1 - np.tanh(v) ** 2) * v + np.tanh(v)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), want)


def test_keep_values_and_observers_keep_every_value(backend):
    for observed in (False, True):
        with tg.GradientTape(keep_values=not observed) as tape:
            if observed:
                tape.observe(lambda e: None)
            x = tape.watch(tg.tensor([0.5, -1.0]))
            tg.tanh(x) + x
        for r in tape.records:
            assert not any(isinstance(p, NotSaved) for p in (*r.primals, r.ans))
        np.testing.assert_allclose(tape.records[1].value, np.tanh([0.5, -1.0]) + [0.5, -1.0])


def test_a_wrong_declaration_fails_loudly(backend):
    # A rule that reads a value its primitive does not declare gets the stand-in's error,
    # naming the primitive; the failed sweep leaves the tape as it was.
    square_p = Primitive("square_undeclared", 1, saves=())  # wrong: the rule reads x
    square_p.def_impl(lambda x: tg.tensor(x.numpy() ** 2))
    square_p.defvjp(lambda g, ans, x: g * 2.0 * x)
    with tg.GradientTape() as tape:
        x = tape.watch(tg.tensor([1.0, 3.0]))
        y = tg.sum(bind(square_p, x))
    with pytest.raises(NotSavedError, match=r"input 0 of a recorded square_undeclared"):
        tape.gradient(y, x)
    stand_in = tape.records[0].primals[0]
    for read in (np.asarray, lambda s: s * 2.0, lambda s: tg.sin(s), lambda s: s.numpy(),
                 lambda s: s._data, lambda s: float(s)):  # fmt: skip
        with pytest.raises(NotSavedError, match=re.escape("saves=()")):
            read(stand_in)
    assert all(r.adjoint is None for r in tape.records)  # as before the sweep


def test_residual_tapes_nest_and_sweep_twice(backend):
    # The inner sweep's ops are recorded by the outer tape with their own declarations; a
    # persistent tape of residuals sweeps twice.
    v = np.array([0.3, -0.8])
    with tg.GradientTape(persistent=True) as outer:
        x = outer.watch(tg.tensor(v))
        with tg.GradientTape() as inner:
            xi = inner.watch(x)
            y = tg.sum(tg.tanh(tg.transpose(xi) + 1.0) * xi)
        dy = inner.gradient(y, xi)
        s = tg.sum(dy)
    assert any(isinstance(p, NotSaved) for r in outer.records for p in r.primals)
    t = np.tanh(v + 1.0)
    np.testing.assert_allclose(dy.numpy(), (1 - t * t) * v + t)
    d2 = (-2 * t * (1 - t * t)) * v + 2 * (1 - t * t)
    for _ in range(2):
        np.testing.assert_allclose(outer.gradient(s, x).numpy(), d2)
