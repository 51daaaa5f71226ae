"""tfgrad.conv2d beside torch.nn.functional.conv2d: forward + backward of a digits-sized CNN's
two layers, and the three Taichi kernels beside the NumPy (im2col + BLAS) reference.

Layers (batch 64, 3x3 kernels, padding 1, float32 unless ``--dtype``): 1 -> 8 channels on 8x8
images, then 8 -> 16. A step is ``y = conv2d(x, w)``, ``loss = sum(y * c)`` and the gradients
with respect to ``x`` and ``w`` (torch: ``loss.backward()``). Every system runs in this one
process, interleaved, ``--runs`` times after a warm-up; the table gives the fastest run in ms
(the steadiest figure on a shared machine, where a median swings with the load) and the ratio
to torch (lower is faster). The kernel table times ``backend.run`` of each op alone:
``TaichiBackend(dispatch="taichi-only")`` (the direct loops) against ``NumpyBackend`` (what the
``auto`` policy runs on the CPU), which is what decides the dispatch of the linalg family.

    PYTHONPATH=. /work/main/.venv-bench/bin/python benchmarks/conv2d.py [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

LAYERS = {"1->8": ((64, 1, 8, 8), (8, 1, 3, 3)), "8->16": ((64, 8, 8, 8), (16, 8, 3, 3))}
# bigger shapes for the kernel table only: where a direct loop could catch up with BLAS
KERNEL_SHAPES = {**LAYERS, "16->32 28x28": ((64, 16, 28, 28), (32, 16, 3, 3))}
SETTINGS = {
    "tfgrad numpy": {"backend": "numpy"},
    "tfgrad taichi auto": {"backend": "taichi", "dispatch": "auto"},
    "tfgrad taichi-only": {"backend": "taichi", "dispatch": "taichi-only"},
}


def _best_ms(fn, runs: int) -> float:
    fn()  # warm-up (compiles Taichi kernels)
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def tfgrad_step(setting: dict, x: np.ndarray, w: np.ndarray, c: np.ndarray):
    import tfgrad as tg

    def step():
        with tg.use_backend(**setting):
            loss = lambda a, b: tg.sum(tg.conv2d(a, b, padding=1) * tc)  # noqa: E731
            tc = tg.tensor(c)
            dx, dw = tg.grad(loss, (0, 1))(tg.tensor(x), tg.tensor(w))
            return dx.numpy(), dw.numpy()

    return step


def torch_step(x: np.ndarray, w: np.ndarray, c: np.ndarray):
    import torch

    tc = torch.from_numpy(c)

    def step():
        tx = torch.from_numpy(x).requires_grad_(True)
        tw = torch.from_numpy(w).requires_grad_(True)
        loss = (torch.nn.functional.conv2d(tx, tw, padding=1) * tc).sum()
        loss.backward()
        return tx.grad.numpy(), tw.grad.numpy()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()
    import torch

    from tfgrad.backends.numpy_backend import NumpyBackend
    from tfgrad.backends.taichi.backend import TaichiBackend

    rng = np.random.default_rng(0)
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; OPENBLAS_NUM_THREADS {threads}; {args.dtype}; "
          f"fastest of {args.runs} runs, ms")  # fmt: skip
    print("\n| layer | torch fwd+bwd | " + " | ".join(SETTINGS) + " |")
    print("|---|---|" + "---|" * len(SETTINGS))
    for name, (xs, ws) in LAYERS.items():
        x, w = (
            rng.standard_normal(xs).astype(args.dtype),
            rng.standard_normal(ws).astype(args.dtype),
        )
        c = rng.standard_normal((xs[0], ws[0], xs[2], xs[3])).astype(args.dtype)
        want = torch_step(x, w, c)()
        steps = {"torch": torch_step(x, w, c)}
        for label, setting in SETTINGS.items():
            steps[label] = tfgrad_step(setting, x, w, c)
            for got, ref in zip(steps[label](), want):  # the same gradients before any timing
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
        times = {label: [] for label in steps}
        for _ in range(3):  # interleaved rounds: a slow spell hits every system alike
            for label, fn in steps.items():
                times[label].append(_best_ms(fn, max(args.runs // 3, 1)))
        best = {label: min(t) for label, t in times.items()}
        cells = [f"{best[label]:.3f} ({best[label] / best['torch']:.1f}x)" for label in SETTINGS]
        print(f"| {name} | {best['torch']:.3f} | " + " | ".join(cells) + " |")

    taichi, reference = TaichiBackend("cpu", dispatch="taichi-only"), NumpyBackend()
    print("\n| shape | op | taichi kernel | numpy im2col+BLAS | taichi / numpy |")
    print("|---|---|---|---|---|")
    for name, (xs, ws) in KERNEL_SHAPES.items():
        x, w = (
            rng.standard_normal(xs).astype(args.dtype),
            rng.standard_normal(ws).astype(args.dtype),
        )
        p = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1)}
        g = reference.run("conv2d", x, w, **p)
        ops = {
            "conv2d": ((x, w), p),
            "conv2d_input_grad": ((g, w), {"input_size": xs[2:], **p}),
            "conv2d_weight_grad": ((x, g), {"kernel_size": ws[2:], **p}),
        }
        for op, (bufs, params) in ops.items():
            t = _best_ms(lambda: taichi.run(op, *bufs, **params), args.runs)  # noqa: B023
            r = _best_ms(lambda: reference.run(op, *bufs, **params), args.runs)  # noqa: B023
            print(f"| {name} | {op} | {t:.3f} | {r:.3f} | {t / r:.2f} |")


if __name__ == "__main__":
    main()
