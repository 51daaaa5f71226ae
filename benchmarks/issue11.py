"""Issue 11's table in one process: exact second order, tfgrad beside its peers, each row's
systems interleaved (round-robin, so this VM's drift of up to ~1.7x between minutes falls on
all of them alike) and compared as ratios of medians within the row.

    PYTHONPATH=.:widgets .venv-bench/bin/python benchmarks/issue11.py --json results/run1.json

Rows (and goals):

- ``hessian``: the exact Hessian of Rosenbrock at n = 32, 128, 1024, ``tg.hessian`` against
  ``torch.func.hessian`` (goal <= 0.5x at every n); both checked against the analytic one.
- ``hvp``: HVP / gradient time on the MLP of the benchmarks (784-256-10, tanh, batch 32,
  float64, one flat weight vector of 203,530: peers.py's ``hvp_ratio``), goal <= 2.0; beside
  it torch (``torch.func.jvp(grad)`` as peers.py, and double backward) and HIPS autograd
  (``hessian_vector_product``); tfgrad's ``hvp`` in both of its modes. Every output is checked
  against peers.py's NumPy reference.
- ``lanczos``: top-10 Hessian eigenvalues of a 112,810-parameter MLP loss by 60 Lanczos steps
  (full reorthogonalisation), ``hessian_spectrum`` against the same Lanczos driven by torch
  HVPs (three ways: ``func.jvp(func.grad)``, double backward, ``func.grad`` of ``func.jvp``);
  goal <= 1.0x the fastest torch.
- ``laplacian``: the forward Laplacian against the trace of the Hessian (tanh MLP, hidden 64,
  n = 256 inputs; n = 64 beside it), goal <= 0.5x at n = 256.

BLAS and torch run on ``--threads`` threads (default 1: on a shared 2-core VM a second thread
mostly measures the other jobs; the environment is set before NumPy is imported).
"""

from __future__ import annotations

import argparse
import os
import sys


def _threads_from_argv() -> str:
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


_THREADS = _threads_from_argv()
if _THREADS != "default":
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _THREADS

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _interleaved(fns: dict, rounds: int, warmup: int = 2) -> dict:
    """Median, min and max seconds of each callable, timed round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {
        k: dict(median_s=statistics.median(v), min_s=min(v), max_s=max(v), runs=len(v))
        for k, v in times.items()
    }


def _min_ratio(t: dict, a: str, b: str) -> float:
    """The ratio of the fastest runs: what the load of other jobs moves least."""
    return t[a]["min_s"] / t[b]["min_s"]


def _rel(out, ref) -> float:
    out, ref = np.asarray(out, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-300))


# ---- rows ----
def row_hessian(torch, tg, runs: int) -> dict:
    import peers

    def rosen(x):
        return tg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)

    hess_tg = tg.hessian(rosen)
    hess_torch = torch.func.hessian(lambda t: peers.rosen(torch, t))
    out = {}
    for n in (32, 128, 1024):
        x = np.random.default_rng(n).uniform(-1.5, 1.5, n)
        xt, xtorch = tg.tensor(x), torch.tensor(x)
        ref = peers.np_rosen_hess(x)
        errors = {
            "tfgrad": _rel(hess_tg(xt).numpy(), ref),
            "torch": _rel(hess_torch(xtorch).numpy(), ref),
        }
        assert max(errors.values()) <= 1e-9, errors
        t = _interleaved(
            {"tfgrad": lambda: hess_tg(xt), "torch": lambda: hess_torch(xtorch)},
            runs if n < 1024 else max(5, runs // 3),
        )
        ratio = t["tfgrad"]["median_s"] / t["torch"]["median_s"]
        out[str(n)] = dict(
            times=t, errors=errors, ratio=ratio, ratio_of_mins=_min_ratio(t, "tfgrad", "torch"),
            goal=0.5, met=ratio <= 0.5,
        )  # fmt: skip
    return out


def row_hvp(torch, tg, runs: int) -> dict:
    import peers
    import tfgrad_systems
    import torch.nn.functional as F

    _, d, ref, _, _ = peers.make_case("hvp_ratio")
    tg_grad, tg_hvp = tfgrad_systems.WORKLOADS["hvp_ratio"](d)
    theta, v, X, Y = (tg.tensor(d[k]) for k in ("theta", "v", "X", "Y"))

    def tg_hvp_fwd_rev():
        f = lambda t: tfgrad_systems._mlp_loss_flat(t, X, Y)  # noqa: E731
        return (tg.hvp(f, theta, v, mode="fwd-over-rev"),)

    torch_grad, torch_hvp = peers.torch_hvp(d)
    th, tv = torch.from_numpy(d["theta"]), torch.from_numpy(d["v"])
    tX, labels = torch.from_numpy(d["X"]), torch.from_numpy(d["labels"])

    def torch_loss(t):
        W1, b1, W2, b2 = peers.unflatten(t)
        return F.cross_entropy(torch.tanh(tX @ W1 + b1) @ W2 + b2, labels)

    def torch_rev_rev():
        p = th.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(torch_loss(p), p, create_graph=True)
        return (torch.autograd.grad(g @ tv, p)[0],)

    ag_grad, ag_hvp = peers.autograd_hvp(d)
    steps = {
        "tfgrad grad": (tg_grad, ref["grad"]),
        "tfgrad hvp": (tg_hvp, ref["hvp"]),
        "tfgrad hvp fwd-over-rev": (tg_hvp_fwd_rev, ref["hvp"]),
        "torch grad": (torch_grad, ref["grad"]),
        "torch hvp": (torch_hvp, ref["hvp"]),
        "torch hvp rev-rev": (torch_rev_rev, ref["hvp"]),
        "autograd grad": (ag_grad, ref["grad"]),
        "autograd hvp": (ag_hvp, ref["hvp"]),
    }
    errors = {k: _rel(peers.as_numpy(fn()[0]), r[0]) for k, (fn, r) in steps.items()}
    assert max(errors.values()) <= 1e-9, errors
    t = _interleaved({k: fn for k, (fn, _) in steps.items()}, runs, warmup=3)
    med = {k: v["median_s"] for k, v in t.items()}
    ratios = {
        "tfgrad": med["tfgrad hvp"] / med["tfgrad grad"],
        "tfgrad fwd-over-rev": med["tfgrad hvp fwd-over-rev"] / med["tfgrad grad"],
        "torch": med["torch hvp"] / med["torch grad"],
        "torch rev-rev": med["torch hvp rev-rev"] / med["torch grad"],
        "autograd": med["autograd hvp"] / med["autograd grad"],
    }
    ratios_of_mins = {
        "tfgrad": _min_ratio(t, "tfgrad hvp", "tfgrad grad"),
        "torch": _min_ratio(t, "torch hvp", "torch grad"),
        "torch rev-rev": _min_ratio(t, "torch hvp rev-rev", "torch grad"),
        "autograd": _min_ratio(t, "autograd hvp", "autograd grad"),
    }
    return dict(
        times=t, errors=errors, ratios=ratios, ratios_of_mins=ratios_of_mins, goal=2.0,
        met=ratios["tfgrad"] <= 2.0,
    )  # fmt: skip


def row_lanczos(torch, tg, runs: int, steps: int = 60) -> dict:
    import lanczos_top10 as L

    from tfgrad.second_order import hessian_spectrum
    from tfgrad.second_order._lanczos import lanczos

    x, y, w = L.data()
    loss = L.tfgrad_loss(x, y)

    def run_tfgrad():
        # ncv = max_steps: plain Lanczos of `steps` steps, never restarted, as torch's side runs
        r = hessian_spectrum(loss, w, k=10, method="lanczos", max_steps=steps, ncv=steps, tol=0.0)
        return r.eigenvalues

    def torch_run(mode):
        matvec, _ = L.torch_hvp(x, y, w, mode)

        def run():
            rng = np.random.default_rng(0)
            t = lanczos(matvec, rng.standard_normal(L.N), steps, rng)
            return np.sort(t.ritz()[0])[-10:]

        return run

    fns = {"tfgrad": run_tfgrad}
    fns.update((f"torch {m}", torch_run(m)) for m in L.TORCH_HVPS)
    values = {k: fn() for k, fn in fns.items()}
    for k, val in values.items():
        assert np.allclose(val, values["tfgrad"], rtol=1e-6), (k, val, values["tfgrad"])
    t = _interleaved(fns, runs, warmup=0)
    torch_best = min((k for k in t if k.startswith("torch")), key=lambda k: t[k]["median_s"])
    ratios = {k: t["tfgrad"]["median_s"] / t[k]["median_s"] for k in t if k != "tfgrad"}
    return dict(
        n=L.N, steps=steps, times=t, ratios=ratios, torch_best=torch_best,
        ratio=ratios[torch_best], goal=1.0, met=ratios[torch_best] <= 1.0,
        ratio_of_mins=max(_min_ratio(t, "tfgrad", k) for k in t if k != "tfgrad"),
        eigenvalues=values["tfgrad"].tolist(),
    )  # fmt: skip


def row_laplacian(tg, runs: int) -> dict:
    import forward_laplacian as FL

    import tfgrad.second_order as so

    out = {}
    for n in (64, 256):
        f, x = FL.mlp(n, 64)
        fns = {m: so.laplacian(f, method=m) for m in ("forward", "hessian")}
        vals = {m: fn(x).item() for m, fn in fns.items()}
        rel = abs(vals["forward"] - vals["hessian"]) / abs(vals["hessian"])
        assert rel < 1e-10, vals
        t = _interleaved({m: (lambda fn=fn: fn(x)) for m, fn in fns.items()}, runs, warmup=3)
        ratio = t["forward"]["median_s"] / t["hessian"]["median_s"]
        row = dict(
            times=t, ratio=ratio, ratio_of_mins=_min_ratio(t, "forward", "hessian"),
            relative_difference=rel,
        )  # fmt: skip
        if n == 256:
            row.update(goal=0.5, met=ratio <= 0.5)
        out[str(n)] = row
    return out


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "?"


def _print(rec: dict) -> None:
    def ms(t):
        return f"{t['median_s'] * 1e3:.3g} ms"

    print("| row | goal | result | |")
    print("|---|---|---|---|")
    for n, r in rec["hessian"].items():
        print(f"| Hessian of Rosenbrock, n = {n} | <= 0.5x torch.func.hessian | {r['ratio']:.3f}x "
              f"({ms(r['times']['tfgrad'])} vs {ms(r['times']['torch'])}) | "
              f"{'met' if r['met'] else 'missed'} "
              f"(fastest runs: {r['ratio_of_mins']:.3f}x) |")  # fmt: skip
    h = rec["hvp"]
    rs = h["ratios"]
    print(f"| HVP / gradient, MLP | <= 2.0 | {rs['tfgrad']:.2f} ({ms(h['times']['tfgrad grad'])} "
          f"/ {ms(h['times']['tfgrad hvp'])}); fwd-over-rev {rs['tfgrad fwd-over-rev']:.2f}; "
          f"torch {rs['torch']:.2f} (rev-rev {rs['torch rev-rev']:.2f}); autograd "
          f"{rs['autograd']:.2f} | {'met' if h['met'] else 'missed'} (fastest runs: "
          f"{h['ratios_of_mins']['tfgrad']:.2f}) |")  # fmt: skip
    lz = rec["lanczos"]
    others = ", ".join(f"{k} {v:.2f}x" for k, v in lz["ratios"].items())
    print(f"| Lanczos top-10, n = {lz['n']} | <= 1.0x torch | {lz['ratio']:.2f}x the fastest "
          f"({lz['torch_best']}: {ms(lz['times']['tfgrad'])} vs "
          f"{ms(lz['times'][lz['torch_best']])}); {others} | "
          f"{'met' if lz['met'] else 'missed'} (fastest runs, against the fastest torch: "
          f"{lz['ratio_of_mins']:.2f}x) |")  # fmt: skip
    lp, lp64 = rec["laplacian"]["256"], rec["laplacian"]["64"]["ratio"]
    print(f"| forward Laplacian / trace of H, n = 256 | <= 0.5x | {lp['ratio']:.3f} "
          f"({ms(lp['times']['forward'])} vs {ms(lp['times']['hessian'])}; n = 64: "
          f"{lp64:.3f}) | {'met' if lp['met'] else 'missed'} (fastest runs: "
          f"{lp['ratio_of_mins']:.3f}) |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the record here")
    ap.add_argument("--threads", default="1", help="BLAS and torch threads ('default': leave)")
    ap.add_argument("--rows", default="hessian,hvp,lanczos,laplacian")
    ap.add_argument("--runs", type=int, default=30, help="rounds per row (Lanczos: --lz-runs)")
    ap.add_argument("--lz-runs", type=int, default=5)
    args = ap.parse_args()
    import torch

    import tfgrad as tg

    if args.threads != "default":
        torch.set_num_threads(int(args.threads))
    tg.init("taichi")
    rows = args.rows.split(",")
    rec = dict(
        commit=_commit(),
        started=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        load_before=os.getloadavg(),
        threads=args.threads,
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        python=platform.python_version(),
        numpy=np.__version__,
        cpus=os.cpu_count(),
    )
    t0 = time.perf_counter()
    if "hessian" in rows:
        rec["hessian"] = row_hessian(torch, tg, args.runs)
    if "hvp" in rows:
        rec["hvp"] = row_hvp(torch, tg, args.runs)
    if "lanczos" in rows:
        rec["lanczos"] = row_lanczos(torch, tg, args.lz_runs)
    if "laplacian" in rows:
        rec["laplacian"] = row_laplacian(tg, args.runs)
    rec["seconds"] = time.perf_counter() - t0
    rec["load_after"] = os.getloadavg()
    if len(rows) == 4:
        _print(rec)
    else:
        print(json.dumps({k: rec[k] for k in rows}, indent=1, default=float)[:4000])
    print(f"load average before {rec['load_before']}, after {rec['load_after']}; "
          f"{rec['seconds']:.0f} s; commit {rec['commit']}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rec, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
