"""The exact Hessian of Rosenbrock at n = 32, 128 and 1024: tfgrad eager (``tg.hessian``, the
default Taichi backend) beside ``torch.func.hessian`` in the same process (issue 11's first row).

    .venv-bench/bin/python benchmarks/hessian_sizes.py [--sizes 32,128,1024] [--runs 15]

Per size: one warm-up call each, then the two interleaved, ``--runs`` times; the medians, the
ratio of medians, and a check that both Hessians equal the analytic one (peers.py's
``np_rosen_hess``) to 1e-9 relative. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import peers

import tfgrad as tg


def _rosen(x):
    return tg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32,128,1024")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    import torch

    tg.init("taichi")
    hess_tg = tg.hessian(_rosen)
    hess_torch = torch.func.hessian(lambda t: peers.rosen(torch, t))
    print(f"torch {torch.__version__} (threads {torch.get_num_threads()}), tfgrad eager, taichi")
    print("| n | tfgrad [ms] | torch.func.hessian [ms] | ratio |")
    print("|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        x = np.random.default_rng(n).uniform(-1.5, 1.5, n)
        xt, xtorch = tg.tensor(x), torch.tensor(x)
        reference = peers.np_rosen_hess(x)
        runs = {"tfgrad": [], "torch": []}
        outs = {"tfgrad": hess_tg(xt).numpy(), "torch": hess_torch(xtorch).numpy()}
        for _ in range(args.runs):
            runs["tfgrad"].append(_timed(lambda: hess_tg(xt))[0])
            runs["torch"].append(_timed(lambda: hess_torch(xtorch))[0])
        for name, out in outs.items():
            err = np.abs(out - reference).max() / np.abs(reference).max()
            assert err <= 1e-9, f"{name} at n={n}: relative error {err:.1e}"
        med = {k: statistics.median(v) for k, v in runs.items()}
        print(f"| {n} | {med['tfgrad'] * 1e3:.3g} | {med['torch'] * 1e3:.3g} | "
              f"{med['tfgrad'] / med['torch']:.3f}× |")  # fmt: skip


if __name__ == "__main__":
    main()
