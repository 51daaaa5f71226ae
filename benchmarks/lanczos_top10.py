"""Top-10 Hessian eigenvalues of an MLP loss of ~100,000 parameters by Lanczos: tfgrad's
``hessian_spectrum`` against the same Lanczos (tfgrad.second_order's, full
reorthogonalisation, the same start vector and number of steps) driven by torch HVPs
(``torch.func.jvp`` over ``torch.func.grad``, forward over reverse; or double backward; or
``torch.func.grad`` over ``torch.func.jvp``, reverse over forward as tfgrad's ``hvp``).

Both run in one process, interleaved, float64; the ratio of medians is tfgrad / torch. Run it
with an interpreter that has torch and this tree first on the path:

    PYTHONPATH=.:widgets .venv-bench/bin/python benchmarks/lanczos_top10.py [--runs 3] [--steps 60]
        [--torch-hvp fwd-rev|rev-rev|rev-fwd]

With ``--restart`` it instead measures convergence to ``--tol``: tfgrad's thick-restart
Lanczos (the default: a basis of ncv = 21 vectors) against plain Lanczos with the former
default budget (ncv = max_steps = 100, never restarted), HVPs, seconds and whether each
converged, and the restarted method on torch HVPs (the same algorithm) for the time ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import tfgrad as tg
from tfgrad.second_order import hessian_spectrum
from tfgrad.second_order._lanczos import lanczos, thick_restart_lanczos

D_IN, HIDDEN, CLASSES, BATCH = 64, 300, 10, 128
SHAPES = [(D_IN, HIDDEN), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (HIDDEN, CLASSES), (CLASSES,)]
SIZES = [int(np.prod(s)) for s in SHAPES]
N = sum(SIZES)  # 112,810
TORCH_HVPS = ("fwd-rev", "rev-rev", "rev-fwd")


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, D_IN))
    y = np.eye(CLASSES)[rng.integers(0, CLASSES, BATCH)]
    w = rng.standard_normal(N) * np.concatenate(
        [np.full(s, 1 / np.sqrt(shape[0])) for s, shape in zip(SIZES, SHAPES)]
    )
    return x, y, w


def unpack(w, reshape):
    out, i = [], 0
    for shape, size in zip(SHAPES, SIZES):
        out.append(reshape(w[i : i + size], shape))
        i += size
    return out


def tfgrad_loss(x, y):
    xt, yt = tg.tensor(x), tg.tensor(y)

    def loss(w):
        w1, b1, w2, b2, w3, b3 = unpack(w, tg.reshape)
        h = tg.tanh(tg.matmul(xt, w1) + b1)
        h = tg.tanh(tg.matmul(h, w2) + b2)
        z = tg.matmul(h, w3) + b3
        return -tg.mean(tg.sum(yt * tg.log_softmax(z, axis=1), axis=1))

    return loss


def torch_hvp(x, y, w, mode: str):
    import torch

    xt, yt, wt = (torch.from_numpy(a) for a in (x, y, w))

    def loss(p):
        w1, b1, w2, b2, w3, b3 = unpack(p, torch.reshape)
        h = torch.tanh(xt @ w1 + b1)
        h = torch.tanh(h @ w2 + b2)
        z = h @ w3 + b3
        return -torch.mean(torch.sum(yt * torch.log_softmax(z, dim=1), dim=1))

    g = torch.func.grad(loss)

    def fwd_rev(v):
        return torch.func.jvp(g, (wt,), (torch.from_numpy(v),))[1].numpy()

    def rev_rev(v):  # double backward, torch's other usual HVP
        p = wt.detach().requires_grad_(True)
        (gp,) = torch.autograd.grad(loss(p), p, create_graph=True)
        return torch.autograd.grad(gp @ torch.from_numpy(v), p)[0].numpy()

    def rev_fwd(v):  # reverse over forward, as tfgrad's hvp: grad of (grad f . v)
        vt = torch.from_numpy(v)
        return torch.func.grad(lambda p: torch.func.jvp(loss, (p,), (vt,))[1])(wt).numpy()

    return {"fwd-rev": fwd_rev, "rev-rev": rev_rev, "rev-fwd": rev_fwd}[mode], torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--torch-hvp", choices=TORCH_HVPS, default="fwd-rev")
    ap.add_argument("--restart", action="store_true")
    ap.add_argument("--tol", type=float, default=1e-10)
    args = ap.parse_args()
    x, y, w = data()
    loss = tfgrad_loss(x, y)
    matvec, torch = torch_hvp(x, y, w, args.torch_hvp)
    if args.restart:
        return restart(loss, w, matvec, torch, args)
    print(
        f"n = {N} parameters, {args.steps} Lanczos steps, top-10; torch {torch.__version__} "
        f"HVP {args.torch_hvp} "
        f"({torch.get_num_threads()} threads), tfgrad from {tg.__file__}"
    )

    def run_tfgrad():
        r = hessian_spectrum(
            loss, w, k=10, method="lanczos", max_steps=args.steps, ncv=args.steps, tol=0.0
        )
        return r.eigenvalues, r.hvps

    def run_torch():
        rng = np.random.default_rng(0)
        t = lanczos(matvec, rng.standard_normal(N), args.steps, rng)
        return np.sort(t.ritz()[0])[-10:], len(t.alpha)

    ours, theirs = run_tfgrad(), run_torch()  # warm-up, and the answers must agree
    assert np.allclose(ours[0], theirs[0], rtol=1e-6), (ours[0], theirs[0])
    times = {"tfgrad": [], "torch": []}
    for _ in range(args.runs):
        for name, fn in (("tfgrad", run_tfgrad), ("torch", run_torch)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:7s} median {med[k]:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in v)})")
    print(f"ratio tfgrad / torch = {med['tfgrad'] / med['torch']:.2f}  (goal <= 1.0)")
    print("top-10 eigenvalues:", np.array2string(ours[0], precision=5))


def restart(loss, w, matvec, torch, args) -> None:
    print(
        f"n = {N} parameters, top-10 to tol = {args.tol:g}; torch {torch.__version__} HVP "
        f"{args.torch_hvp} ({torch.get_num_threads()} threads), tfgrad from {tg.__file__}"
    )
    runs = {
        "plain, former budget (ncv = max_steps = 100)": dict(ncv=100, max_steps=100),
        "thick restart (defaults: ncv = 21, max_steps = 2100)": {},
    }
    found = {}
    for name, kw in runs.items():
        start = time.perf_counter()
        r = hessian_spectrum(loss, w, k=10, method="lanczos", tol=args.tol, **kw)
        sec = time.perf_counter() - start
        found[name] = r
        rel = r.residual_norms.max() / np.abs(r.eigenvalues).max()
        print(
            f"tfgrad {name}: converged={r.converged}, {r.hvps} HVPs, {r.restarts} restarts, "
            f"basis {r.basis_size} ({r.basis_size * N * 8 / 1e6:.0f} MB), {sec:.1f} s, "
            f"max residual / |top| = {rel:.1e}"
        )
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    t = thick_restart_lanczos(matvec, rng.standard_normal(N), 10, "top", 21, 2100, args.tol, rng)
    sec = time.perf_counter() - start
    print(f"torch HVPs, thick restart: converged={t.converged}, {t.steps} HVPs, {sec:.1f} s")
    a, b = (r.eigenvalues for r in found.values())
    print("plain top-10:    ", np.array2string(a, precision=8))
    print("restarted top-10:", np.array2string(b, precision=8))
    print("torch restarted: ", np.array2string(t.values, precision=8))


if __name__ == "__main__":
    main()
