"""tfgrad.nn: modules and their parameter names, state dicts, initialisers from a Generator,
losses against NumPy (cross-entropy at logits of 1e4 included), optimisers against PyTorch's
update rules written out in NumPy, seeded data, and fit training real models."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tfgrad as tg
import tfgrad.nn as nn
from tfgrad.errors import DtypeError, OptionError, ShapeError

# ---- modules and parameter names ----


def np_params(model):
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_mlp_is_micrograd_shaped_and_computes_relu_layers():
    model = nn.MLP(4, [16, 3], generator=tg.random.Generator(0))
    names = [(k, p.shape) for k, p in model.named_parameters()]
    assert names == [
        ("layers.0.weight", (16, 4)), ("layers.0.bias", (16,)),
        ("layers.1.weight", (3, 16)), ("layers.1.bias", (3,)),
    ]  # fmt: skip
    assert model.num_parameters() == 4 * 16 + 16 + 16 * 3 + 3
    assert [p.shape for p in model.parameters()] == [s for _, s in names]
    assert all(p.dtype == tg.float32 for p in model.parameters())
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    p = np_params(model)
    h = np.maximum(x @ p["layers.0.weight"].T + p["layers.0.bias"], 0)
    expected = h @ p["layers.1.weight"].T + p["layers.1.bias"]
    np.testing.assert_allclose(model(tg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_nested_modules_are_named_by_path_in_assignment_order():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = tg.ones(3)
            self.body = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1, bias=False))
            self.heads = [nn.Linear(1, 1), nn.Linear(1, 2)]
            self.label = "not a parameter"
            self.steps = tg.tensor(3)  # an integer tensor: not a parameter

        def forward(self, x):
            return self.body(self.scale * x)

    net = Net()
    assert [k for k, _ in net.named_parameters()] == [
        "scale", "body.0.weight", "body.0.bias", "body.2.weight",
        "heads.0.weight", "heads.0.bias", "heads.1.weight", "heads.1.bias",
    ]  # fmt: skip
    assert [k for k, _ in net.named_modules()] == [
        "", "body", "body.0", "body.1", "body.2", "heads.0", "heads.1",
    ]  # fmt: skip
    net.scale = tg.full(3, 2.0)  # rebinding keeps the name and its place
    assert list(net.state_dict())[0] == "scale" and net.state_dict()["scale"].numpy()[0] == 2.0
    net.scale = None  # and assigning something else removes it
    assert "scale" not in net.state_dict()
    del net.heads
    assert [k for k, _ in net.named_parameters()][-1] == "body.2.weight"
    assert "Sequential" in repr(net) and "Linear(3, 2, bias=True)" in repr(net)


def test_linear_forward_and_gradient_against_numpy():
    layer = nn.Linear(3, 2, generator=tg.random.Generator(4), dtype=tg.float64)
    x = np.arange(12.0).reshape(4, 3) / 10
    w, b = layer.weight.numpy(), layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), x @ w.T + b, rtol=1e-14)
    g = tg.grad(lambda p: tg.sum(nn.functional_call(layer, p, x) ** 2))(layer.state_dict())
    y = x @ w.T + b
    np.testing.assert_allclose(g["weight"].numpy(), 2 * y.T @ x, rtol=1e-12)
    np.testing.assert_allclose(g["bias"].numpy(), 2 * y.sum(0), rtol=1e-12)
    with pytest.raises(ShapeError, match=r"Linear\(3, 2\).*last axis of 3"):
        layer(np.ones((4, 2)))


def test_functional_call_restores_the_parameters_even_when_forward_fails():
    model = nn.MLP(2, [3, 1])
    before = model.state_dict()
    zeros = {k: tg.zeros_like(v) for k, v in before.items()}
    assert not nn.functional_call(model, zeros, np.ones((1, 2), np.float32)).numpy().any()
    with pytest.raises(ShapeError):
        nn.functional_call(model, zeros, np.ones((1, 5), np.float32))
    assert all(model.state_dict()[k] is v for k, v in before.items())
    with pytest.raises(nn.StateDictError, match="no parameters"):
        nn.functional_call(model, {"layers.9.weight": tg.ones(1)}, np.ones((1, 2)))


def test_train_and_eval_reach_every_module_and_drive_dropout():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5, generator=tg.random.Generator(2)))
    assert model.eval() is model and not any(m.training for _, m in model.named_modules())
    x = tg.ones((50, 4), dtype=tg.float32)
    np.testing.assert_array_equal(model[1](x).numpy(), x.numpy())  # eval: the identity
    model.train()
    assert all(m.training for _, m in model.named_modules())
    out = model[1](x).numpy()
    assert set(np.unique(out)) == {0.0, 2.0}  # dropped, or scaled by 1 / (1 - p)
    assert 0.35 < np.mean(out == 0) < 0.65
    again = nn.Dropout(0.5, generator=tg.random.Generator(2))(x).numpy()
    np.testing.assert_array_equal(out, again)  # the mask comes from the generator


# ---- state dicts ----


def test_state_dict_round_trip_through_numpy_savez(tmp_path):
    model = nn.MLP(3, [5, 2], generator=tg.random.Generator(1))
    np.savez(tmp_path / "w.npz", **np_params(model))
    other = nn.MLP(3, [5, 2], generator=tg.random.Generator(2))
    x = tg.tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    assert not np.allclose(other(x).numpy(), model(x).numpy())
    with np.load(tmp_path / "w.npz") as stored:
        assert other.load_state_dict(dict(stored)) is other
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())
    for (k, a), (j, b) in zip(model.named_parameters(), other.named_parameters()):
        assert k == j and a.dtype == b.dtype
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_bad_state_dict_is_refused_and_changes_nothing():
    model = nn.MLP(3, [5, 2])
    before = np_params(model)
    good = model.state_dict()
    with pytest.raises(nn.StateDictError, match=r"lacks \['layers.1.bias'\]"):
        model.load_state_dict({k: v for k, v in good.items() if k != "layers.1.bias"})
    with pytest.raises(nn.StateDictError, match="unexpected keys"):
        model.load_state_dict({**good, "layers.2.weight": tg.ones((1, 1))})
    bad_shape = {**{k: tg.zeros_like(v) for k, v in good.items()}, "layers.1.bias": tg.ones(3)}
    with pytest.raises(ShapeError, match=r"layers.1.bias has shape \(2,\)"):
        model.load_state_dict(bad_shape)
    with pytest.raises(DtypeError, match="float32, got float64"):
        model.load_state_dict({**good, "layers.0.bias": tg.zeros(5, dtype=tg.float64)})
    for k, v in np_params(model).items():  # the zeros before the bad entry were not applied
        np.testing.assert_array_equal(v, before[k])
    model.load_state_dict({"layers.1.bias": np.ones(2, np.float32)}, strict=False)
    np.testing.assert_array_equal(model.state_dict()["layers.1.bias"].numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(model.layers[1].bias.numpy(), [1.0, 1.0])


# ---- initialisers ----


def test_initialisation_is_reproducible_from_the_generator():
    a = nn.MLP(4, [8, 3], generator=tg.random.Generator(9))
    b = nn.MLP(4, [8, 3], generator=tg.random.Generator(9))
    c = nn.MLP(4, [8, 3], generator=tg.random.Generator(10))
    for k, v in np_params(a).items():
        np.testing.assert_array_equal(v, np_params(b)[k])
        assert not np.array_equal(v, np_params(c)[k])
    # one generator, two layers: drawn one after the other, so they differ
    rng = tg.random.Generator(0)
    l1, l2 = nn.Linear(6, 6, generator=rng), nn.Linear(6, 6, generator=rng)
    assert not np.array_equal(l1.weight.numpy(), l2.weight.numpy())
    k = 1 / np.sqrt(6)  # PyTorch's default: U(-1/sqrt(nin), 1/sqrt(nin)) for weight and bias
    assert np.abs(l1.weight.numpy()).max() <= k and np.abs(l1.bias.numpy()).max() <= k


def test_initialisers_have_their_stated_spread():
    rng = tg.random.Generator(3)
    shape = (300, 200)  # fan_out 300, fan_in 200
    assert nn.init.fans((8, 4, 3, 3)) == (36, 72)
    w = nn.init.xavier_uniform(rng, shape).numpy()
    a = np.sqrt(6 / 500)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.99 * a
    assert np.std(nn.init.xavier_normal(rng, shape).numpy()) == pytest.approx(
        np.sqrt(2 / 500), rel=0.03
    )
    assert np.std(nn.init.kaiming_normal(rng, shape).numpy()) == pytest.approx(
        np.sqrt(2 / 200), rel=0.03
    )
    assert np.abs(nn.init.kaiming_uniform(rng, shape).numpy()).max() <= np.sqrt(6 / 200)
    assert not nn.init.zeros(None, (2, 2)).numpy().any()
    layer = nn.Linear(3, 2, weight_init=nn.init.zeros, bias_init=nn.init.zeros)
    assert not layer(np.ones((1, 3), np.float32)).numpy().any()


# ---- losses ----


def np_log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def test_mse_loss_against_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    assert nn.mse_loss(p, t).item() == pytest.approx(np.mean((p - t) ** 2), rel=1e-14)
    assert nn.mse_loss(p, t, "sum").item() == pytest.approx(np.sum((p - t) ** 2), rel=1e-14)
    np.testing.assert_allclose(nn.mse_loss(p, t, "none").numpy(), (p - t) ** 2, rtol=1e-14)
    with pytest.raises(ShapeError, match=r"\(4,\) and target \(4, 1\)"):
        nn.mse_loss(p[:, 0], t[:, :1])
    with pytest.raises(OptionError, match="reduction"):
        nn.mse_loss(p, t, "average")


def test_cross_entropy_against_numpy_for_labels_and_probabilities():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(6, 4)), np.array([0, 3, 1, 1, 2, 0])
    per_item = -np_log_softmax(z)[np.arange(6), y]
    assert nn.cross_entropy(z, y).item() == pytest.approx(per_item.mean(), rel=1e-13)
    np.testing.assert_allclose(nn.cross_entropy(z, y, "none").numpy(), per_item, rtol=1e-13)
    q = rng.dirichlet(np.ones(4), size=6)
    expected = -(q * np_log_softmax(z)).sum(-1).sum()
    assert nn.cross_entropy(z, q, "sum").item() == pytest.approx(expected, rel=1e-13)
    z3 = rng.normal(size=(2, 3, 4))  # classes on the last axis, any leading shape
    y3 = np.array([[0, 1, 2], [3, 2, 1]])
    expected = -np.take_along_axis(np_log_softmax(z3), y3[..., None], -1).mean()
    assert nn.cross_entropy(z3, y3).item() == pytest.approx(expected, rel=1e-13)
    traced = tg.jit(lambda logits, labels: nn.cross_entropy(logits, labels))  # labels unknown
    assert traced(tg.tensor(z), tg.tensor(y)).item() == pytest.approx(per_item.mean(), rel=1e-13)
    with pytest.raises(ShapeError, match=r"in \[0, 4\), got 0..4"):
        nn.cross_entropy(z, np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ShapeError, match=r"shape \(6,\)"):
        nn.cross_entropy(z, y[:5])


@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n_classes=st.integers(1, 5),
    scale=st.sampled_from([1.0, 30.0, 1e4]),
    seed=st.integers(0, 2**16),
)
def test_cross_entropy_over_shapes_against_numpy(lead, n_classes, scale, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(*lead, n_classes)) * scale
    y = rng.integers(0, n_classes, size=tuple(lead))
    value, g = tg.value_and_grad(lambda t: nn.cross_entropy(t, y))(tg.tensor(z))
    log_p = np_log_softmax(z)
    expected = -np.take_along_axis(log_p, y[..., None], -1).mean()
    assert value.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(
        g.numpy(), (np.exp(log_p) - np.eye(n_classes)[y]) / max(y.size, 1), atol=1e-14
    )


def test_cross_entropy_is_stable_at_logits_of_1e4():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [5e3, 1e4, 1e4 - 1.0]])
    y = np.array([1, 2, 2])
    value, g = tg.value_and_grad(lambda t: nn.cross_entropy(t, y))(tg.tensor(z))
    expected = -np_log_softmax(z)[np.arange(3), y].mean()  # 1e4, log 2, log(1 + e^-1)
    assert np.isfinite(value.item()) and value.item() == pytest.approx(expected, rel=1e-14)
    softmax = np.exp(np_log_softmax(z))
    np.testing.assert_allclose(g.numpy(), (softmax - np.eye(3)[y]) / 3, atol=1e-15)
    # and against central differences, in float64 at that scale
    f = lambda t: nn.cross_entropy(tg.tensor(t), y).item()
    eps, numeric = 1e-4, np.zeros_like(z)
    for idx in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[idx] = eps
        numeric[idx] = (f(z + step) - f(z - step)) / (2 * eps)
    np.testing.assert_allclose(g.numpy(), numeric, atol=1e-7)
    z32 = tg.tensor(z.astype(np.float32))  # float32 too: no inf, no NaN
    v32, g32 = tg.value_and_grad(lambda t: nn.cross_entropy(t, y))(z32)
    assert np.isfinite(v32.item()) and np.isfinite(g32.numpy()).all()


def test_cross_entropy_derivatives_against_central_differences():
    z = tg.tensor(np.random.default_rng(2).normal(size=(3, 4)) * 3)
    y = np.array([2, 0, 3])
    assert tg.gradcheck(lambda t: nn.cross_entropy(t, y), (z,), order=2)
    q = tg.tensor(np.random.default_rng(3).dirichlet(np.ones(4), size=3))
    assert tg.gradcheck(lambda t: nn.cross_entropy(t, q, "sum"), (z,), order=2)
    assert tg.gradcheck(lambda p: nn.mse_loss(p, q), (z,), order=2)


def test_accuracy_against_numpy():
    z = np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.2], [0.0, 5.0]])
    assert nn.accuracy(z, np.array([1, 0, 1, 1])) == 0.75


# ---- optimisers: PyTorch's update rules, written out in NumPy ----

C = {"a": np.array([0.5, -1.0, 2.0]), "b": np.array([[1.0, 0.0], [-0.5, 0.25]])}
P0 = {"a": np.array([1.0, 2.0, -0.5]), "b": np.array([[0.3, -0.7], [1.2, 0.1]])}


def np_grad(p):  # the gradient of sum(p^4 / 4 - c p): nonlinear, so a wrong step shows
    return {k: p[k] ** 3 - C[k] for k in p}


def tg_grad(p):
    return tg.grad(lambda q: sum(tg.sum(q[k] ** 4 / 4 - C[k] * q[k]) for k in q))(p)


def run_tfgrad(make, steps=3):
    params = {k: tg.tensor(v) for k, v in P0.items()}
    opt = make(params)
    for _ in range(steps):
        params = opt.step(params, tg_grad(params))
    return {k: v.numpy() for k, v in params.items()}


def sgd_reference(lr, momentum=0.0, nesterov=False, weight_decay=0.0, steps=3):
    p = {k: v.copy() for k, v in P0.items()}
    buf = {}
    for _ in range(steps):
        grads = np_grad(p)
        for k in p:
            d = grads[k] + weight_decay * p[k]
            if momentum:
                buf[k] = d if k not in buf else momentum * buf[k] + d
                d = d + momentum * buf[k] if nesterov else buf[k]
            p[k] = p[k] - lr * d
    return p


def adam_reference(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, steps=3):
    b1, b2 = betas
    p = {k: v.copy() for k, v in P0.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    for t in range(1, steps + 1):
        grads = np_grad(p)
        for k in p:
            g = grads[k]
            if decoupled:
                p[k] = p[k] * (1 - lr * weight_decay)
            else:
                g = g + weight_decay * p[k]
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            m_hat, v_hat = m[k] / (1 - b1**t), v[k] / (1 - b2**t)
            p[k] = p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(lr=0.1),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.8, nesterov=True),
        dict(lr=0.05, momentum=0.9, weight_decay=0.1),
        dict(lr=0.1, weight_decay=0.3),
    ],
    ids=["plain", "momentum", "nesterov", "momentum-weight-decay", "weight-decay"],
)
def test_sgd_follows_pytorchs_rule(kwargs):
    got = run_tfgrad(lambda p: nn.SGD(p, **kwargs))
    for k, v in sgd_reference(**kwargs).items():
        np.testing.assert_allclose(got[k], v, rtol=1e-13, atol=1e-15)
        assert not np.allclose(v, P0[k])


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (nn.Adam, dict(lr=0.1)),
        (nn.Adam, dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.2)),
        (nn.AdamW, dict(lr=0.1)),  # the default decoupled decay, 0.01
        (nn.AdamW, dict(lr=0.05, betas=(0.8, 0.9), weight_decay=0.5)),
    ],
    ids=["adam", "adam-l2", "adamw-default", "adamw"],
)
def test_adam_and_adamw_follow_pytorchs_rules(cls, kwargs):
    got = run_tfgrad(lambda p: cls(p, **kwargs))
    reference = dict(kwargs, decoupled=cls is nn.AdamW)
    if cls is nn.AdamW:
        reference.setdefault("weight_decay", 0.01)
    for k, v in adam_reference(**reference).items():
        np.testing.assert_allclose(got[k], v, rtol=1e-13, atol=1e-15)
    if cls is nn.AdamW:  # decoupled decay is not L2 in the gradient: the two differ
        l2 = adam_reference(**dict(reference, decoupled=False))
        assert not np.allclose(got["a"], l2["a"], rtol=1e-6)


def test_optimisers_take_lists_skip_none_gradients_and_check_structure():
    params = [tg.tensor(P0["a"]), tg.tensor(P0["b"])]
    opt = nn.Adam(params, lr=0.1)
    new = opt.step(params, [tg_grad({"a": params[0]})["a"], None])
    assert isinstance(new, list) and new[1] is params[1]
    assert opt.state[0]["step"] == 1 and opt.state[1] == {}  # no state for the skipped one
    np.testing.assert_allclose(new[0].numpy(), P0["a"] - 0.1 * np.sign(np_grad(P0)["a"]))
    with pytest.raises(ShapeError, match="names \\(or count\\)"):
        opt.step(params[:1], [None])
    with pytest.raises(ShapeError, match="parameter 1"):
        opt.step(params, [None, tg.ones(3)])
    with pytest.raises(OptionError, match="nesterov"):
        nn.SGD(params, lr=0.1, nesterov=True)
    with pytest.raises(OptionError, match="betas"):
        nn.Adam(params, betas=(0.9, 1.0))
    with pytest.raises(OptionError, match="dict of tensors"):
        nn.SGD(iter(params), lr=0.1)


# ---- data ----


def test_batches_cover_the_data_and_shuffle_reproducibly():
    x, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    plain = nn.batches(x, y, batch_size=4)
    assert len(plain) == 3 and [b.numpy().tolist() for _, b in plain] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9],
    ]  # fmt: skip
    assert len(nn.batches(x, y, 4, drop_last=True)) == 2

    def epochs(data, n=2):
        return [np.concatenate([t.numpy() for _, t in data]) for _ in range(n)]

    first = epochs(nn.batches(x, y, 4, shuffle=True, generator=tg.random.Generator(5)))
    again = epochs(nn.batches(x, y, 4, shuffle=True, generator=tg.random.Generator(5)))
    other = epochs(nn.batches(x, y, 4, shuffle=True, generator=tg.random.Generator(6)))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert sorted(first[0]) == list(range(10)) and sorted(first[1]) == list(range(10))
    assert not np.array_equal(first[0], first[1])  # each epoch reshuffles
    assert not np.array_equal(first[0], other[0])
    for inputs, targets in nn.batches(x, y, 3, shuffle=True):  # pairs stay paired
        np.testing.assert_array_equal(inputs.numpy()[:, 0], targets.numpy())
    with pytest.raises(ShapeError, match="10 inputs but 9 targets"):
        nn.batches(x, y[:9])


def test_train_test_split_is_fixed_and_disjoint():
    x, y = np.arange(20.0), np.arange(20) * 10
    x_tr, x_te, y_tr, y_te = nn.train_test_split(x, y, test_size=0.25)
    assert len(x_te) == 5 and len(x_tr) == 15
    assert sorted(np.concatenate([x_tr, x_te])) == list(range(20))
    np.testing.assert_array_equal(y_te, x_te * 10)
    np.testing.assert_array_equal(nn.train_test_split(x, y, test_size=0.25)[1], x_te)
    other = nn.train_test_split(x, y, 0.25, generator=tg.random.Generator(1))[1]
    assert not np.array_equal(other, x_te)


def test_synthetic_sets():
    x, y = nn.make_moons(101, noise=0.0, generator=tg.random.Generator(0))
    assert x.shape == (101, 2) and x.dtype == np.float32 and np.bincount(y).tolist() == [50, 51]
    np.testing.assert_allclose(np.hypot(*x[y == 0].T), 1.0, atol=1e-6)  # upper: unit circle
    np.testing.assert_allclose(np.hypot(x[y == 1, 0] - 1, x[y == 1, 1] - 0.5), 1.0, atol=1e-6)
    noisy, labels = nn.make_moons(101, noise=0.1, generator=tg.random.Generator(0))
    again, _ = nn.make_moons(101, noise=0.1, generator=tg.random.Generator(0))
    np.testing.assert_array_equal(noisy, again)
    assert not np.allclose(noisy, x)
    xs, ys = nn.make_spirals(301, n_classes=3, noise=0.0)
    assert xs.shape == (301, 2) and np.bincount(ys).tolist() == [101, 100, 100]
    assert np.hypot(*xs.T).max() == pytest.approx(1.0, abs=1e-6)


def test_the_shipped_digits():
    x, y = nn.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.round(x * 16))  # pixel counts 0..16
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert len(np.unique(x, axis=0)) > 1700  # real images, not a repeated one
    x_tr, x_te, _, _ = nn.train_test_split(x, y)
    assert x_tr.shape == (1347, 64) and x_te.shape == (450, 64)


# ---- fit ----


def moons_model(seed=1):
    return nn.MLP(2, [16, 16, 2], generator=tg.random.Generator(seed))


def test_fit_trains_an_mlp_on_moons_past_90_percent():
    x, y = nn.make_moons(300, noise=0.15, generator=tg.random.Generator(0))
    x_tr, x_te, y_tr, y_te = nn.train_test_split(x, y, test_size=1 / 3)
    model = moons_model()
    seen = []
    history = nn.fit(
        model,
        nn.batches(x_tr, y_tr, 32, shuffle=True, generator=tg.random.Generator(2)),
        nn.cross_entropy,
        nn.Adam(model.state_dict(), lr=0.02),
        epochs=25,
        metrics={"accuracy": nn.accuracy},
        validation=nn.batches(x_te, y_te, 100),
        callbacks=[lambda step, info: seen.append((step, info))],
        progress=False,
    )
    assert history.steps == 25 * 7 == len(history.loss)
    assert np.mean(history.loss[-7:]) < 0.5 * np.mean(history.loss[:7])
    assert history.epochs[-1]["val_accuracy"] > 0.9 and history.epochs[-1]["accuracy"] > 0.9
    assert nn.accuracy(model(x_te), y_te) == history.epochs[-1]["val_accuracy"]
    steps = [s for s, info in seen if not info.end_of_epoch]
    assert steps == list(range(1, 176))
    last_step = [info for _, info in seen if not info.end_of_epoch][-1]
    assert last_step.params.keys() == last_step.grads.keys() == model.state_dict().keys()
    assert all(last_step.params[k] is v for k, v in model.state_dict().items())
    ends = [info for _, info in seen if info.end_of_epoch]
    assert len(ends) == 25 and ends[-1].metrics == history.epochs[-1]
    assert history.metric("epoch") == list(range(25))


def test_fit_on_the_digits_reaches_95_percent_on_the_fixed_test_split():
    x, y = nn.load_digits()
    x_tr, x_te, y_tr, y_te = nn.train_test_split(x, y)  # 1,347 / 450, Generator(0)
    model = nn.MLP(64, [64, 10], generator=tg.random.Generator(0))
    history = nn.fit(
        model,
        nn.batches(x_tr, y_tr, 64, shuffle=True),
        nn.cross_entropy,
        nn.Adam(model.parameters(), lr=3e-3),  # a list works as well as a dict
        epochs=15,
        progress=False,
    )
    result = nn.evaluate(model, nn.batches(x_te, y_te, 450), nn.cross_entropy, {"acc": nn.accuracy})
    assert result["acc"] >= 0.95  # 0.962 measured
    assert history.epochs[-1]["loss"] < 0.3 < history.epochs[0]["loss"]


def test_fit_stops_from_a_callback_and_shows_a_progress_bar(capsys):
    x, y = nn.make_moons(64, generator=tg.random.Generator(0))
    model = moons_model()
    before = np_params(model)

    def stop_after_five(step, info):
        if step == 5:
            raise nn.StopTraining

    history = nn.fit(
        model, nn.batches(x, y, 8), nn.cross_entropy, nn.SGD(model.state_dict(), lr=0.1),
        epochs=3, callbacks=stop_after_five,
    )  # fmt: skip
    assert history.stopped and history.steps == 5 and history.epochs == []
    assert all(not np.array_equal(v, before[k]) for k, v in np_params(model).items())
    assert "5/24" in capsys.readouterr().err  # tqdm's bar, on stderr in a terminal
    with pytest.raises(OptionError, match="amp"):
        nn.fit(model, [], nn.cross_entropy, nn.SGD(model.state_dict(), lr=0.1), amp=object())


def test_fit_is_the_optimiser_applied_to_the_tape_gradients():
    x, y = nn.make_moons(16, generator=tg.random.Generator(0))
    model, twin = moons_model(), moons_model()
    nn.fit(model, [(x, y)], nn.cross_entropy, nn.SGD(model.state_dict(), lr=0.5), progress=False)
    params = twin.state_dict()
    g = tg.grad(lambda p: nn.cross_entropy(nn.functional_call(twin, p, x), y))(params)
    for k, v in np_params(model).items():
        np.testing.assert_allclose(v, params[k].numpy() - 0.5 * g[k].numpy(), rtol=1e-6)


def test_modules_run_on_the_numpy_backend_too():
    with tg.use_backend("numpy"):
        model = nn.MLP(3, [4, 2], generator=tg.random.Generator(0))
        x = np.ones((2, 3), np.float32)
        value, g = tg.value_and_grad(
            lambda p: nn.cross_entropy(nn.functional_call(model, p, x), np.array([0, 1]))
        )(model.state_dict())
    reference = nn.MLP(3, [4, 2], generator=tg.random.Generator(0))
    np.testing.assert_allclose(model(x).numpy(), reference(x).numpy(), rtol=1e-6)
    assert set(g) == set(model.state_dict()) and np.isfinite(value.item())


def test_every_public_name_has_an_entry_in_the_api_page():
    from pathlib import Path

    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    entries = {line.split("::")[1].strip() for line in api.splitlines() if "::" in line}
    missing = [n for n in nn.__all__ if n not in entries and f"tfgrad.nn.{n}" not in entries]
    assert not missing, f"tfgrad.nn names without an entry in docs/api.md: {missing}"


def test_fit_refuses_an_iterator_that_the_first_epoch_used_up():
    x, y = nn.make_moons(16, generator=tg.random.Generator(0))
    model = moons_model()
    one_pass = iter([(x[:8], y[:8]), (x[8:], y[8:])])
    with pytest.raises(OptionError, match="no batches in epoch 1 after 2 steps"):
        nn.fit(model, one_pass, nn.cross_entropy, nn.SGD(model.state_dict(), lr=0.1),
               epochs=2, progress=False)  # fmt: skip


def test_activation_modules_against_numpy():
    x = np.linspace(-3, 3, 13).reshape(1, 13)
    c = np.sqrt(2 / np.pi)
    cases = {
        nn.ReLU(): np.maximum(x, 0),
        nn.LeakyReLU(0.1): np.where(x > 0, x, 0.1 * x),
        nn.Tanh(): np.tanh(x),
        nn.Sigmoid(): 1 / (1 + np.exp(-x)),
        nn.Softplus(): np.log1p(np.exp(x)),
        nn.GELU(): 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3))),
        nn.Identity(): x,
    }
    for module, expected in cases.items():
        np.testing.assert_allclose(module(tg.tensor(x)).numpy(), expected, rtol=1e-12, atol=1e-15)
    assert tg.gradcheck(nn.gelu, (tg.tensor(x[0]),), order=2)
    assert tg.gradcheck(lambda t: nn.leaky_relu(t, 0.2), (tg.tensor(x[0] + 0.05),), order=2)
    images = tg.tensor(np.arange(24.0).reshape(2, 3, 4))
    assert nn.Flatten()(images).shape == (2, 12)
    np.testing.assert_array_equal(nn.Flatten()(images).numpy(), np.arange(24.0).reshape(2, 12))


# ---- Conv2d ----


def conv2d_loops(x, w, b, stride, padding):
    """The definition, one output at a time (PyTorch's cross-correlation)."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    y = np.empty((n, o, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            y[:, :, i, j] = np.einsum("ncpq,ocpq->no", patch, w)
    return y + b[None, :, None, None]


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1)])
def test_conv2d_layer_is_torchs_convolution_with_bias(stride, padding):
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=padding, generator=tg.random.Generator(0))
    assert [(k, p.shape) for k, p in conv.named_parameters()] == [
        ("weight", (3, 2, 3, 3)), ("bias", (3,)),
    ]  # fmt: skip
    k = 1 / np.sqrt(2 * 3 * 3)  # PyTorch's default range, fan_in = nin * KH * KW
    assert all(np.abs(p.numpy()).max() <= k for p in conv.parameters())
    x = np.random.default_rng(0).normal(size=(2, 2, 6, 5)).astype(np.float32)
    p = np_params(conv)
    expected = conv2d_loops(x, p["weight"], p["bias"], stride, padding)
    np.testing.assert_allclose(conv(tg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_conv2d_layer_derivatives_in_its_parameters_to_second_order():
    conv = nn.Conv2d(2, 2, 2, padding=1, generator=tg.random.Generator(1), dtype=tg.float64)
    x = tg.tensor(np.random.default_rng(1).normal(size=(2, 2, 3, 3)))

    def loss(weight, bias):
        y = nn.functional_call(conv, {"weight": weight, "bias": bias}, x)
        return tg.sum(tg.tanh(y))

    assert tg.gradcheck(loss, (conv.weight, conv.bias), order=2)


def test_conv2d_layer_names_the_shape_it_needs():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ShapeError, match=r"\(N, 3, H, W\).*\(2, 1, 8, 8\)"):
        conv(tg.ones((2, 1, 8, 8)))
    with pytest.raises(OptionError, match="kernel_size"):
        nn.Conv2d(3, 4, (3, 3, 3))


def test_fit_trains_a_small_cnn_on_the_digits():
    x, y = nn.load_digits()
    x_train, x_test, y_train, y_test = nn.train_test_split(x, y)
    gen = tg.random.Generator(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, generator=gen), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10, generator=gen),
    )  # fmt: skip
    images = x_train.reshape(-1, 1, 8, 8)
    shuffle = tg.random.Generator(1)
    data = nn.batches(images, y_train, batch_size=64, shuffle=True, generator=shuffle)
    optimizer = nn.Adam(model.parameters(), lr=3e-3)
    nn.fit(model, data, nn.cross_entropy, optimizer, epochs=3, progress=False)
    assert nn.accuracy(model(tg.tensor(x_test.reshape(-1, 1, 8, 8))), y_test) >= 0.9


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_layers_keep_autocasts_half_dtype_and_float32_gradients(half):
    import tfgrad.amp as amp

    x = tg.tensor(np.random.default_rng(0).normal(size=(2, 1, 4, 4)), dtype=tg.float32)
    for layer, inputs in [(nn.Linear(16, 3), tg.reshape(x, (2, 16))), (nn.Conv2d(1, 2, 3), x)]:

        def loss(params):
            with amp.autocast(half):
                y = nn.functional_call(layer, params, inputs)
            assert y.dtype == getattr(tg, half)  # the bias joined in the product's dtype
            return tg.sum(tg.astype(y, tg.float32))

        grads = tg.grad(loss)(layer.state_dict())
        assert {k: g.dtype for k, g in grads.items()} == {"weight": tg.float32, "bias": tg.float32}
