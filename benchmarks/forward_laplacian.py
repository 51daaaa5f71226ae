"""The forward Laplacian (``tfgrad.second_order.laplacian``, collapsed Taylor mode: one forward
pass) against the trace of the exact Hessian (``method="hessian"``: one gradient, then n
batched HVPs), on a tanh MLP of n inputs (issue 11's goal: <= 0.5x at n = 256).

Both run interleaved after a warm-up, on each backend; the median of the runs and the spread
(min-max) are printed with the ratio of the medians, and the two Laplacians are checked equal.

    python benchmarks/forward_laplacian.py [--runs 30] [--sizes 64 256] [--hidden 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tfgrad as tg
import tfgrad.second_order as so


def mlp(n: int, hidden: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w1 = tg.tensor(rng.normal(size=(n, hidden)) / np.sqrt(n))
    b1 = tg.tensor(rng.normal(size=hidden))
    w2 = tg.tensor(rng.normal(size=(hidden, hidden)) / np.sqrt(hidden))
    w3 = tg.tensor(rng.normal(size=hidden))

    def f(x):
        return tg.sum(tg.tanh(tg.matmul(tg.tanh(tg.matmul(x, w1) + b1), w2)) * w3)

    return f, tg.tensor(rng.normal(size=n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--backends", nargs="+", default=["numpy", "taichi"])
    args = ap.parse_args()
    for backend in args.backends:
        with tg.use_backend(backend):
            for n in args.sizes:
                f, x = mlp(n, args.hidden)
                methods = {m: so.laplacian(f, method=m) for m in ("forward", "hessian")}
                values = {m: fn(x).item() for m, fn in methods.items()}
                rel = abs(values["forward"] - values["hessian"]) / abs(values["hessian"])
                assert rel < 1e-10, values
                times: dict[str, list[float]] = {m: [] for m in methods}
                for _ in range(3):  # warm-up
                    for fn in methods.values():
                        fn(x)
                for _ in range(args.runs):
                    for m, fn in methods.items():
                        t0 = time.perf_counter()
                        fn(x)
                        times[m].append(time.perf_counter() - t0)
                med = {m: statistics.median(ts) for m, ts in times.items()}
                line = ", ".join(
                    f"{m} {med[m] * 1e3:.2f} ms [{min(ts) * 1e3:.2f}-{max(ts) * 1e3:.2f}]"
                    for m, ts in times.items()
                )
                ratio = med["forward"] / med["hessian"]
                print(f"{backend:6s} n={n:4d} h={args.hidden}: {line}; forward/hessian {ratio:.2f}")


if __name__ == "__main__":
    main()
