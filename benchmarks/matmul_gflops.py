"""GFLOP/s of the Taichi matmul kernel beside BLAS (np.matmul, OpenBLAS), and of the old kernel.

    python benchmarks/matmul_gflops.py --tag run1       # ~1 minute on 2 cores
    python benchmarks/matmul_gflops.py --compare benchmarks/results/matmul-gflops-*.json

For float32 and float64 (float16 and bfloat16 too for the Taichi kernels: informational, NumPy
has no BLAS for halves) and the shapes below, each cell is the median GFLOP/s (2*m*n*k per
product) of repeated timed calls after warm-up, in this one process:

- old: the previous kernel (one 4x4 tile per thread, clamped loads, no vectorisation), kept
  here as ``old_matmul_kernel`` and launched as the backend used to launch it;
- new: ``TaichiBackend("cpu").run("matmul", a, b)``, i.e. the current kernel with the backend's
  own packing scratch and serial/parallel choice, Python overhead included;
- BLAS: ``np.matmul(a, b)``.

Per shape the Taichi cells run first and BLAS last, and after BLAS the script sleeps: OpenBLAS's
idle threads spin for a while after a call and would take a core from Taichi's threads. The
record (``benchmarks/results/matmul-gflops-<date>[-<tag>].json``) keeps medians, quartiles,
repeats, process CPU seconds per wall second (about 2 when both cores worked), the load average
before and after, the machine and tfgrad's commit.
"""
# NOTE: no `from __future__ import annotations`: Taichi reads kernel annotations as objects.

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import taichi as ti

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfgrad.backends.taichi.backend import TaichiBackend  # noqa: E402
from tfgrad.backends.taichi.codec import compute_zero, load, store  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SHAPES = [  # (batch, m, k, n)
    (1, 128, 784, 256),  # the MLP's first layer
    (1, 128, 256, 10),  # its second
    (1, 256, 256, 256),
    (1, 512, 512, 512),
    (16, 64, 64, 64),
]
DTYPES = {
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
}
BLAS_DTYPES = ("float32", "float64")


# ---- The old kernel (tfgrad/backends/taichi/linalg.py before the packed, vectorised one) ----
TILE = 4


@ti.func
def _zero_tile(z):
    return ti.Matrix([[z, z, z, z], [z, z, z, z], [z, z, z, z], [z, z, z, z]])


@ti.kernel
def old_matmul_kernel(
    a: ti.types.ndarray(ndim=1),
    b: ti.types.ndarray(ndim=1),
    out: ti.types.ndarray(ndim=1),
    m: ti.i32,
    k: ti.i32,
    n: ti.i32,
    serial: ti.template(),
):
    # out[q, i, j] = sum_p a[q, i, p] * b[q, p, j], for every batch q
    row_tiles = (m + TILE - 1) // TILE
    col_tiles = (n + TILE - 1) // TILE
    batches = out.shape[0] // (m * n)
    if ti.static(serial):
        ti.loop_config(serialize=True)
    for t in range(batches * row_tiles * col_tiles):
        q = t // (row_tiles * col_tiles)
        i0 = ((t // col_tiles) % row_tiles) * TILE
        j0 = (t % col_tiles) * TILE
        # first elements of the tile's 4 rows of a and 4 columns of b, clamped at the edges
        rows = ti.Vector([q * m * k + ti.min(i0 + r, m - 1) * k for r in ti.static(range(TILE))])
        cols = ti.Vector([q * k * n + ti.min(j0 + c, n - 1) for c in ti.static(range(TILE))])
        acc = _zero_tile(compute_zero(a))
        for p in range(k):
            column = ti.Vector([load(a, rows[r] + p) for r in ti.static(range(TILE))])
            row = ti.Vector([load(b, cols[c] + p * n) for c in ti.static(range(TILE))])
            for r, c in ti.static(ti.ndrange(TILE, TILE)):
                acc[r, c] += column[r] * row[c]
        for r, c in ti.static(ti.ndrange(TILE, TILE)):
            if i0 + r < m and j0 + c < n:
                store(out, q * m * n + (i0 + r) * n + j0 + c, acc[r, c])


def old_matmul(backend: TaichiBackend, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The old kernel as the backend launched it (equal batch shapes, CPU buffers)."""
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.empty(a.shape[:-1] + (n,), a.dtype)
    view = {DTYPES["bfloat16"]: np.uint16}.get(a.dtype, a.dtype)
    old_matmul_kernel(
        a.reshape(-1).view(view),
        b.reshape(-1).view(view),
        out.reshape(-1).view(view),
        m,
        k,
        n,
        out.size * max(k, 1) < backend.serial_below,
    )
    return out


# ---- Timing ----
def measure(fn, budget_s: float) -> dict:
    """Median and quartiles of fn's wall time after warm-up (3 calls and 0.1 s at least), over
    at least 7 calls and ``budget_s`` seconds; CPU seconds of the process per wall second."""
    start, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < 0.1:
        fn()
        calls += 1
    times: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while len(times) < 7 or (sum(times) < budget_s and len(times) < 2000):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    q1, median, q3 = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
    return {
        "median_s": statistics.median(times),
        "q1_s": q1,
        "q3_s": q3,
        "min_s": min(times),
        "repeats": len(times),
        "cpu_per_wall": round(cpu_per_wall, 2),
    }


def max_relative_error(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """max |got - a@b| / (|a| @ |b|), the reference in float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    scale = np.matmul(np.abs(a64), np.abs(b64))
    return float(np.max(np.abs(got.astype(np.float64) - np.matmul(a64, b64)) / scale))


def run(budget_s: float, dtypes: list[str], shapes: list[tuple]) -> list[dict]:
    backend = TaichiBackend("cpu")
    rng = np.random.default_rng(0)
    rows = []
    for dtype in dtypes:
        for q, m, k, n in shapes:
            batch = (q,) if q > 1 else ()
            a = rng.uniform(-1, 1, batch + (m, k)).astype(DTYPES[dtype])
            b = rng.uniform(-1, 1, batch + (k, n)).astype(DTYPES[dtype])
            flops = 2 * q * m * n * k
            row = {"dtype": dtype, "batch": q, "m": m, "k": k, "n": n, "flops": flops}
            impls = {
                "old": lambda: old_matmul(backend, a, b),
                "new": lambda: backend.run("matmul", a, b),
            }
            if dtype in BLAS_DTYPES:
                impls["blas"] = lambda: np.matmul(a, b)
            for name, fn in impls.items():
                cell = measure(fn, budget_s)
                cell["gflops"] = flops / cell["median_s"] / 1e9
                cell["max_rel_error"] = max_relative_error(fn(), a, b)
                row[name] = cell
                if name == "blas":
                    time.sleep(0.3)  # let OpenBLAS's spinning threads go to sleep
            if "blas" in row:
                row["new_over_blas"] = row["new"]["gflops"] / row["blas"]["gflops"]
            row["new_over_old"] = row["new"]["gflops"] / row["old"]["gflops"]
            rows.append(row)
            print(_row_line(row), flush=True)
    return rows


# ---- Reporting ----
HEADER = (
    "| dtype | shape (batch × m×k×n) | old Taichi | new Taichi | BLAS (np.matmul) | new / BLAS "
    "| new / old |\n|---|---|---|---|---|---|---|"
)


def _shape(row: dict) -> str:
    shape = f"{row['m']}×{row['k']}×{row['n']}"
    return f"{row['batch']} × ({shape})" if row["batch"] > 1 else shape


def _row_line(row: dict) -> str:
    blas = f"{row['blas']['gflops']:.1f}" if "blas" in row else "—"
    ratio = f"{row['new_over_blas']:.2f}" if "new_over_blas" in row else "—"
    return (
        f"| {row['dtype']} | {_shape(row)} | {row['old']['gflops']:.1f} | "
        f"{row['new']['gflops']:.1f} | {blas} | {ratio} | {row['new_over_old']:.1f}× |"
    )


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "taichi": ".".join(str(v) for v in ti.__version__),
        "threads_env": {k: v for k, v in os.environ.items() if k.endswith("_NUM_THREADS")},
        "tfgrad_commit": git("rev-parse", "HEAD"),
        # tracked files only: others' untracked results in a shared tree are not a change
        "tfgrad_dirty": bool(git("status", "--porcelain", "-uno", "--", "tfgrad", "benchmarks")),
    }


def compare(paths: list[Path]) -> None:
    """Per cell, the range of the median GFLOP/s across the given records."""
    records = [json.loads(p.read_text()) for p in paths]
    print(
        "runs:", ", ".join(f"{p.name} (load {r['loadavg_before']})" for p, r in zip(paths, records))
    )
    print(HEADER)
    for i, row in enumerate(records[0]["rows"]):
        cells = []
        for impl in ("old", "new", "blas"):
            values = [r["rows"][i][impl]["gflops"] for r in records if impl in r["rows"][i]]
            cells.append(f"{min(values):.1f}–{max(values):.1f}" if values else "—")
        ratios = [r["rows"][i].get("new_over_blas") for r in records]
        ratio = (
            f"{min(ratios):.2f}–{max(ratios):.2f}" if all(x is not None for x in ratios) else "—"
        )
        olds = [r["rows"][i]["new_over_old"] for r in records]
        print(
            f"| {row['dtype']} | {_shape(row)} | {cells[0]} | {cells[1]} | {cells[2]} | {ratio} "
            f"| {min(olds):.1f}–{max(olds):.1f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="", help="suffix of the record's name, e.g. run1")
    parser.add_argument("--budget", type=float, default=0.5, help="timed seconds per cell")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--quick", action="store_true", help="small shapes, short budget")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--compare", nargs="+", type=Path, help="records to compare")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return
    shapes = [(2, 16, 24, 20), (1, 33, 40, 17)] if args.quick else SHAPES
    budget = 0.02 if args.quick else args.budget
    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"load average before: {load_before}")
    print(HEADER)
    rows = run(budget, args.dtypes.split(","), shapes)
    load_after = [round(x, 2) for x in os.getloadavg()]
    print(f"load average after: {load_after}  (GFLOP/s: medians; 2 cores)")
    record = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "budget_s": budget,
        "method": __doc__,
        "rows": rows,
    }
    if not args.no_write and not args.quick:
        RESULTS.mkdir(exist_ok=True)
        name = f"matmul-gflops-{datetime.date.today().isoformat()}"
        path = RESULTS / (f"{name}-{args.tag}.json" if args.tag else f"{name}.json")
        path.write_text(json.dumps(record, indent=1) + "\n")
        print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
