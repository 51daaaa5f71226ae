"""A tiny-size run of benchmarks/run.py (``--smoke``): every cell is checked correct.

It goes through the same code path as a full run: one worker subprocess per system, the
float64 references of benchmarks/peers.py, the markdown tables and the JSON record. Only the
tfgrad systems and numpy_floor run, so the peers (the ``bench`` extra) need not be installed.
Nothing here looks at a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
SYSTEMS = ["tfgrad-taichi", "tfgrad-jit", "tfgrad-numpy", "numpy_floor"]
RUN_CASES = ["tiny_chain", "mlp_step", "hessian_rosen_4", "hvp_ratio", "elementwise_big"]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    cmd = [
        sys.executable,
        str(RUN),
        "--smoke",
        "--only",
        ",".join(SYSTEMS),
        "--baseline",
        "numpy_floor",
        "--json",
        str(out),
    ]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"run.py --smoke failed (rc={p.returncode}):\n{p.stdout}\n{p.stderr}"
    return json.loads(out.read_text()), p.stdout


@pytest.mark.slow
@pytest.mark.parametrize("system", ["tfgrad-taichi", "tfgrad-jit", "tfgrad-numpy", "numpy_floor"])
def test_every_cell_is_checked_correct(smoke, system):
    record, _ = smoke
    assert record["smoke"] is True and record["cases"] == RUN_CASES
    (result,) = [r for r in record["results"] if r["system"] == system]
    assert "skipped" not in result, result.get("skipped")
    assert sorted(result["cases"]) == sorted(RUN_CASES)
    for case, cell in result["cases"].items():
        assert cell["status"] == "ok", (system, case, cell.get("error"), cell.get("err"))
        assert cell["err"] <= cell["tol"], (system, case, cell["err"])
        assert cell["dtypes"] == [cell["expected_dtype"]], (system, case, cell["dtypes"])
    # hvp_ratio timed and checked both of its steps
    assert {"grad", "hvp", "ratio"} <= set(result["cases"]["hvp_ratio"])


@pytest.mark.slow
def test_jit_cells_report_their_first_call(smoke):
    record, stdout = smoke
    (jit,) = [r for r in record["results"] if r["system"] == "tfgrad-jit"]
    # the first call traces and compiles: it is reported apart from the warm median
    assert all(c["first_s"] > 0 for k, c in jit["cases"].items() if k != "hvp_ratio")
    rows = [line for line in stdout.splitlines() if line.startswith("| tiny_chain")]
    assert len(rows) == 3 and "not built yet" not in "".join(rows)


@pytest.mark.slow
def test_ratio_table_and_record(smoke):
    record, stdout = smoke
    assert "Ratio to numpy_floor" in stdout
    assert record["ratios"]["numpy_floor"]["tiny_chain"] == 1.0
    assert set(record["ratios"]["tfgrad-taichi"]) == set(RUN_CASES)
    assert len(record["ratios"]["tfgrad-taichi"]["hvp_ratio"]) == 2  # gradient, HVP
    assert record["machine"]["reference_selfcheck"]  # the references checked themselves


# ---------------------------------------------------------------------------
# benchmarks/training_epoch.py --smoke: issue 12's training epochs (tfgrad's cells; torch's
# too where it is installed), two steps an epoch. Checks what is computed, not how fast.
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def training(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "training.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "training_epoch.py"), "--smoke", "--json",
           str(out)]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"training_epoch.py --smoke failed:\n{p.stdout}\n{p.stderr}"
    return json.loads(out.read_text()), p.stdout


def _training_cell(record, framework, model, mode):
    (cell,) = [
        c
        for c in record["cells"]
        if (c["framework"], c["model"], c["mode"]) == (framework, model, mode)
    ]
    return cell


@pytest.mark.slow
def test_training_epoch_cells(training):
    record, stdout = training
    assert record["smoke"] is True and record["args"]["threads"] == 1
    assert record["threads_env"]["OPENBLAS_NUM_THREADS"] == "1"  # the re-executed process
    assert record["missing"] == {}  # every cell ran
    for model in ("mlp", "cnn"):
        f32 = _training_cell(record, "tfgrad", model, "float32")
        fit = _training_cell(record, "tfgrad", model, "float32 (nn.fit)")
        # the hand-written loop and nn.fit train the same model on the same batches
        np.testing.assert_allclose(fit["warmup_losses"], f32["warmup_losses"], rtol=1e-6)
        np.testing.assert_allclose(fit["last_losses"], f32["last_losses"], rtol=1e-6)
        compiled = _training_cell(record, "tfgrad", model, "float32 (nn.fit, jit)")  # tg.jit
        np.testing.assert_allclose(compiled["warmup_losses"], f32["warmup_losses"], rtol=1e-6)
        np.testing.assert_allclose(compiled["last_losses"], f32["last_losses"], rtol=1e-6)
        for mode in ("float16", "bfloat16"):  # fit(jit, amp=AMPPolicy): the hand loop's losses
            hand = _training_cell(record, "tfgrad", model, mode)
            fused = _training_cell(record, "tfgrad", model, f"{mode} (nn.fit, jit)")
            np.testing.assert_allclose(fused["warmup_losses"], hand["warmup_losses"], rtol=1e-3)
            np.testing.assert_allclose(fused["last_losses"], hand["last_losses"], rtol=1e-3)
        for mode in ("float32", "float16", "bfloat16"):
            cell = _training_cell(record, "tfgrad", model, mode)
            assert cell["steps"] == 2 and len(cell["epochs_s"]) == 1
            losses = cell["warmup_losses"] + cell["last_losses"]
            assert all(np.isfinite(losses)) and losses[-1] < losses[0]  # it trains
            # the records keep residuals only: the parameters' own buffers (or views of them)
            # where a rule reads them, none where only their 16-bit casts are read
            assert cell["saved_bytes"] >= cell["activation_bytes"] > 0
            # autocast ran: its matmuls recorded 16-bit results (and the loss stays float32)
            assert set(cell["record_dtypes"]) == {"float32", mode}
            if mode != "float32":  # 16-bit activations (nn's biases join in the product's dtype)
                assert cell["activation_bytes"] < f32["activation_bytes"]
        if record["have_torch"]:
            assert record["agreement"][f"{model} float32"] < 1e-4
    assert "| goal |" in stdout


@pytest.mark.slow
def test_training_epoch_deterministic_mode(training):
    record, _ = training
    det = record["determinism"]
    (on,), (off,) = det["runs"]["on"], det["runs"]["off"]  # one child process per mode
    assert on.pop("deterministic") is True and off.pop("deterministic") is False
    assert set(on) == set(off) == set(det["models"]) == {"mlp", "cnn"}
    for d in det["models"].values():
        assert d["ratio"] > 0 and d["deterministic_epoch_s"] > 0


@pytest.mark.slow
def test_training_epoch_compare_prints_the_readme_tables(training, tmp_path):
    record, _ = training
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "training_epoch.py"), "--compare",
           str(path), str(path)]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| mlp | tfgrad | float32 |")]
    f32 = _training_cell(record, "tfgrad", "mlp", "float32")
    assert rows == [
        f"| mlp | tfgrad | float32 | {f32['median_epoch_s'] * 1e3:.1f} / "
        f"{f32['median_epoch_s'] * 1e3:.1f} | {f32['first_epoch_s']:.2f} / "
        f"{f32['first_epoch_s']:.2f} | {f32['saved_bytes'] / 1024:.0f} | "
        f"{f32['activation_bytes'] / 1024:.0f} | {f32['step_peak_traced_bytes'] / 1024:.0f} |"
    ]
