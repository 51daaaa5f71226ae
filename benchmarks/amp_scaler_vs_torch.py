"""tfgrad.amp.AMPPolicy beside torch.amp.GradScaler on the same steps (issue 12): the scale and
growth tracker after every step, the unscaled gradients, and whether each step was skipped,
for random sequences of clean and overflowing steps and several configurations. A check of
"PyTorch's semantics" against PyTorch itself (torch is not a test dependency, so the tests
use traces written by hand; this runs the real thing). Also the time of one step of each.

    .venv-bench/bin/python benchmarks/amp_scaler_vs_torch.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import tfgrad as tg
from tfgrad.amp import AMPConfig, AMPPolicy

CONFIGS = [
    dict(initial_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=3),
    dict(initial_scale=1.0, growth_factor=1.7, backoff_factor=0.3, growth_interval=1),
    dict(initial_scale=2.0**120, growth_factor=4.0, backoff_factor=0.5, growth_interval=2),
    dict(initial_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000),
]


def compare(cfg: dict, steps: int, overflow_rate: float, seed: int) -> tuple[int, float, float]:
    import torch

    rng = np.random.default_rng(seed)
    bad = rng.random(steps) < overflow_rate
    coefficients = rng.standard_normal((steps, 5)).astype(np.float32)
    coefficients[bad, rng.integers(0, 5, bad.sum())] = rng.choice([np.inf, -np.inf, np.nan])

    p = torch.zeros(5, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.0)
    scaler = torch.amp.GradScaler(
        "cpu", init_scale=cfg["initial_scale"], growth_factor=cfg["growth_factor"],
        backoff_factor=cfg["backoff_factor"], growth_interval=cfg["growth_interval"],
    )  # fmt: skip
    policy = AMPPolicy(AMPConfig(enabled=True, **cfg))
    w = tg.zeros((5,), "float32")
    mismatches, torch_time, tfgrad_time = 0, 0.0, 0.0
    for i in range(steps):
        c = coefficients[i]
        start = time.perf_counter()
        opt.zero_grad()
        scaler.scale((p * torch.from_numpy(c)).sum()).backward()
        scaler.unscale_(opt)
        torch_grad = p.grad.numpy().copy()
        skipped_torch = sum(v.item() for v in scaler._found_inf_per_device(opt).values()) > 0
        scaler.step(opt)
        scaler.update()
        torch_time += time.perf_counter() - start

        start = time.perf_counter()
        with tg.GradientTape() as tape:
            w_ = tape.watch(w)
            scaled = policy.scale_loss(tg.sum(w_ * tg.tensor(c)))
        (g,), found_inf = policy.unscale_and_check(tape.gradient(scaled, [w_]))
        policy.update_scale(found_inf)
        tfgrad_time += time.perf_counter() - start

        same = (
            policy.scale == scaler.get_scale()
            and policy.growth_tracker == int(scaler._growth_tracker.item())
            and found_inf == skipped_torch
            and np.array_equal(g.numpy(), torch_grad, equal_nan=True)
        )
        mismatches += not same
        if not same and mismatches <= 3:
            print(f"  step {i}: tfgrad scale {policy.scale} tracker {policy.growth_tracker} "
                  f"found_inf {found_inf}; torch {scaler.get_scale()} "
                  f"{int(scaler._growth_tracker.item())} {skipped_torch}")  # fmt: skip
    return mismatches, tfgrad_time / steps * 1e6, torch_time / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("torch is not installed: run this with the bench venv (pip install -e .[bench])")
    print(f"torch {torch.__version__}; {args.steps} steps per row")
    print(f"{'config':70} {'overflows':>9} {'mismatch':>8} {'tfgrad us':>9} {'torch us':>8}")
    failed = False
    for k, cfg in enumerate(CONFIGS):
        for rate in (0.001, 0.05, 0.5):
            bad, ours, theirs = compare(cfg, args.steps, rate, seed=k)
            failed |= bad > 0
            shown = ", ".join(f"{key}={value:g}" for key, value in cfg.items())
            print(f"{shown:70} {rate:9.3f} {bad:8d} {ours:9.1f} {theirs:8.1f}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
