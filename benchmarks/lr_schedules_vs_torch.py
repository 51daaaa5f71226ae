"""tfgrad.nn's learning-rate schedules beside torch.optim.lr_scheduler's on the same settings:
the rate of every step, past the end of each schedule (CosineAnnealingLR climbs back). A check
of "PyTorch's formulas" against PyTorch itself; the tests check the written formulas.

    .venv-bench/bin/python benchmarks/lr_schedules_vs_torch.py [--steps 50]
"""

from __future__ import annotations

import argparse
import sys
import warnings

import tfgrad as tg
import tfgrad.nn as nn

CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.9, total_iters=6)),
    ("LinearLR", dict()),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    ("CosineAnnealingLR", dict(T_max=20)),
]


def torch_rates(name: str, kwargs: dict, steps: int, lr: float) -> list[float]:
    import torch

    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=lr)
    schedule = getattr(torch.optim.lr_scheduler, name)(optimizer, **kwargs)
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return out


def tfgrad_rates(name: str, kwargs: dict, steps: int, lr: float) -> list[float]:
    schedule = getattr(nn, name)(nn.SGD([tg.zeros(1)], lr=lr), **kwargs)
    return [schedule.step() for _ in range(steps)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # torch's "scheduler.step() before optimizer.step()"
    worst = 0.0
    print("| schedule | settings | steps | largest relative difference |\n|---|---|---|---|")
    for name, kwargs in CASES:
        ours = tfgrad_rates(name, kwargs, args.steps, 0.2)
        theirs = torch_rates(name, kwargs, args.steps, 0.2)
        rel = max(abs(a - b) / max(abs(b), 1e-300) for a, b in zip(ours, theirs) if b or a)
        worst = max(worst, rel)
        print(f"| {name} | {kwargs or 'defaults'} | {args.steps} | {rel:.1e} |")
    print(f"worst: {worst:.1e} (rounding of PyTorch's recursive updates)")
    return 0 if worst < 1e-12 else 1


if __name__ == "__main__":
    sys.exit(main())
