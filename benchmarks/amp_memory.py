"""What float16/bfloat16 save: bytes per tensor, and the memory and time of a training step
under ``tfgrad.amp.autocast`` against float32 (issue 12).

1. ``bytes``: the buffer behind a (1024, 1024) tensor of each float dtype, as the backend
   allocated it (a NumPy array on the CPU, a Taichi ndarray on a GPU).
2. ``step``: one forward and backward of an MLP (784-1024-1024-10, tanh, batch 1024, mean
   softmax cross-entropy) with float32 master weights, plain and under autocast: the bytes the
   tape holds (its records' inputs and outputs, each buffer counted once), the peak of host
   memory during the step (``tracemalloc``, which sees NumPy's allocations; the buffer pool is
   switched off so that every buffer is a fresh allocation), and the median time of a step.

    python benchmarks/amp_memory.py [--batch 1024] [--repeats 5] [--json FILE]

On a CPU the halves save memory, not time: kernels compute them in float32, and the casts are
extra passes (DESIGN.md: "float16 on CPU ... no faster than f32").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np

import tfgrad as tg
from tfgrad.amp import autocast
from tfgrad.backends import pool
from tfgrad.tape import NotSaved

SIZES = (784, 1024, 1024, 10)
# (autocast dtype or None, whether the bias is added in the matmul's dtype)
VARIANTS = ((None, False), ("float16", False), ("bfloat16", False), ("float16", True),
            ("bfloat16", True))  # fmt: skip


def buffer_bytes(t: tg.Tensor) -> int:
    """Bytes of the buffer behind ``t`` (the backend's own allocation)."""
    data = t._data
    if isinstance(data, np.ndarray):
        return data.nbytes
    return data.size * np.dtype(data.dtype).itemsize  # a DeviceArray: its storage dtype's width


def make_problem(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    params = []
    for m, n in zip(SIZES[:-1], SIZES[1:]):
        params.append(tg.tensor((rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32)))
        params.append(tg.zeros((n,), "float32"))
    x = tg.tensor(rng.standard_normal((batch, SIZES[0])).astype(np.float32))
    y = tg.tensor(np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], batch)])
    return params, x, y


def dense(h, w, b, bias_in_compute_dtype: bool):
    z = h @ w
    # ``z + b`` with a float32 b promotes z back to float32, in tfgrad as in PyTorch's unfused
    # ops; F.linear (addmm) under autocast adds the bias in the matmul's dtype instead.
    return z + (tg.astype(b, z.dtype) if bias_in_compute_dtype else b)


def loss_fn(params, x, y, linear: bool):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = tg.tanh(dense(h, params[i], params[i + 1], linear))
    logits = dense(h, params[-2], params[-1], linear)
    return -tg.mean(tg.sum(tg.log_softmax(logits, axis=-1) * y, axis=-1))


def step(params, x, y, low: str | None, linear: bool = False):
    """One forward and backward; returns the gradients and the bytes the tape held."""
    with tg.GradientTape() as tape:
        watched = [tape.watch(p) for p in params]
        if low is None:
            loss = loss_fn(watched, x, y, linear)
        else:
            with autocast(low):
                loss = loss_fn(watched, x, y, linear)
    held, seen = 0, set()
    for record in tape._entries:  # (prim, inputs, output, params, impl, scope, primals, ans, _)
        for t in (*record[6], record[7]):
            if isinstance(t, NotSaved):  # a value the rules do not read: not kept
                continue
            if id(t._data) not in seen:
                seen.add(id(t._data))
                held += buffer_bytes(t)
    grads = tape.gradient(loss, watched)
    return grads, loss, held


def measure(batch: int, repeats: int) -> dict:
    params, x, y = make_problem(batch)
    out = {"bytes": {}, "step": {}}
    for name in ("float32", "float16", "bfloat16"):
        out["bytes"][name] = buffer_bytes(tg.zeros((1024, 1024), name))
    reference = None
    limit = pool.limit()
    pool.set_limit(0)  # every buffer a fresh allocation, so the peak is the step's own
    try:
        for low, linear in VARIANTS:
            label = (low or "float32") + (", bias cast" if linear else "")
            grads, loss, held = step(params, x, y, low, linear)  # warm-up: kernels compiled
            if reference is None:
                reference = [g.numpy() for g in grads]
            error = max(
                float(np.abs(g.numpy() - r).max() / (np.abs(r).max() + 1e-30))
                for g, r in zip(grads, reference)
            )
            del grads, loss
            tracemalloc.start()
            grads, loss, _ = step(params, x, y, low, linear)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            del grads, loss
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                step(params, x, y, low, linear)
                times.append(time.perf_counter() - start)
            out["step"][label] = {
                "tape_bytes": held,
                "peak_bytes": peak,
                "ms": statistics.median(times) * 1e3,
                "grad_dtypes": sorted({g.dtype.name for g in step(params, x, y, low, linear)[0]}),
                "max_rel_error_vs_f32": error,
            }
    finally:
        pool.set_limit(limit)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    backend = tg.current_backend()
    result = measure(args.batch, args.repeats)
    print(f"backend {backend.name}; MLP {'-'.join(map(str, SIZES))}, batch {args.batch}")
    print("bytes of a (1024, 1024) tensor:")
    for name, n in result["bytes"].items():
        print(f"  {name:9} {n:>10,}  ({n / result['bytes']['float32']:.2f}x float32)")
    base = result["step"]["float32"]
    print(f"{'step':28} {'tape MB':>8} {'x f32':>6} {'peak MB':>8} {'x f32':>6} {'ms':>7} "
          f"{'x f32':>6}  grads    rel. err")  # fmt: skip
    for label, r in result["step"].items():
        name = "float32" if label == "float32" else f"autocast {label}"
        print(
            f"{name:28} {r['tape_bytes'] / 2**20:8.1f} {r['tape_bytes'] / base['tape_bytes']:6.2f}"
            f" {r['peak_bytes'] / 2**20:8.1f} {r['peak_bytes'] / base['peak_bytes']:6.2f}"
            f" {r['ms']:7.1f} {r['ms'] / base['ms']:6.2f}  {','.join(r['grad_dtypes'])}  "
            f"{r['max_rel_error_vs_f32']:.1e}"
        )
    if args.json:
        record = {"args": vars(args), "backend": backend.name, **result}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
