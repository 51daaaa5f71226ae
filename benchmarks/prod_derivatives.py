"""Eager ``tg.grad``, ``tg.hessian`` and ``tg.hvp`` of ``tg.prod`` on a (1000,) float64 vector.

prod's rules are exclusive prefix times suffix products (``cumprod``), and their derivatives
linear recurrences; this measures what that costs against another tree (the division-based rules
before, say). With ``--trees`` each tree runs in a process of its own (its ``tfgrad`` first on
``PYTHONPATH``), the trees interleaved, ``--rounds`` times; a process reports, after a warm-up,
the minimum over its calls of the wall time and of its own CPU time in ms (the CPU time is the
steadier figure on a shared machine). The point has no zero (the common case) unless
``--zeros`` says how many.

    python benchmarks/prod_derivatives.py [--trees PATH ...] [--rounds 3] [--calls 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BACKENDS = {
    "numpy": {"backend": "numpy"},
    "taichi": {"backend": "taichi", "dispatch": "auto"},
}


def measure(backend: str, calls: int, zeros: int) -> dict[str, list[float]]:
    """``{what: [min wall ms, min CPU ms]}`` for the tfgrad this process imports."""
    import tfgrad as tg

    out = {}
    with tg.use_backend(**BACKENDS[backend]):
        values = np.random.default_rng(0).uniform(0.9, 1.1, 1000)
        values[:zeros] = 0.0
        x, v = tg.tensor(values), tg.tensor(np.ones(1000))
        jobs = {
            "grad": (tg.grad(tg.prod), 10 * calls),
            "hvp": (lambda x: tg.hvp(tg.prod, (x,), (v,))[0], 10 * calls),
            "hessian": (tg.hessian(tg.prod), calls),
        }
        for name, (fn, n) in jobs.items():
            for _ in range(3):
                fn(x).numpy()
            wall, cpu = [], []
            for _ in range(n):
                start, start_cpu = time.perf_counter(), time.process_time()
                fn(x).numpy()
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            out[name] = [round(min(wall) * 1e3, 3), round(min(cpu) * 1e3, 3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="*", default=[], help="source trees to interleave")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--zeros", type=int, default=0)
    parser.add_argument("--backend", choices=list(BACKENDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:  # one measurement, in a child process
        print(json.dumps(measure(args.backend, args.calls, args.zeros)))
        return
    trees = [str(Path(t).resolve()) for t in args.trees] or [str(Path(__file__).parents[1])]
    print(f"load average {os.getloadavg()[0]:.2f}; ms as [min wall, min CPU]")
    for round_ in range(args.rounds):
        for tree in trees:
            for backend in BACKENDS:
                env = {**os.environ, "PYTHONPATH": tree}
                command = [sys.executable, str(Path(__file__).resolve()), "--backend", backend,
                           "--calls", str(args.calls), "--zeros", str(args.zeros)]  # fmt: skip
                # run outside any tree, so that only PYTHONPATH says which tfgrad is imported
                result = subprocess.run(command, env=env, cwd=tempfile.gettempdir(),
                                        capture_output=True, text=True, check=True)  # fmt: skip
                print(f"round {round_ + 1} {tree} {backend}: {result.stdout.strip()}")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
