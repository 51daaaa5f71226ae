"""What deterministic mode costs, and which results depend on the thread count without it.

    python benchmarks/determinism_cost.py            # the cost, ~1 minute on 2 cores
    python benchmarks/determinism_cost.py --threads  # the bits with 1 and 2 threads, ~1 minute

Cost: a child process per mode (default, then deterministic: ``tfgrad.determinism``'s switch)
times every case with ``tfgrad.init()``'s auto dispatch, median of repeated calls after warm-up;
the pair runs ``--rounds`` times (3), a cell is the median over rounds, and the ratio is
deterministic / default. Cases: a full sum and a column sum (the same
kernels in both modes: the ratio shows the noise), matmul in float32 and float64 (BLAS against
the Taichi kernel), one SGD step of a tanh MLP through ``tg.value_and_grad``, and the NumPy
backend's matmul (BLAS against its ordered k loop).

Threads (``--threads``): child processes with 1 and 2 threads (``cpu_max_num_threads`` for
Taichi, ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` for BLAS) compute each case once per mode
and print a hash of each result's bytes; the table says which results differ between 1 and 2
threads. The record goes to ``benchmarks/results/determinism-<date>[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tfgrad as tg  # noqa: E402
import tfgrad.determinism as det  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def cases(rng: np.random.Generator) -> dict:
    """{name: (backend, function of no arguments returning a tensor)}."""
    f32 = np.float32
    big = tg.tensor(rng.standard_normal(4_000_000).astype(f32))
    grid = tg.tensor(rng.standard_normal((2000, 3000)).astype(f32))
    mats = {}
    for dtype, (m, k, n) in [
        ("float32", (128, 784, 256)),  # an MLP's first layer
        ("float32", (512, 512, 512)),
        ("float32", (1000, 2000, 300)),
        ("float64", (128, 784, 256)),
        ("float32", (1, 4096, 256)),  # a vector times a matrix
    ]:
        a = tg.tensor(rng.standard_normal((m, k)).astype(dtype))
        b = tg.tensor(rng.standard_normal((k, n)).astype(dtype))
        mats[f"matmul {m}x{k}x{n} {dtype}"] = ("taichi", lambda a=a, b=b: tg.matmul(a, b))

    X = tg.tensor(rng.standard_normal((128, 784)).astype(f32))
    Y = tg.tensor(rng.standard_normal((128, 10)).astype(f32))
    W = [tg.tensor((0.05 * rng.standard_normal(s)).astype(f32)) for s in ((784, 256), (256, 10))]

    def loss(W1, W2):
        return tg.mean((tg.matmul(tg.tanh(tg.matmul(X, W1)), W2) - Y) ** 2)

    step = tg.value_and_grad(loss, argnums=(0, 1))

    def sgd_step():
        _, (g1, g2) = step(*W)
        new = (W[0] - 0.1 * g1, W[1] - 0.1 * g2)
        return tg.concatenate([tg.reshape(w, (-1,)) for w in new])

    a_np = rng.standard_normal((128, 784)).astype(f32)
    b_np = rng.standard_normal((784, 256)).astype(f32)
    return {
        "sum 4e6 float32": ("taichi", lambda: tg.sum(big)),
        "sum axis 0 2000x3000 float32": ("taichi", lambda: tg.sum(grid, axis=0)),
        **mats,
        "MLP 784-256-10 SGD step, 128 examples, float32": ("taichi", sgd_step),
        "numpy backend matmul 128x784x256 float32": ("numpy", lambda: tg.matmul(a_np, b_np)),
    }


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_cases(mode: str) -> dict[str, float]:
    """Median seconds per case in ``mode`` ("default" or "deterministic"), in this process."""
    det.set_deterministic(mode == "deterministic")
    out = {}
    for name, (backend, fn) in cases(np.random.default_rng(0)).items():
        options = {"dispatch": "auto"} if backend == "taichi" else {}
        with tg.use_backend(backend, **options):
            fn(), fn()  # compile and warm up
            once = max(_median_time(fn, 3), 1e-6)
            out[name] = _median_time(fn, max(5, min(200, int(0.5 / once))))  # ~0.5 s a case
        time.sleep(0.3)  # OpenBLAS's idle threads spin for a while after a call
    return out


def cost(rounds: int) -> list[dict]:
    # NOTE: one process per mode and round. In one process, OpenBLAS's and Taichi's thread
    # pools take each other's cores after a call (np.matmul went from 0.25 to 4.3 ms right
    # after Taichi kernels on 2 cores), which would charge the default mode for the switch.
    runs: dict[str, list[dict]] = {"default": [], "deterministic": []}
    for _ in range(rounds):
        for mode in runs:
            p = subprocess.run([sys.executable, __file__, "--time-child", mode],
                               capture_output=True, text=True, check=True)  # fmt: skip
            runs[mode].append(json.loads(p.stdout.strip().splitlines()[-1]))
    rows = []
    for name in runs["default"][0]:
        d = statistics.median(r[name] for r in runs["default"])
        f = statistics.median(r[name] for r in runs["deterministic"])
        rows.append({"case": name, "default_s": d, "deterministic_s": f, "ratio": f / d})
        print(f"{name:48s} default {d * 1e3:9.3f} ms  deterministic {f * 1e3:9.3f} ms"
              f"  ratio {f / d:6.2f}", flush=True)  # fmt: skip
    return rows


def child(threads: int) -> dict:
    """Hashes of every case's result with ``threads`` threads, per mode."""
    tg.init("taichi", dispatch="auto", cpu_max_num_threads=threads)
    out = {}
    for mode in ("default", "deterministic"):
        det.set_deterministic(mode == "deterministic")
        for name, (backend, fn) in cases(np.random.default_rng(0)).items():
            with tg.use_backend(backend, **({"cpu_max_num_threads": threads}
                                            if backend == "taichi" else {})):  # fmt: skip
                data = np.ascontiguousarray(fn().numpy()).tobytes()
            out[f"{mode}: {name}"] = hashlib.sha256(data).hexdigest()[:16]
    return out


def threads_table() -> list[dict]:
    runs = {}
    for threads in (1, 2):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        p = subprocess.run([sys.executable, __file__, "--child", str(threads)], env=env,
                           capture_output=True, text=True, check=True)  # fmt: skip
        runs[threads] = json.loads(p.stdout.strip().splitlines()[-1])
    rows = []
    for key in runs[1]:
        same = runs[1][key] == runs[2][key]
        rows.append({"result": key, "same_bits_1_and_2_threads": same})
        print(f"{key:64s} {'same bits' if same else 'DIFFERENT bits'}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", action="store_true", help="compare bits across threads")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--time-child", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if args.time_child:
        print(json.dumps(time_cases(args.time_child)))
        return
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),  # fmt: skip
    }
    if args.threads:
        record["threads"] = threads_table()
    else:
        record["cost"] = cost(args.rounds)
    name = f"determinism-{'threads-' if args.threads else ''}{datetime.date.today()}"
    path = RESULTS / f"{name}{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
