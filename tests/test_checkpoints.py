"""Checkpoints: tensors pickle (every dtype, bfloat16 in its 16 bits), and a training run saved
mid-way (the model's, the optimiser's and the mixed-precision policy's state_dict, through
pickle) and resumed in fresh objects continues bit for bit as the run that never stopped,
eagerly and compiled. Bad states are refused by name and change nothing."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import tfgrad as tg
import tfgrad.nn as nn
from tfgrad.amp import AMPConfig, AMPPolicy
from tfgrad.errors import AMPConfigError, OptionError, ShapeError, TfgradError


@pytest.mark.parametrize(
    "dtype", ["float16", "bfloat16", "float32", "float64", "int32", "int64", "bool"]
)
def test_tensors_pickle_with_their_dtype_and_bits(dtype):
    values = np.random.default_rng(0).normal(size=(3, 4)) * 1e3
    x = tg.tensor(values).astype(dtype)
    y = pickle.loads(pickle.dumps(x))
    assert type(y) is tg.Tensor and y.dtype == x.dtype and y.shape == (3, 4)
    assert x.numpy().tobytes() == y.numpy().tobytes()
    scalar = pickle.loads(pickle.dumps(tg.tensor(2.5, dtype=dtype)))
    assert scalar.shape == () and scalar.dtype.name == dtype


def test_copies_of_an_immutable_tensor_are_itself_and_a_model_deep_copies():
    x = tg.tensor([1.0, 2.0])
    assert copy.copy(x) is x and copy.deepcopy(x) is x
    model = nn.MLP(3, [4, 2], generator=tg.random.Generator(0))
    twin = copy.deepcopy(model)
    twin.load_state_dict({k: v * 0 for k, v in twin.state_dict().items()})
    assert np.abs(model.layers[0].weight.numpy()).sum() > 0  # the original kept its weights
    unpickled = pickle.loads(pickle.dumps(model))
    inputs = tg.tensor(np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(unpickled(inputs).numpy(), model(inputs).numpy())


def test_a_tensor_being_differentiated_refuses_to_pickle():
    def f(x):
        pickle.dumps(x)
        return x.sum()

    with pytest.raises(TfgradError, match=r"cannot pickle a TrackedTensor .*shape \(2,\)"):
        tg.grad(f)(tg.tensor([1.0, 2.0]))


@pytest.fixture(scope="module")
def batches():
    x, y = nn.load_digits()
    x, y = x[:512], y[:512]
    return list(nn.batches(x, y, 64))  # 8 fixed batches: each epoch sees the same ones


def make(kind, seed):
    model = nn.MLP(64, [32, 10], generator=tg.random.Generator(seed))
    params = model.state_dict()
    optimizer = {
        "sgd": lambda: nn.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
        "adam": lambda: nn.Adam(params, lr=3e-3),
        "adamw": lambda: nn.AdamW(params, lr=3e-3, betas=(0.8, 0.99)),
    }[kind]()
    # a small growth interval and a large start: the scale backs off and grows within the run
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=2.0**20, growth_interval=3))
    return model, optimizer, policy


def train(model, optimizer, policy, batches, epochs, jit):
    return nn.fit(model, batches, nn.cross_entropy, optimizer, epochs=epochs, amp=policy,
                  jit=jit, progress=False)  # fmt: skip


def bits(model):
    return {k: v.numpy().tobytes() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_a_resumed_run_continues_bit_for_bit(batches, kind, jit):
    model, optimizer, policy = make(kind, seed=0)
    straight = train(model, optimizer, policy, batches, 2, jit)

    first, opt1, pol1 = make(kind, seed=0)
    train(first, opt1, pol1, batches, 1, jit)
    saved = pickle.dumps({"model": first.state_dict(), "optimizer": opt1.state_dict(),
                          "amp": pol1.state_dict()})  # fmt: skip
    resumed, opt2, pol2 = make(kind, seed=5)  # other weights, no optimiser state yet
    checkpoint = pickle.loads(saved)
    resumed.load_state_dict(checkpoint["model"])
    assert opt2.load_state_dict(checkpoint["optimizer"]) is opt2
    assert pol2.load_state_dict(checkpoint["amp"]) is pol2
    rest = train(resumed, opt2, pol2, batches, 1, jit)

    assert bits(resumed) == bits(model)
    assert rest.loss == straight.loss[len(batches) :]
    done, again = policy.stability_metrics(), pol2.stability_metrics()
    assert again.scale_history == done.scale_history  # the whole run, the saved half included
    assert (again.current_scale, again.growth_tracker) == (done.current_scale, done.growth_tracker)
    assert done.backoff_events >= 1 and done.growth_events >= 1  # the scale moved both ways
    for key, entry in optimizer.state.items():
        assert entry.keys() == opt2.state[key].keys()
        for field, value in entry.items():
            other = opt2.state[key][field]
            if field == "step":
                assert value == other
            else:
                assert value.numpy().tobytes() == other.numpy().tobytes()


def test_the_optimiser_state_is_pytorchs_layout_and_loads_its_hyperparameters():
    params = {"w": tg.tensor(np.ones(3, np.float32))}
    opt = nn.Adam(params, lr=0.1, betas=(0.5, 0.6), eps=1e-6)
    assert opt.state_dict() == {
        "state": {},
        "param_groups": [
            {"lr": 0.1, "betas": (0.5, 0.6), "eps": 1e-6, "weight_decay": 0.0, "params": ["w"]}
        ],
    }
    opt.step(params, {"w": tg.tensor(np.full(3, 2.0, np.float32))})
    state = opt.state_dict()
    assert state["state"]["w"]["step"] == 1
    np.testing.assert_allclose(state["state"]["w"]["exp_avg"].numpy(), 0.5 * 2.0)
    np.testing.assert_allclose(state["state"]["w"]["exp_avg_sq"].numpy(), 0.4 * 4.0)
    other = nn.Adam(params)  # defaults: lr 1e-3, betas (0.9, 0.999)
    other.load_state_dict(state)
    assert (other.lr, other.betas, other.eps) == (0.1, (0.5, 0.6), 1e-6)
    listed = nn.SGD([tg.zeros(2), tg.zeros(3)], lr=0.1, momentum=0.5)
    listed.step([tg.zeros(2), tg.zeros(3)], [tg.ones(2), None])
    saved = listed.state_dict()
    assert list(saved["state"]) == [0] and saved["param_groups"][0]["params"] == [0, 1]


def test_a_bad_optimiser_state_is_refused_and_changes_nothing():
    params = {"w": tg.tensor(np.ones((2, 3), np.float32)), "b": tg.zeros(3, dtype="float32")}
    grads = {k: tg.ones_like(v) for k, v in params.items()}
    opt = nn.Adam(params, lr=0.01)
    opt.step(params, grads)
    before = copy.deepcopy(opt.state_dict())
    good = opt.state_dict()
    sgd = nn.SGD(params, lr=0.1, momentum=0.9)
    sgd.step(params, grads)
    with pytest.raises(nn.StateDictError, match="hyperparameters.*another kind of optimiser"):
        opt.load_state_dict(sgd.state_dict())
    renamed = {"state": {}, "param_groups": [{**good["param_groups"][0], "params": ["w", "c"]}]}
    with pytest.raises(nn.StateDictError, match=r"has parameters \['w', 'b'\]"):
        opt.load_state_dict(renamed)
    bad_shape = copy.deepcopy(good)
    bad_shape["state"]["b"]["exp_avg"] = np.zeros(4, np.float32)
    with pytest.raises(ShapeError, match=r"'b''s exp_avg .*shape \(3,\), got \(4,\)"):
        opt.load_state_dict(bad_shape)
    partial = copy.deepcopy(good)
    del partial["state"]["w"]["exp_avg_sq"]
    with pytest.raises(nn.StateDictError, match=r"'w' holds \['exp_avg', 'step'\]"):
        opt.load_state_dict(partial)
    bad_lr = copy.deepcopy(good)
    bad_lr["param_groups"][0]["lr"] = -1.0
    with pytest.raises(OptionError, match="lr must be >= 0"):
        opt.load_state_dict(bad_lr)
    with pytest.raises(nn.StateDictError, match="as Adam.state_dict"):
        opt.load_state_dict({"w": 1})
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for key in ("w", "b"):
        for field in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_array_equal(after["state"][key][field].numpy(),
                                          before["state"][key][field].numpy())  # fmt: skip


def test_a_bad_policy_state_is_refused_and_changes_nothing():
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=8.0, growth_interval=1))
    policy.update_scale(False)
    good = policy.state_dict()
    assert good["scale"] == 16.0 and good["growth_events"] == 1
    with pytest.raises(AMPConfigError, match="expected the keys"):
        policy.load_state_dict({"scale": 4.0})
    with pytest.raises(AMPConfigError, match="growth_factor must be greater than 1"):
        policy.load_state_dict({**good, "config": {**good["config"], "growth_factor": 1.0}})
    with pytest.raises(AMPConfigError, match="are counts >= 0"):
        policy.load_state_dict({**good, "skipped_steps": -1})
    with pytest.raises(AMPConfigError, match="scale must be finite"):
        policy.load_state_dict({**good, "scale": float("inf")})
    assert policy.state_dict() == good


def test_a_loaded_config_reaches_the_compiled_step_of_the_same_policy(batches):
    model, optimizer, policy = make("adam", seed=0)
    dtypes = []

    def loss(prediction, target):
        dtypes.append(prediction.dtype.name)
        return nn.cross_entropy(prediction, target)

    nn.fit(model, batches[:2], loss, optimizer, amp=policy, jit=True, progress=False)
    state = policy.state_dict()
    state["config"]["target_dtype"] = "bfloat16"
    policy.load_state_dict(state)
    nn.fit(model, batches[:2], loss, optimizer, amp=policy, jit=True, progress=False)
    assert dtypes[0] == "float16" and dtypes[-1] == "bfloat16"  # traced again, in bfloat16
