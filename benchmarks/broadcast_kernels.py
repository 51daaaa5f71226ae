"""Taichi's binary kernels on broadcast inputs: an add of a (1024, 1024) array and an input of
each broadcast kind (same shape, one element, a row, a column), an outer product and a `where`
with a column condition, in float32, float16 and bfloat16, with dispatch="taichi-only" (every
op on its kernel, as on a GPU). Median ms of 15 calls.

    python benchmarks/broadcast_kernels.py
"""

from __future__ import annotations

import time

import ml_dtypes
import numpy as np

from tfgrad.backends.taichi.backend import TaichiBackend


def median_ms(fn, repeats: int = 15) -> float:
    fn()  # compiled
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    backend = TaichiBackend("cpu", dispatch="taichi-only")
    rng = np.random.default_rng(0)
    print("| dtype | same shape | one element | row (1024,) | column (1024, 1) | outer | where |")
    print("|---|---|---|---|---|---|---|")
    for dtype in (np.float32, np.float16, ml_dtypes.bfloat16):
        x = rng.normal(size=(1024, 1024)).astype(dtype)
        others = [x, np.ones((), dtype), rng.normal(size=1024).astype(dtype),
                  rng.normal(size=(1024, 1)).astype(dtype)]  # fmt: skip
        cells = [median_ms(lambda: backend.run("add", x, other)) for other in others]
        column, row = rng.normal(size=(1024, 1)).astype(dtype), rng.normal(size=(1, 1024))
        row = row.astype(dtype)
        cells.append(median_ms(lambda: backend.run("mul", column, row)))
        mask, zero = rng.random((1024, 1)) > 0.5, np.zeros((), dtype)
        cells.append(median_ms(lambda: backend.run("where", mask, x, zero)))
        print(f"| {np.dtype(dtype).name} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
