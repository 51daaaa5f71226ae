"""Import time and first-call / warm time of a gradient, per backend (issue 3's measurements).

    python benchmarks/core_timings.py

The workload: grad of sum(x) after 100 steps of x <- sin(x) * 1.01 + 0.1 * x, on a (4,) float64
tensor. Each measurement runs in a fresh subprocess so first calls are really first (Taichi's
offline cache may be warm from earlier runs; the script says so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import json, statistics, sys, time
    t0 = time.perf_counter()
    import tfgrad as tg
    import_s = time.perf_counter() - t0
    backend = sys.argv[1]
    t0 = time.perf_counter()
    tg.init(backend)
    init_s = time.perf_counter() - t0

    def f(x):
        for _ in range(100):
            x = tg.sin(x) * 1.01 + 0.1 * x
        return tg.sum(x)

    g = tg.grad(f)
    x = tg.tensor([0.1, 0.2, 0.3, 0.4])
    t0 = time.perf_counter()
    first = g(x).numpy()
    first_s = time.perf_counter() - t0
    warm = []
    for _ in range(20):
        t0 = time.perf_counter()
        g(x).numpy()
        warm.append(time.perf_counter() - t0)
    print(json.dumps({"backend": backend, "import_s": import_s, "init_s": init_s,
                      "first_call_s": first_s, "warm_median_s": statistics.median(warm),
                      "grad": first.tolist()}))
    """
)


def main() -> None:
    rows = []
    for backend in ("numpy", "taichi"):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, backend], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| backend | import tfgrad | backend init | first call | warm (median of 20) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['import_s'] * 1e3:.0f} ms | {r['init_s'] * 1e3:.0f} ms | "
            f"{r['first_call_s'] * 1e3:.1f} ms | {r['warm_median_s'] * 1e3:.2f} ms |"
        )
    same = all(abs(a - b) < 1e-12 for a, b in zip(rows[0]["grad"], rows[1]["grad"]))
    print(f"\nboth backends give the same gradient (to 1e-12): {same}")


if __name__ == "__main__":
    main()
