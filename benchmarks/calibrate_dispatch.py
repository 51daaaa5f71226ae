"""Measure where a Taichi kernel starts to beat NumPy, per op family and dtype, and write the
crossover sizes the dispatch policy reads (tfgrad/backends/taichi/dispatch_thresholds.json).

    python benchmarks/calibrate_dispatch.py [--out PATH] [--dry-run] [--dtypes float16,...]

For a representative op of each family (add: cheap elementwise, exp: transcendental, sum:
reduction, transpose: movement), in float32, float64, float16 and bfloat16 (``--dtypes``: only
these, merged into the file's other dtypes), over sizes 1 .. 2**24, it times
``TaichiBackend(dispatch="taichi-only").run`` against the reference backend's NumPy function
(what ``dispatch="auto"`` would run instead), both through ``run`` as tfgrad calls them, and
keeps medians of many batches (the machine may be shared; the load is recorded). The threshold is
the smallest measured size from which Taichi is at least as fast at every larger size: NumPy runs
arrays below it (2**25, twice the largest size, where NumPy won at every measured size).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from tfgrad.backends.numpy_backend import NumpyBackend
from tfgrad.backends.taichi.backend import TaichiBackend
from tfgrad.backends.taichi.dispatch import THRESHOLDS_FILE

SIZES = [4**k for k in range(13)]  # 1 .. 2**24
DTYPES = ("float32", "float64", "float16", "bfloat16")
BATCHES = 15  # median over batches; each batch runs the op enough times to last ~2 ms


def _square(n: int) -> tuple[int, int]:
    rows = 2 ** (n.bit_length() // 2)
    return rows, n // rows


# family -> (op, args(n, dtype) -> (bufs, params))
FAMILIES = {
    "elementwise": ("add", lambda x: ((x, x), {})),
    "transcendental": ("exp", lambda x: ((x,), {})),
    "reduction": ("sum", lambda x: ((x,), {"axes": (0,), "keepdims": False})),
    "movement": ("transpose", lambda x: ((x.reshape(_square(x.size)),), {"axes": (1, 0)})),
}


def _median_us(run, op, bufs, params) -> float:
    run(op, *bufs, **params)  # compile / warm
    t0 = time.perf_counter()
    run(op, *bufs, **params)
    once = max(time.perf_counter() - t0, 1e-7)
    calls = max(1, min(2000, int(2e-3 / once)))
    samples = []
    for _ in range(BATCHES):
        t0 = time.perf_counter()
        for _ in range(calls):
            run(op, *bufs, **params)
        samples.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(samples)


def _crossover(sizes, numpy_us, taichi_us) -> int:
    threshold = sizes[-1] * 2
    for n, a, b in reversed(list(zip(sizes, numpy_us, taichi_us))):
        if b > a:
            break
        threshold = n
    return threshold


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def calibrate(dtypes=DTYPES) -> dict:
    taichi = TaichiBackend("cpu", dispatch="taichi-only").run
    numpy = NumpyBackend().run
    rng = np.random.default_rng(0)
    raw, thresholds = {}, {}
    for family, (op, args) in FAMILIES.items():
        for dtype in dtypes:
            rows = []
            for n in SIZES:
                bufs, params = args(rng.uniform(0.5, 1.5, n).astype(dtype))
                rows.append(
                    (_median_us(numpy, op, bufs, params), _median_us(taichi, op, bufs, params))
                )
            numpy_us, taichi_us = zip(*rows)
            below = _crossover(SIZES, numpy_us, taichi_us)
            thresholds.setdefault(family, {})[dtype] = below
            raw.setdefault(family, {})[dtype] = {
                "op": op,
                "sizes": SIZES,
                "numpy_median_us": [round(t, 2) for t in numpy_us],
                "taichi_median_us": [round(t, 2) for t in taichi_us],
            }
            print(f"{family:14} {op:9} {dtype}: numpy below {below}")
            for n, a, b in zip(SIZES, numpy_us, taichi_us):
                print(f"    n={n:>8}  numpy {a:10.2f} us  taichi {b:10.2f} us")
    return {
        "numpy_below": thresholds,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": _cpu_name(),
            "loadavg_before_after": None,
            "numpy": np.__version__,
        },
        "method": f"median of {BATCHES} batches of ~2 ms per (op, dtype, size), through run()",
        "raw": raw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=THRESHOLDS_FILE)
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    parser.add_argument("--dtypes", help="measure only these (comma-separated), keep the rest")
    args = parser.parse_args()
    dtypes = tuple(args.dtypes.split(",")) if args.dtypes else DTYPES
    load_before = os.getloadavg()
    result = calibrate(dtypes)
    result["machine"]["loadavg_before_after"] = [
        [round(x, 2) for x in load_before],
        [round(x, 2) for x in os.getloadavg()],
    ]
    print("thresholds (NumPy below):", json.dumps(result["numpy_below"]))
    print("load average (1, 5, 15 min) before/after:", result["machine"]["loadavg_before_after"])
    if args.dtypes and args.out.exists():  # keep the other dtypes' measurements
        old = json.loads(args.out.read_text())
        for key in ("numpy_below", "raw"):
            for family, by_dtype in result[key].items():
                old[key].setdefault(family, {}).update(by_dtype)
        old.setdefault("partial_runs", []).append(
            {"dtypes": list(dtypes), "date": result["date"], "machine": result["machine"]}
        )
        result = old
    if not args.dry_run:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
