"""Eager ``tfgrad.hessian`` of Rosenbrock, one basis tangent per push against all at once.

``hessian`` is ``jacfwd(grad(f))``: ``f``'s gradient is recorded on a tape once, then the basis
tangents are pushed through the recorded ops. ``chunk_size=1`` pushes them one by one (the path
before batching); the default pushes them all in one batched pass (:mod:`tfgrad.batching`).
Both run interleaved, after a warm-up, on each backend; the median of the runs is reported, and
``torch.func.hessian`` too when an interpreter with torch is found (the ratio is to torch).

    python benchmarks/hessian_batched.py [--runs 30] [--sizes 32 128] [--torch PYTHON]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import tfgrad as tg

ROOT = Path(__file__).resolve().parent.parent
TORCH_PYTHONS = ["/tmp/benchvenv/bin/python", str(ROOT / ".venv-bench/bin/python")]
WARMUP = 3

TORCH_SCRIPT = """
import json, statistics, sys, time
import numpy as np, torch
sizes, runs, seed = json.loads(sys.argv[1])
def rosen(x):
    return torch.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
hess = torch.func.hessian(rosen)
out = {}
for n in sizes:
    x = torch.from_numpy(np.random.default_rng(seed + n).uniform(-2.0, 2.0, n))
    for _ in range(5):
        hess(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        hess(x)
        times.append(time.perf_counter() - start)
    out[n] = statistics.median(times)
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "ms": out}))
"""


def rosen(x):
    return tg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_hessian(x: np.ndarray) -> np.ndarray:
    n = len(x)
    h = np.zeros((n, n))
    i = np.arange(n - 1)
    h[i, i] += 1200 * x[:-1] ** 2 - 400 * x[1:] + 2
    h[i, i + 1] = h[i + 1, i] = -400 * x[:-1]
    h[i + 1, i + 1] += 200
    return h


def point(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + n).uniform(-2.0, 2.0, n)


def time_tfgrad(backend: str, sizes: list[int], runs: int, seed: int) -> dict[int, dict]:
    tg.init(backend)
    out = {}
    for n in sizes:
        x = tg.tensor(point(n, seed))
        paths = {"unbatched": tg.hessian(rosen, chunk_size=1), "batched": tg.hessian(rosen)}
        results = {name: h(x).numpy() for name, h in paths.items()}
        # Same matrix both ways (bit for bit, as a rule), and the exact one.
        assert np.array_equal(results["batched"], results["unbatched"]), backend
        np.testing.assert_allclose(results["batched"], rosen_hessian(x.numpy()), rtol=1e-12)
        for h in paths.values():
            for _ in range(WARMUP):
                h(x)
        times = {name: [] for name in paths}
        for _ in range(runs):  # interleaved, so load from elsewhere hits both alike
            for name, h in paths.items():
                start = time.perf_counter()
                h(x)
                times[name].append(time.perf_counter() - start)
        out[n] = {name: statistics.median(t) for name, t in times.items()}
    return out


def time_torch(python: str | None, sizes: list[int], runs: int, seed: int) -> dict | None:
    for candidate in [python] if python else TORCH_PYTHONS:
        if not Path(candidate).exists():
            continue
        argv = [candidate, "-c", TORCH_SCRIPT, json.dumps([sizes, runs, seed])]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if result.returncode == 0:
            found = json.loads(result.stdout.strip().splitlines()[-1])
            found["ms"] = {int(n): s for n, s in found["ms"].items()}
            found["python"] = candidate
            return found
        print(f"{candidate}: no torch timing ({result.stderr.strip().splitlines()[-1:]})")
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--backends", nargs="+", default=["taichi", "numpy"])
    parser.add_argument("--torch", help="a Python interpreter with torch installed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    torch = time_torch(args.torch, args.sizes, args.runs, args.seed)
    rows = []
    for backend in args.backends:
        for n, t in time_tfgrad(backend, args.sizes, args.runs, args.seed).items():
            rows.append((backend, n, t["unbatched"], t["batched"]))

    print(f"tfgrad.hessian(rosenbrock), float64, median of {args.runs} runs [ms]")
    if torch:
        print(f"torch {torch['torch']} ({torch['threads']} threads, {torch['python']}):",
              ", ".join(f"N={n} {s * 1e3:.2f}" for n, s in torch["ms"].items()))  # fmt: skip
    else:
        print("torch: not found (no interpreter with torch); ratios left out")
    print(f"{'backend':8} {'N':>5} {'unbatched':>10} {'batched':>9} {'speedup':>8} {'/torch':>7}")
    for backend, n, old, new in rows:
        ratio = f"{new / torch['ms'][n]:.2f}" if torch and n in torch["ms"] else "-"
        print(f"{backend:8} {n:5d} {old * 1e3:10.2f} {new * 1e3:9.2f} {old / new:7.1f}x "
              f"{ratio:>7}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
