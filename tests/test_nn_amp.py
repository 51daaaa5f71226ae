"""nn.fit with a mixed-precision policy (tfgrad.amp.AMPPolicy): float16 autocast with dynamic
loss scaling trains the digits, skipped steps move neither the weights nor the optimiser, the
callbacks see the scale (a LossScaleWidget follows fit), and deterministic mode gives fit's
bits again across runs and across 1 and 2 threads (child processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from fit_determinism import SEED, fit_bits

import tfgrad as tg
import tfgrad.determinism as det
import tfgrad.nn as nn
from tfgrad.amp import AMPConfig, AMPPolicy
from tfgrad.errors import OptionError


@pytest.fixture(scope="module")
def digits():
    x, y = nn.load_digits()
    return nn.train_test_split(x, y)  # 1,347 / 450, Generator(0)


def fit_digits(digits, policy, epochs=10, callbacks=(), loss=nn.cross_entropy, seed=0):
    x_tr, _, y_tr, _ = digits
    model = nn.MLP(64, [64, 10], generator=tg.random.Generator(seed))
    optimizer = nn.Adam(model.state_dict(), lr=3e-3)
    history = nn.fit(
        model, nn.batches(x_tr, y_tr, 64, shuffle=True, generator=tg.random.Generator(1)),
        loss, optimizer, epochs=epochs, callbacks=callbacks, progress=False, amp=policy,
    )  # fmt: skip
    return model, optimizer, history


def test_float16_with_dynamic_scaling_trains_the_digits(digits):
    _, x_te, _, y_te = digits
    policy = AMPPolicy(AMPConfig(enabled=True, target_dtype="float16", growth_interval=20))
    dtypes = set()

    def loss(prediction, target):
        dtypes.add(prediction.dtype.name)  # the logits of the float16 matmul and bias add
        return nn.cross_entropy(prediction, target)

    infos = []
    model, _, history = fit_digits(digits, policy, callbacks=lambda s, i: infos.append(i),
                                   loss=loss)  # fmt: skip
    accuracy = nn.accuracy(model(x_te), y_te)
    assert accuracy >= 0.94  # 0.956 measured (float32: 0.962 in 15 epochs, test_nn.py)
    assert dtypes == {"float16"}
    assert {v.dtype.name for v in model.state_dict().values()} == {"float32"}  # master weights
    metrics = policy.stability_metrics()
    assert metrics.steps == history.steps == 220
    # the scale grew from 2^16 (every 20 clean steps) until the float16 gradients overflowed
    assert metrics.growth_events >= 3 and metrics.skipped_steps >= 1
    steps = [i for i in infos if not i.end_of_epoch]
    assert [i.scale for i in steps] == [r.scale for r in metrics.scale_history]
    assert [i.found_inf for i in steps] == [r.found_inf for r in metrics.scale_history]
    assert all(np.isfinite(history.loss))  # the unscaled loss, finite also at skipped steps


def test_skipped_steps_move_neither_weights_nor_optimiser_state(digits):
    # 2^24 times the gradients overflows float16: steps are skipped, halving the scale, until
    # the scaled gradients fit (5 steps, measured)
    policy = AMPPolicy(AMPConfig(enabled=True, initial_scale=2.0**24))
    seen = []

    def record(step, info):
        if not info.end_of_epoch:
            seen.append((info.found_inf, {k: v.numpy() for k, v in info.params.items()}))

    model = nn.MLP(64, [64, 10], generator=tg.random.Generator(0))
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    x_tr, _, y_tr, _ = digits
    optimizer = nn.Adam(model.state_dict(), lr=3e-3)
    nn.fit(model, nn.batches(x_tr[:640], y_tr[:640], 64), nn.cross_entropy, optimizer,
           callbacks=record, progress=False, amp=policy)  # fmt: skip
    skipped = [found for found, _ in seen]
    first_clean = skipped.index(False)
    assert first_clean >= 2 and not any(skipped[first_clean:])
    for _, params in seen[:first_clean]:
        for k, v in params.items():
            np.testing.assert_array_equal(v, before[k])
    assert not np.array_equal(seen[first_clean][1]["layers.0.weight"], before["layers.0.weight"])
    # GradScaler.step: no optimiser step at all, so Adam counts only the clean steps
    assert all(s["step"] == 10 - first_clean for s in optimizer.state.values())
    assert policy.scale == 2.0 ** (24 - first_clean)


def test_the_callback_info_reads_as_a_mapping_and_drives_a_loss_scale_widget(digits):
    from tfgrad_widgets import LossScaleWidget

    policy = AMPPolicy(AMPConfig(enabled=True, growth_interval=5))
    widget = LossScaleWidget()
    infos = []

    def follow(step, info):
        infos.append(info)
        if not info.end_of_epoch:  # the widget draws steps; an epoch's end repeats the last
            widget(step, info)

    _, _, history = fit_digits(digits, policy, epochs=1, callbacks=follow)
    metrics = policy.stability_metrics()
    assert widget.layer("scale", "scale")["y"] == [r.scale for r in metrics.scale_history]
    assert widget.layer("loss", "loss")["y"] == history.loss
    assert widget.counts["growths"] == metrics.growth_events >= 3
    last = infos[-2]
    assert last["scale"] == last.scale and last.get("found_inf") is last.found_inf
    assert last.get("skipped") is last.found_inf and last.get("nothing", 3) == 3
    with pytest.raises(KeyError):
        last["nothing"]
    assert infos[-1].end_of_epoch and infos[-1].scale == policy.scale  # the next step's


def test_without_amp_the_info_has_no_scale_and_a_disabled_policy_changes_no_bit(digits):
    infos = []
    plain, _, h_plain = fit_digits(digits, None, epochs=1, callbacks=lambda s, i: infos.append(i))
    assert infos[0].scale is None and infos[0].found_inf is False
    off, _, h_off = fit_digits(digits, AMPPolicy(AMPConfig(enabled=False)), epochs=1)
    assert h_plain.loss == h_off.loss
    for k, v in plain.state_dict().items():
        np.testing.assert_array_equal(off.state_dict()[k].numpy(), v.numpy())


def test_fit_refuses_what_is_not_a_policy():
    model = nn.MLP(2, [2], generator=tg.random.Generator(0))
    sgd = nn.SGD(model.state_dict(), lr=0.1)
    with pytest.raises(OptionError, match=r"the policy, not its config: pass amp=tfgrad\.amp"):
        nn.fit(model, [], nn.cross_entropy, sgd, amp=AMPConfig(enabled=True))
    with pytest.raises(OptionError, match="got str, which lacks"):
        nn.fit(model, [], nn.cross_entropy, sgd, amp="float16")


# ---- Deterministic mode through nn.fit ----
@pytest.fixture
def deterministic():
    det.reset_deterministic_state()
    yield
    det.reset_deterministic_state()


def test_deterministic_fit_is_bitwise_equal_across_runs(deterministic):
    with tg.use_backend("taichi", dispatch="auto"), det.deterministic(seed=SEED):
        assert fit_bits(False) == fit_bits(False)
        assert fit_bits(True) == fit_bits(True)


def test_deterministic_fit_is_bitwise_equal_across_thread_counts(deterministic):
    """Child processes with 1 and 2 threads (Taichi's and BLAS's), each a fresh run, against
    this process: the same losses, weights and scales, float32 and float16 with scaling."""
    children = []
    for threads in (1, 2):
        env = {**os.environ, "PYTHONHASHSEED": str(threads)}
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        script = os.path.join(os.path.dirname(__file__), "fit_determinism.py")
        children.append(subprocess.Popen(
            [sys.executable, script, str(threads)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    results = []
    for child in children:
        out, err = child.communicate(timeout=180)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    one, two = results
    assert one == two
    with tg.use_backend("taichi", dispatch="auto"), det.deterministic(seed=SEED):
        assert one == {"float32": fit_bits(False), "float16": fit_bits(True)}
