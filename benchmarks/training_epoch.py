"""One training epoch on the digits, tfgrad beside PyTorch in the same process: float32,
float16 with loss scaling and bfloat16, for an MLP and a small CNN (issue 12's measure section).

    PYTHONPATH=.:widgets /work/main/.venv-bench/bin/python benchmarks/training_epoch.py \
        [--epochs 7] [--det-rounds 3] [--json FILE] [--smoke]

The models, the same in both frameworks, starting from the same weights (PyTorch's default
initialisation with ``torch.manual_seed(0)``, copied into tfgrad by ``load_state_dict``):

- ``mlp``: Linear 64->128, ReLU, Linear 128->10;
- ``cnn``: Conv 1->8 3x3 padding 1, ReLU, Conv 8->16 3x3 padding 1, ReLU, Flatten,
  Linear 1024->10, on the (1, 8, 8) images.

Data: the fixed train split of ``tfgrad.nn`` (``nn.train_test_split(*nn.load_digits())``,
default ``Generator(0)``): 1,347 images in batches of 64 in a fixed order (22 steps an epoch,
the last of 3 images). Loss: mean cross-entropy; optimiser: SGD, lr 0.05, momentum 0.9 (the
same rule in both, PyTorch's). Every step reads the loss back (``.item()``), as a loop that
logs it does.

The modes:

- torch: ``float32``; ``float16``: ``torch.autocast("cpu", dtype=torch.float16)`` and
  ``torch.amp.GradScaler("cpu")``; ``bfloat16``: ``torch.autocast("cpu", dtype=torch.bfloat16)``,
  no scaler (as PyTorch advises).
- tfgrad, one hand-written loop for all three (a ``GradientTape`` over the parameter dict,
  ``nn.functional_call``, ``nn.cross_entropy``, ``nn.SGD``): ``float32``; ``float16``:
  ``tfgrad.amp.AMPPolicy(AMPConfig(enabled=True))`` (GradScaler's defaults) with its autocast,
  ``scale_loss``, ``unscale_and_check`` and ``update_scale``; ``bfloat16``:
  ``tfgrad.amp.autocast("bfloat16")``, no scaling. Also ``float32 (nn.fit)``: the same epoch
  through ``nn.fit`` (``progress=False``, ``jit=False``: op by op), the library's own loop; and
  ``float32 (nn.fit, jit)``: ``nn.fit(..., jit=True)``, the step compiled by ``tfgrad.jit``
  (forward, sweep and SGD update in one program per batch shape; where fit has the option).

What is measured:

- **Time per epoch**: one warm-up epoch per cell first (``first_epoch_s``: Taichi's compilation
  and first calls included, reported apart), then ``--epochs`` epochs of every cell, interleaved
  (each round runs every cell once, starting one cell later than the round before), and the
  median. Both frameworks run with their default threads (2 on this machine).
- **Saved bytes** (the issue's "peak activation memory"): during one step's forward pass, the
  bytes of the tensors kept for the backward pass. torch: ``saved_tensors_hooks``, the sum of
  ``nbytes`` of the unique storages packed. tfgrad: ``GradientTape.saved_bytes()`` at the end of
  the forward pass (every record's inputs and output, each buffer once). ``activation_bytes``
  leaves out the parameters' own buffers (their 16-bit casts count: they are made per step);
  the batch's inputs and labels count in both. The two frameworks keep different things (torch
  saves what each backward formula needs, tfgrad's records keep every input and output), so
  the goal compares each framework's mixed precision with its own float32.
- **Process peak RSS** (``ru_maxrss``) after each cell's warm-up: monotonic over the process,
  so it shows only which cell first raised the high-water mark; at these sizes (~1 MB of
  activations) it is dominated by libraries and compiled kernels.
- **Deterministic mode**: tfgrad float32 epochs with ``tfgrad.determinism.set_deterministic(True,
  seed=0)`` against the default (initial weights drawn by NumPy from seed 0, the same in every
  child), each mode in child processes of its own (alternating, ``--det-rounds`` of each:
  BLAS's and Taichi's thread pools take each other's cores when mixed in one process); the
  ratio of the medians of the rounds' medians, and whether each mode's children ended with
  trained weights equal bit for bit.

The float32 loss histories of the two frameworks are compared after the warm-up epoch (the
same data, weights and update rule: they agree to float32 rounding), which checks that both
train the same model. Nothing here is a test; ``--smoke`` (2 steps an epoch, 1 timed epoch, 1
determinism round) is what tests/test_benchmarks_smoke.py runs, and its times mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import tfgrad as tg
import tfgrad.nn as nn


def _feature(name: str):
    """``tfgrad.<name>`` from this tree, or None where the tree has no such module (an editable
    install's finder would otherwise bring it in from the installed checkout)."""
    try:
        module = importlib.import_module(f"tfgrad.{name}")
    except ImportError:
        return None
    package = Path(tg.__file__).resolve().parent
    return module if package in Path(module.__file__).resolve().parents else None


amp = _feature("amp")
determinism = _feature("determinism")

BATCH, LR, MOMENTUM = 64, 0.05, 0.9
MODELS = ("mlp", "cnn")
MODES = ("float32", "float16", "bfloat16")
HERE = Path(__file__).resolve()


# ---------------------------------------------------------------------------
# Data: the fixed digits train split, as NumPy arrays per model.
# ---------------------------------------------------------------------------
def digits(smoke: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    x, y = nn.load_digits()
    x_train, _, y_train, _ = nn.train_test_split(x, y)
    if smoke:
        x_train, y_train = x_train[: 2 * BATCH], y_train[: 2 * BATCH]
    return {
        "mlp": (x_train, y_train),
        "cnn": (np.ascontiguousarray(x_train.reshape(-1, 1, 8, 8)), y_train),
    }


def has_fit_jit() -> bool:
    """Whether this tree's ``nn.fit`` takes ``jit=`` (a compiled step)."""
    import inspect

    return "jit" in inspect.signature(nn.fit).parameters


def has_conv() -> bool:
    return hasattr(nn, "Conv2d")


# ---------------------------------------------------------------------------
# tfgrad's models, loop and memory.
# ---------------------------------------------------------------------------
def tfgrad_model(name: str) -> nn.Module:
    if name == "mlp":
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(1024, 10),
    )  # fmt: skip


def tfgrad_autocast(mode: str, policy):
    if mode == "float32":
        return contextlib.nullcontext()
    if policy is not None:
        return policy.autocast()
    return amp.autocast(mode)


def tfgrad_forward(model, params, x, y, mode, policy):
    """The tape over the parameters and the loss (both unscaled and as the sweep's target)."""
    tape = tg.GradientTape()
    with tape:
        watched = {k: tape.watch(v) for k, v in params.items()}
        with tfgrad_autocast(mode, policy):
            loss = nn.cross_entropy(nn.functional_call(model, watched, x), y)
        target = policy.scale_loss(loss) if policy is not None else loss
    return tape, watched, loss, target


class TfgradCell:
    """One (model, mode) of tfgrad: its own model, optimiser and (float16) policy."""

    def __init__(
        self, model: str, mode: str, weights: dict, data, fit: bool = False, jit: bool = False
    ):
        self.model = tfgrad_model(model)
        self.model.load_state_dict({k: tg.tensor(v) for k, v in weights.items()})
        self.opt = nn.SGD(self.model.state_dict(), lr=LR, momentum=MOMENTUM)
        self.mode, self.fit, self.jit = mode, fit, jit
        self.policy = amp.AMPPolicy(amp.AMPConfig(enabled=True)) if mode == "float16" else None
        if fit and mode == "bfloat16":  # fit's only way to autocast: a policy (it also scales)
            self.policy = amp.AMPPolicy(amp.AMPConfig(enabled=True, target_dtype="bfloat16"))
        self.batches = nn.batches(*data, batch_size=BATCH)

    def step(self, x, y) -> float:
        params = self.model.state_dict()
        tape, watched, loss, target = tfgrad_forward(
            self.model, params, x, y, self.mode, self.policy
        )
        grads = tape.gradient(target, watched)
        found_inf = False
        if self.policy is not None:
            grads, found_inf = self.policy.unscale_and_check(grads)
        if not found_inf:
            self.model.load_state_dict(self.opt.step(params, grads))
        if self.policy is not None:
            self.policy.update_scale(found_inf)
        return loss.item()

    def epoch(self) -> list[float]:
        if self.fit:
            history = nn.fit(
                self.model,
                self.batches,
                nn.cross_entropy,
                self.opt,
                epochs=1,
                progress=False,
                **({"jit": self.jit} if has_fit_jit() else {}),
                **({"amp": self.policy} if self.policy is not None else {}),
            )
            return history.loss
        return [self.step(x, y) for x, y in self.batches]

    def saved(self) -> dict:
        x, y = next(iter(self.batches))
        tape, *_ = tfgrad_forward(self.model, self.model.state_dict(), x, y, self.mode, self.policy)
        out = {
            "saved_bytes": tape.saved_bytes(),
            "activation_bytes": tape.saved_bytes(watched=False),
            "record_dtypes": sorted({r.dtype for r in tape.records}),  # what autocast chose
        }
        del tape
        # the peak of host memory over one whole step (NumPy's allocations, which tracemalloc
        # sees: on a CPU every tfgrad buffer is a NumPy array), above what was held before it
        tracemalloc.start()
        self.step(x, y)
        out["step_peak_traced_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.model.state_dict().items()}


# ---------------------------------------------------------------------------
# PyTorch's.
# ---------------------------------------------------------------------------
def torch_model(name: str):
    import torch.nn as tnn

    if name == "mlp":
        return tnn.Sequential(tnn.Linear(64, 128), tnn.ReLU(), tnn.Linear(128, 10))
    return tnn.Sequential(
        tnn.Conv2d(1, 8, 3, padding=1),
        tnn.ReLU(),
        tnn.Conv2d(8, 16, 3, padding=1),
        tnn.ReLU(),
        tnn.Flatten(),
        tnn.Linear(1024, 10),
    )


def initial_weights(name: str) -> dict[str, np.ndarray]:
    """PyTorch's default initialisation from seed 0, as NumPy arrays by parameter name."""
    import torch

    torch.manual_seed(0)
    return {k: v.detach().numpy().copy() for k, v in torch_model(name).state_dict().items()}


def initial_weights_without_torch(name: str) -> dict[str, np.ndarray]:
    """The same names and shapes drawn from tfgrad's initialisers (no torch installed)."""
    model = tfgrad_model(name)
    rng = np.random.default_rng(0)
    out = {}
    for k, v in model.state_dict().items():
        fan_in = int(np.prod(v.shape[1:])) if len(v.shape) > 1 else None
        if fan_in is None:  # a bias: the fan-in of the weight before it
            fan_in = int(np.prod(out[k.replace("bias", "weight")].shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)
        out[k] = rng.uniform(-bound, bound, v.shape).astype(np.float32)
    return out


class TorchCell:
    def __init__(self, model: str, mode: str, weights: dict, data):
        import torch

        self.torch = torch
        self.model = torch_model(model)
        self.model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM)
        self.mode = mode
        self.dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(mode)
        self.scaler = torch.amp.GradScaler("cpu") if mode == "float16" else None
        self.data = data

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return self.torch.autocast("cpu", dtype=self.dtype)

    def batches(self):
        x, y = self.data
        for i in range(0, len(x), BATCH):
            yield self.torch.from_numpy(x[i : i + BATCH]), self.torch.from_numpy(y[i : i + BATCH])

    def step(self, x, y) -> float:
        import torch.nn.functional as F

        self.opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss = F.cross_entropy(self.model(x), y)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        return loss.item()

    def epoch(self) -> list[float]:
        return [self.step(x, y) for x, y in self.batches()]

    def saved(self) -> dict:
        import torch.nn.functional as F

        parameters = {p.untyped_storage().data_ptr() for p in self.model.parameters()}
        storages: dict[int, int] = {}

        def pack(t):
            s = t.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
            return t

        x, y = next(self.batches())
        with self.torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with self.autocast():
                F.cross_entropy(self.model(x), y)
        return {
            "saved_bytes": sum(storages.values()),
            "activation_bytes": sum(n for p, n in storages.items() if p not in parameters),
        }


# ---------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------
def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cells_to_run(have_torch: bool, models) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """The (framework, model, mode) cells this tree can run, and why the others cannot."""
    cells, missing = [], {}
    for model in models:
        if model == "cnn" and not has_conv():
            missing[f"tfgrad {model}"] = "nn.Conv2d not on this tree"
        for mode in MODES:
            if have_torch:
                cells.append(("torch", model, mode))
            if model == "cnn" and not has_conv():
                continue
            if mode != "float32" and amp is None:
                missing[f"tfgrad {model} {mode}"] = "tfgrad.amp not on this tree"
                continue
            cells.append(("tfgrad", model, mode))
        if model == "mlp" or has_conv():
            cells.append(("tfgrad", model, "float32 (nn.fit)"))
            if has_fit_jit():
                cells.append(("tfgrad", model, "float32 (nn.fit, jit)"))
                if amp is not None:  # the same compiled step under fit(amp=AMPPolicy(...))
                    cells.append(("tfgrad", model, "float16 (nn.fit, jit)"))
                    cells.append(("tfgrad", model, "bfloat16 (nn.fit, jit)"))
            else:
                missing[f"tfgrad {model} float32 (nn.fit, jit)"] = "fit(jit=) not on this tree"
    return cells, missing


def make_cell(framework, model, mode, weights, data):
    if framework == "torch":
        return TorchCell(model, mode, weights, data)
    if mode == "float32 (nn.fit)":
        return TfgradCell(model, "float32", weights, data, fit=True)
    if mode.endswith("(nn.fit, jit)"):
        return TfgradCell(model, mode.split(" ")[0], weights, data, fit=True, jit=True)
    return TfgradCell(model, mode, weights, data)


def run_epochs(args) -> dict:
    try:
        import torch

        have_torch = True
        if args.threads > 0:
            torch.set_num_threads(args.threads)
    except ImportError:
        have_torch = False
    data = digits(args.smoke)
    cells, missing = cells_to_run(have_torch, args.models)
    weights = {
        m: initial_weights(m) if have_torch else initial_weights_without_torch(m)
        for m in MODELS
        if m == "mlp" or has_conv() or have_torch
    }
    objects, results = {}, {}
    for key in cells:
        framework, model, mode = key
        rss0 = _maxrss_mb()
        cell = make_cell(framework, model, mode, weights[model], data[model])
        first, losses = _timed(cell.epoch)  # warm-up: compiles, first calls
        objects[key] = cell
        results[key] = {
            "framework": framework,
            "model": model,
            "mode": mode,
            "first_epoch_s": first,
            "warmup_losses": losses,
            "steps": len(losses),
            "maxrss_mb_after_warmup": _maxrss_mb(),
            "maxrss_growth_mb": _maxrss_mb() - rss0,
            "epochs_s": [],
        }
    for r in range(args.epochs):  # interleaved rounds, each starting one cell later
        order = cells[r % len(cells) :] + cells[: r % len(cells)]
        for key in order:
            seconds, losses = _timed(objects[key].epoch)
            results[key]["epochs_s"].append(seconds)
            results[key]["last_losses"] = losses
    for key, cell in objects.items():
        res = results[key]
        res["median_epoch_s"] = statistics.median(res["epochs_s"])
        res["median_step_ms"] = res["median_epoch_s"] / res["steps"] * 1e3
        res["compile_s"] = max(res["first_epoch_s"] - res["median_epoch_s"], 0.0)
        if "(nn.fit" not in key[2]:
            res.update(cell.saved())
        if cell.__class__ is TorchCell and cell.scaler is not None:
            res["final_scale"] = cell.scaler.get_scale()
        if cell.__class__ is TfgradCell and cell.policy is not None:
            metrics = cell.policy.stability_metrics()
            res["final_scale"] = metrics.current_scale
            res["skipped_steps"] = metrics.skipped_steps
    return {"cells": list(results.values()), "missing": missing, "have_torch": have_torch}


# ---------------------------------------------------------------------------
# Deterministic mode: child processes.
# ---------------------------------------------------------------------------
def det_worker(args) -> None:
    """Child process: tfgrad float32 epochs of every model, deterministic mode on or off."""
    _init_tfgrad(args.threads)
    if args.det_worker == "on":
        determinism.set_deterministic(True, seed=0)
    data = digits(args.smoke)
    out = {}
    for model in args.models:
        if model == "cnn" and not has_conv():
            continue
        weights = initial_weights_without_torch(model)  # the same in every child; no torch
        cell = TfgradCell(model, "float32", weights, data[model])
        first, _ = _timed(cell.epoch)
        times = [_timed(cell.epoch)[0] for _ in range(args.epochs)]
        digest = hashlib.sha256()
        for k, v in sorted(cell.weights().items()):
            digest.update(k.encode() + np.ascontiguousarray(v).tobytes())
        out[model] = {
            "first_epoch_s": first,
            "epochs_s": times,
            "median_epoch_s": statistics.median(times),
            "weights_sha256": digest.hexdigest(),
        }
    out["deterministic"] = determinism.is_deterministic()  # what the child ran in
    print(json.dumps(out))


def run_determinism(args) -> dict | None:
    if determinism is None:
        return None
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    for r in range(args.det_rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            cmd = [
                sys.executable,
                str(HERE),
                "--models",
                ",".join(args.models),
                "--det-worker",
                mode,
                "--epochs",
                str(args.epochs),
                "--threads",
                str(args.threads),
            ]
            if args.smoke:
                cmd.append("--smoke")
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                raise RuntimeError(f"determinism worker {mode} failed:\n{p.stdout}\n{p.stderr}")
            runs[mode].append(json.loads(p.stdout.strip().splitlines()[-1]))
    out = {"rounds": args.det_rounds, "runs": runs, "models": {}}
    for model in (m for m in args.models if m in runs["off"][0]):
        med = {m: statistics.median(run[model]["median_epoch_s"] for run in runs[m]) for m in runs}
        out["models"][model] = {
            "default_epoch_s": med["off"],
            "deterministic_epoch_s": med["on"],
            "ratio": med["on"] / med["off"],
            "deterministic_bitwise_equal_across_processes": len(
                {run[model]["weights_sha256"] for run in runs["on"]}
            )
            == 1,
            "default_bitwise_equal_across_processes": len(
                {run[model]["weights_sha256"] for run in runs["off"]}
            )
            == 1,
        }
    return out


# ---------------------------------------------------------------------------
# Goals and the report.
# ---------------------------------------------------------------------------
def _cell(record, framework, model, mode):
    for c in record["cells"]:
        if (c["framework"], c["model"], c["mode"]) == (framework, model, mode):
            return c
    return None


def agreement(record) -> dict:
    """max |loss_tfgrad - loss_torch| / |loss_torch| over the warm-up epoch's steps, per cell."""
    out = {}
    for c in record["cells"]:
        if c["framework"] != "tfgrad":
            continue
        mode = "float32" if c["mode"].startswith("float32") else c["mode"]
        t = _cell(record, "torch", c["model"], mode)
        if t is None:
            continue
        a, b = np.array(c["warmup_losses"]), np.array(t["warmup_losses"])
        out[f"{c['model']} {c['mode']}"] = float(np.max(np.abs(a - b) / np.abs(b)))
    return out


def goals(record) -> list[dict]:
    rows = []
    for model in MODELS:
        f32 = _cell(record, "tfgrad", model, "float32")
        for mode in ("float16", "bfloat16"):
            low = _cell(record, "tfgrad", model, mode)
            if f32 is None or low is None:
                continue
            mem = f32["activation_bytes"] / low["activation_bytes"]
            rows.append(
                {
                    "goal": f"{model} {mode}: activation memory >= 1.5x lower than float32",
                    "value": mem,
                    "met": mem >= 1.5,
                    "text": f"{mem:.2f}x ({low['activation_bytes'] / 1024:.0f} vs "
                    f"{f32['activation_bytes'] / 1024:.0f} KiB)",
                }
            )
            for suffix in ("", " (nn.fit, jit)"):  # the hand loop, the compiled fit
                slow = _cell(record, "tfgrad", model, mode + suffix)
                base = _cell(record, "tfgrad", model, "float32" + suffix)
                if slow is None or base is None:
                    continue
                goal = f"{model} {mode}{suffix}: epoch no slower than float32 (<= 1.0x)"
                rows.append(_epoch_ratio(goal, slow, base, 1.0))
        fits = [f"{m} (nn.fit, jit)" for m in MODES]
        for mode in (*MODES, *fits):  # the compiled fit: the same epoch
            ours = _cell(record, "tfgrad", model, mode)
            theirs = _cell(record, "torch", model, mode.split(" ")[0])
            if ours is None or theirs is None:
                continue
            goal = f"{model} {mode}: tfgrad epoch <= 1.5x PyTorch's"
            rows.append(_epoch_ratio(goal, ours, theirs, 1.5))
    return rows


def _epoch_ratio(goal: str, cell: dict, against: dict, limit: float) -> dict:
    """A goal row: ``cell``'s median epoch over ``against``'s, met at most ``limit``."""
    ratio = cell["median_epoch_s"] / against["median_epoch_s"]
    return {
        "goal": goal,
        "value": ratio,
        "met": ratio <= limit,
        "text": f"{ratio:.2f}x ({cell['median_epoch_s'] * 1e3:.0f} vs "
        f"{against['median_epoch_s'] * 1e3:.0f} ms)",
    }


def report(record) -> str:
    lines = [
        f"tfgrad {record['tfgrad_commit']}, torch {record['versions'].get('torch')}, threads "
        f"{record['args']['threads'] or 'default'}; load average "
        f"{record['loadavg_before']} before, {record['loadavg_after']} after",
        "",
        "| model | framework | mode | epoch [ms] (median) | step [ms] | first epoch [s] | "
        "saved [KiB] | activations [KiB] | step peak, traced [KiB] | loss after warm-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in record["cells"]:
        saved = f"{c['saved_bytes'] / 1024:.0f}" if "saved_bytes" in c else "—"
        act = f"{c['activation_bytes'] / 1024:.0f}" if "activation_bytes" in c else "—"
        peak = c.get("step_peak_traced_bytes")
        peak = "—" if peak is None else f"{peak / 1024:.0f}"
        lines.append(
            f"| {c['model']} | {c['framework']} | {c['mode']} | {c['median_epoch_s'] * 1e3:.1f} | "
            f"{c['median_step_ms']:.2f} | {c['first_epoch_s']:.2f} | {saved} | {act} | {peak} | "
            f"{c['warmup_losses'][-1]:.4f} |"
        )
    for k, why in record["missing"].items():
        lines.append(f"| {k} | not run: {why} |")
    lines += [
        "",
        "Loss agreement with torch after the warm-up epoch (max relative difference "
        "per step): " + ", ".join(f"{k} {v:.1e}" for k, v in record["agreement"].items()),
    ]
    det = record.get("determinism")
    if det:
        lines += [
            "",
            "| deterministic mode (tfgrad float32) | default [ms] | deterministic [ms] "
            "| ratio | bitwise equal across processes (det / default) |",
            "|---|---|---|---|---|",
        ]
        for model, d in det["models"].items():
            lines.append(
                f"| {model} | {d['default_epoch_s'] * 1e3:.1f} | "
                f"{d['deterministic_epoch_s'] * 1e3:.1f} "
                f"| {d['ratio']:.2f}x | {d['deterministic_bitwise_equal_across_processes']} / "
                f"{d['default_bitwise_equal_across_processes']} |"
            )
    lines += ["", "| goal | value | |", "|---|---|---|"]
    for g in record["goals"]:
        lines.append(f"| {g['goal']} | {g['text']} | {'met' if g['met'] else '**missed**'} |")
    return "\n".join(lines)


def compare(paths: list[str]) -> str:
    """The records' goals, cells and deterministic-mode figures side by side (README tables)."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    names = [f"run {i + 1}" for i in range(len(records))]
    lines = ["| goal | " + " | ".join(names) + " | |", "|---|" + "---|" * len(names) + "---|"]
    for g in records[0]["goals"]:
        rows = [next((h for h in r["goals"] if h["goal"] == g["goal"]), None) for r in records]
        met = [h is not None and h["met"] for h in rows]
        verdict = (
            "met"
            if all(met)
            else "**missed**"
            if not any(met)
            else "met in " + ", ".join(n for n, m in zip(names, met) if m)
        )
        texts = [h["text"] if h else "—" for h in rows]
        lines.append(f"| {g['goal']} | " + " | ".join(texts) + f" | {verdict} |")
    lines += [
        "",
        "| model | framework | mode | epoch [ms] | first epoch [s] | saved [KiB] | "
        "activations [KiB] | step peak, traced [KiB] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in records[0]["cells"]:
        key = (c["framework"], c["model"], c["mode"])
        same = [_cell(r, *key) for r in records]
        ms = " / ".join(f"{x['median_epoch_s'] * 1e3:.1f}" if x else "—" for x in same)
        first = " / ".join(f"{x['first_epoch_s']:.2f}" if x else "—" for x in same)

        def kib(field):
            vals = [f"{x[field] / 1024:.0f}" for x in same if x and field in x]
            return " / ".join(dict.fromkeys(vals)) if vals else "—"  # each distinct figure once

        lines.append(
            f"| {c['model']} | {c['framework']} | {c['mode']} | {ms} | {first} | "
            f"{kib('saved_bytes')} | {kib('activation_bytes')} | "
            f"{kib('step_peak_traced_bytes')} |"
        )
    if all(r.get("determinism") for r in records):
        lines += [
            "",
            "| deterministic mode, tfgrad float32 | default [ms] | deterministic [ms] | "
            "ratio | bitwise equal across processes (det / default) |",
            "|---|---|---|---|---|",
        ]
        for model in records[0]["determinism"]["models"]:
            ds = [r["determinism"]["models"][model] for r in records]
            lines.append(
                f"| {model} | "
                + " / ".join(f"{d['default_epoch_s'] * 1e3:.1f}" for d in ds)
                + " | "
                + " / ".join(f"{d['deterministic_epoch_s'] * 1e3:.1f}" for d in ds)
                + " | "
                + " / ".join(f"{d['ratio']:.2f}x" for d in ds)
                + " | "
                + " / ".join(
                    f"{d['deterministic_bitwise_equal_across_processes']}, "
                    f"{d['default_bitwise_equal_across_processes']}"
                    for d in ds
                )
                + " |"
            )
    loads = "; ".join(
        f"{n}: {r['loadavg_before']} before, {r['loadavg_after']} after"
        for n, r in zip(names, records)
    )
    lines += [
        "",
        f"Load average ({loads}); commits " + ", ".join(str(r["tfgrad_commit"]) for r in records),
    ]
    return "\n".join(lines)


def _pin_threads(n: int) -> None:
    """Run with ``n`` threads in every pool: BLAS and OpenMP read their variables when they load
    (NumPy is imported already), so the process re-executes itself once with them set."""
    want = {k: str(n) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if any(os.environ.get(k) != v for k, v in want.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **want})


def _init_tfgrad(threads: int) -> None:
    tg.init("taichi", **({"cpu_max_num_threads": threads} if threads > 0 else {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7, help="timed epochs per cell")
    parser.add_argument("--det-rounds", type=int, default=3, help="child processes per mode")
    parser.add_argument("--json", help="write the record to this file")
    parser.add_argument("--smoke", action="store_true", help="2 steps an epoch, 1 epoch, 1 round")
    parser.add_argument("--models", default="mlp,cnn", help="a subset of mlp,cnn")
    parser.add_argument("--no-det", action="store_true", help="skip deterministic mode")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for BLAS, OpenMP (torch) and Taichi; 0: each library's default",
    )
    parser.add_argument("--compare", nargs="+", metavar="JSON", help="print records side by side")
    parser.add_argument("--det-worker", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare:
        print(compare(args.compare))
        return
    args.models = [m for m in args.models.split(",") if m]
    if any(m not in MODELS for m in args.models):
        parser.error(f"--models: a subset of {','.join(MODELS)}, got {args.models}")
    if args.threads > 0:
        _pin_threads(args.threads)
    if args.smoke:
        args.epochs, args.det_rounds = 1, 1
    if args.det_worker:
        det_worker(args)
        return
    _init_tfgrad(args.threads)
    versions = {
        "tfgrad": tg.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        import taichi

        versions["taichi"] = ".".join(map(str, taichi.__version__))
    except (ImportError, TypeError):
        pass
    record = {
        "benchmark": "training_epoch",
        "smoke": args.smoke,
        "args": vars(args),
        "tfgrad_commit": _commit(),
        "loadavg_before": _loadavg(),
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "versions": versions,
        "batch": BATCH,
        "optimizer": f"SGD lr={LR} momentum={MOMENTUM}",
        "maxrss_mb_start": _maxrss_mb(),
    }
    record.update(run_epochs(args))
    if record["have_torch"]:
        import torch

        versions["torch"] = torch.__version__
        record["torch_threads"] = torch.get_num_threads()
    record["threads_env"] = {
        k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    }
    record["determinism"] = None if args.no_det else run_determinism(args)
    record["agreement"] = agreement(record)
    record["goals"] = goals(record)
    record["loadavg_after"] = _loadavg()
    record["maxrss_mb_end"] = _maxrss_mb()
    print(report(record))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
