#!/usr/bin/env python
"""tfgrad's benchmark: the five workloads of peers.py on tfgrad and on every installed peer.

    python benchmarks/run.py                            # every system that is installed
    python benchmarks/run.py --json run1.json           # also write the JSON record
    python benchmarks/run.py --only tfgrad-taichi,torch --cases tiny_chain,mlp_step
    python benchmarks/run.py --smoke                    # tiny sizes: a correctness run
    python benchmarks/run.py --compare run1.json run2.json   # run-to-run spread
    python benchmarks/run.py --list                     # systems and workloads

The harness is ``peers.py`` (vendored, see its docstring): each system runs in its own
subprocess (this script, as a worker), every cell is checked against the float64 NumPy
reference before its time counts, and a missing peer is skipped with a note. tfgrad's systems
come from ``tfgrad_systems.py`` through peers.py's plug-in point (``peers.SYSTEMS``).

Printed: the table of medians and of first calls (peers.py's), a table of ratios to a
baseline system (``--baseline``, default torch: each cell's median / the baseline's median for
the same workload), and issue 9's goals, met or missed, for tfgrad eager and tfgrad.jit.
Exit status 1 when a cell that ran is wrong (✗) or raised, or a worker crashed.

``--smoke`` shrinks every size (chain of 5 steps, MLP 16-8-4 with batch 4, Rosenbrock N=4,
elementwise 1000) and the time budget, for tests/test_benchmarks_smoke.py; its times mean
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import peers  # noqa: E402  (the vendored harness)
import tfgrad_systems  # noqa: E402

SMOKE_SIZES = dict(
    CHAIN_STEPS=5,
    MLP_SHAPES=[(16, 8), (8,), (8, 4), (4,)],
    MLP_BATCH=4,
    HVP_BATCH=4,
    BIG_N=1000,
    CASES=["tiny_chain", "mlp_step", "hessian_rosen_4", "hvp_ratio", "elementwise_big"],
)
SMOKE_BUDGET = 0.05
FULL_SIZES = {k: getattr(peers, k) for k in SMOKE_SIZES}

# issue 9's goals (issue 5's first-call goals kept): (workload, system, what, limit, compared with)
#   what "ratio": median / the other system's median <= limit
#   what "hvp":   the system's own HVP / gradient time <= limit
#   what "first": first call (seconds; the larger of gradient and HVP) <= limit
EAGER, JIT = "tfgrad-taichi", "tfgrad-jit"
GOALS = [
    ("tiny_chain", EAGER, "ratio", 1.0, "torch"),
    ("tiny_chain", JIT, "ratio", 1.0, "jax-jit"),
    ("mlp_step", EAGER, "ratio", 1.2, "torch"),
    ("mlp_step", JIT, "ratio", 0.8, "torch"),
    ("hessian_rosen_32", EAGER, "ratio", 0.5, "torch"),
    ("hessian_rosen_32", JIT, "ratio", 2.0, "jax-jit"),
    ("hessian_rosen_128", EAGER, "ratio", 0.5, "torch"),
    ("hessian_rosen_128", JIT, "ratio", 2.0, "jax-jit"),
    ("hvp_ratio", EAGER, "hvp", 2.0, None),
    ("hvp_ratio", JIT, "hvp", 1.2, None),
    ("elementwise_big", EAGER, "ratio", 1.0, "torch"),
    ("elementwise_big", JIT, "ratio", 0.5, "torch"),
    ("elementwise_big", JIT, "ratio", 1.0, "numpy_floor"),
] + [(case, s, "first", 1.0, None) for s in (EAGER, JIT) for case in peers.CASES]


def configure(smoke: bool) -> None:
    """Register tfgrad's systems at peers.py's plug-in point, set the sizes (full or smoke),
    and make the workers run this script (so they see both)."""
    peers.SYSTEMS.update(tfgrad_systems.SYSTEMS)
    for name, value in (SMOKE_SIZES if smoke else FULL_SIZES).items():
        setattr(peers, name, value)
    peers.WORKER_ARGV = [str(Path(__file__).resolve())] + (["--smoke"] if smoke else [])


def system_order() -> list[str]:
    ours = list(tfgrad_systems.SYSTEMS)
    return ours + [n for n in peers.SYSTEMS if n not in ours]


def tfgrad_version() -> str | None:
    try:
        return peers.importlib.metadata.version("tfgrad")
    except peers.importlib.metadata.PackageNotFoundError:
        return None


def planned_result(name: str, cases: list[str]) -> dict:
    """A system that is listed but not built: every cell says so; nothing runs."""
    return dict(
        system=name,
        versions={"tfgrad": tfgrad_version()},
        setup_note="not run",
        planned=peers.SYSTEMS[name]["planned"],
        cases={c: dict(status="not built") for c in cases},
    )


def git_state() -> dict:
    def git(*args):
        out = subprocess.run(["git", *args], cwd=HERE, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        status = git("status", "--porcelain", "--", ".")
        return dict(
            commit=git("rev-parse", "HEAD"), dirty=bool(status) if status is not None else None
        )
    except OSError:
        return dict(commit=None, dirty=None)


# ---------------------------------------------------------------------------
# Ratios and goals
# ---------------------------------------------------------------------------
def _ok(c: dict | None) -> bool:
    return bool(c) and c.get("status") == "ok"


def _cell(results: dict, system: str, case: str) -> dict | None:
    r = results.get(system)
    return r["cases"].get(case) if r and "cases" in r else None


def ratios(results: list[dict], cases: list[str], baseline: str) -> dict:
    """{system: {case: ratio or [grad ratio, hvp ratio]}} for cells that are ✓ on both sides."""
    by = {r["system"]: r for r in results}
    out: dict = {}
    for r in results:
        if "cases" not in r:
            continue
        row = out.setdefault(r["system"], {})
        for case in cases:
            c, b = _cell(by, r["system"], case), _cell(by, baseline, case)
            if not (_ok(c) and _ok(b)):
                continue
            if case == "hvp_ratio":
                row[case] = [c[k]["median_s"] / b[k]["median_s"] for k in ("grad", "hvp")]
            else:
                row[case] = c["median_s"] / b["median_s"]
    return out


def ratio_markdown(results: list[dict], cases: list[str], baseline: str, rat: dict) -> str:
    by = {r["system"]: r for r in results}
    if baseline not in by or "cases" not in by[baseline]:
        return f"(No ratio table: the baseline {baseline} is not in this run; see --baseline.)"
    names = [r["system"] for r in results if "cases" in r]
    lines = [
        f"Ratio to {baseline} (each cell's median / {baseline}'s median for the same "
        "workload; below 1 is faster):",
        "",
        "| workload | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for case in cases:
        cells = []
        for n in names:
            c = _cell(by, n, case) or {}
            v = rat.get(n, {}).get(case)
            if c.get("status") == "not built":
                cells.append("not built yet")
            elif c.get("status") == "fail":
                cells.append("✗")
            elif c.get("status") == "error":
                cells.append("error")
            elif v is None:
                cells.append("—")
            elif case == "hvp_ratio":
                cells.append(f"{peers.fmt_num(v[0])}× / {peers.fmt_num(v[1])}×")
            else:
                cells.append(f"{peers.fmt_num(v)}×")
        label = "hvp_ratio (grad / hvp)" if case == "hvp_ratio" else case
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(results: list[dict], cases: list[str]) -> list[dict]:
    by = {r["system"]: r for r in results}
    out = []
    for case, system, what, limit, other in GOALS:
        if case not in cases or system not in by:
            continue
        who = "jit" if system == JIT else "eager"
        if what == "ratio":
            goal = f"{who} ≤ {limit:.1f}× {other}"
        elif what == "hvp":
            goal = f"{who} HVP / gradient ≤ {limit:.1f}"
        else:
            goal = f"{who} first call < {limit:g} s"
        g = dict(workload=case, system=system, goal=goal, value=None, met=None)
        c = _cell(by, system, case)
        if by[system].get("planned") or (c or {}).get("status") == "not built":
            g["measured"] = "not built yet"
        elif not _ok(c):
            g["measured"] = "no ✓ result" if c is not None else by[system].get("skipped", "—")
        elif what == "ratio":
            o = _cell(by, other, case)
            if not _ok(o):
                g["measured"] = f"{other} not in this run"
            else:
                g["value"] = c["median_s"] / o["median_s"]
                unit, mult = peers.UNIT.get(case, ("ms", 1e3))
                g["measured"] = (
                    f"{peers.fmt_num(g['value'])}× ({peers.fmt_num(c['median_s'] * mult)} vs "
                    f"{peers.fmt_num(o['median_s'] * mult)} {unit})"
                )
        elif what == "hvp":
            g["value"] = c["ratio"]
            g["measured"] = f"{c['ratio']:.2f}"
        else:
            first = (
                max(c[k]["first_s"] for k in ("grad", "hvp"))
                if case == "hvp_ratio"
                else (c["first_s"])
            )
            g["value"] = first
            g["measured"] = f"{first:.2f} s"
        if g["value"] is not None:
            g["met"] = g["value"] <= limit
        out.append(g)
    return out


def goals_markdown(gs: list[dict]) -> str:
    lines = [
        "Issue 9 goals (and issue 5's first calls) in this run:",
        "",
        "| workload | goal | measured | met |",
        "|---|---|---|---|",
    ]
    for g in gs:
        met = {True: "met", False: "**missed**", None: "—"}[g["met"]]
        lines.append(f"| {g['workload']} | {g['goal']} | {g['measured']} | {met} |")
    return "\n".join(lines)


def report(results: list[dict], cases: list[str], baseline: str, smoke: bool):
    """-> (markdown, ratios, goals): peers.py's tables, the ratio table, the goals."""
    rat = ratios(results, cases, baseline)
    gs = [] if smoke else goals(results, cases)
    parts = []
    if smoke:
        parts.append(
            "**Smoke run** (tiny sizes, short budget): correctness only, times mean nothing.\n"
        )
    parts += [peers.markdown(results, cases), "", ratio_markdown(results, cases, baseline, rat)]
    if gs:
        parts += ["", goals_markdown(gs)]
    return "\n".join(parts), rat, gs


def show(path: str, baseline: str | None) -> None:
    """Print the tables of a --json record again (e.g. with another --baseline)."""
    with open(path) as fh:
        record = json.load(fh)
    configure(record.get("smoke", False))
    m, tg = record["machine"], record["machine"].get("tfgrad") or {}
    where = f" at {tg['commit'][:10]}" if tg.get("commit") else ""
    where += " (+ uncommitted changes)" if tg.get("dirty") else ""
    load = m.get("loadavg_start")
    print(
        f"{path}: {record['date']}, {m['nproc']} cpus, {m['cpu_model']}"
        + (f", load average {load[0]:.2f} at the start" if load else "")
        + f"; tfgrad {tg.get('version')}{where}\n"
    )
    print(
        report(
            record["results"],
            record["cases"],
            baseline or record["baseline"],
            record.get("smoke", False),
        )[0]
    )


def broken(results: list[dict]) -> list[str]:
    """Cells that ran and are wrong or raised, and workers that crashed or timed out."""
    bad = []
    for r in results:
        if "skipped" in r and not r["skipped"].startswith("not installed"):
            bad.append(f"{r['system']}: {r['skipped']}")
        for case, c in r.get("cases", {}).items():
            if c.get("status") in ("fail", "error"):
                bad.append(f"{r['system']} {case}: {c.get('error') or 'err=%.1e' % c['err']}")
    return bad


# ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write all results to this JSON file")
    ap.add_argument("--only", help="comma-separated systems (default: all); see --list")
    ap.add_argument("--cases", help="comma-separated workloads (default: all)")
    ap.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of timed repeats per cell (default 1.0; 0.05 with --smoke)",
    )
    ap.add_argument("--timeout", type=float, default=600, help="seconds per system")
    ap.add_argument(
        "--baseline", default=None, help="the system the ratio table divides by (default torch)"
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes and a short budget: checks correctness, times mean nothing",
    )
    ap.add_argument("--show", metavar="RUN.json", help="print the tables of a --json record")
    ap.add_argument("--list", action="store_true", help="list systems and workloads")
    ap.add_argument(
        "--compare",
        nargs="+",
        metavar="RUN.json",
        help="print the run-to-run spread of two or more --json outputs",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    configure(args.smoke)
    budget = args.budget if args.budget is not None else SMOKE_BUDGET if args.smoke else 1.0
    cases = args.cases.split(",") if args.cases else list(peers.CASES)
    if args.worker:
        with open(args.worker_out, "w") as fh:
            json.dump(peers.run_worker(args.worker, cases, budget), fh)
        return 0
    if args.show:
        show(args.show, args.baseline)
        return 0
    args.baseline = args.baseline or "torch"
    if args.compare:
        if len(args.compare) < 2:
            ap.error("--compare needs at least two JSON files")
        print(peers.compare(args.compare))
        return 0
    if args.list:
        for n in system_order():
            s = peers.SYSTEMS[n]
            print(f"{n:14s} {s['planned'] if s.get('planned') else ', '.join(s['workloads'])}")
        print("workloads:", ", ".join(peers.CASES))
        return 0
    names = args.only.split(",") if args.only else system_order()
    unknown = [n for n in names if n not in peers.SYSTEMS]
    unknown += [c for c in cases if c not in peers.CASES]
    if unknown:
        ap.error(
            f"unknown system or workload: {unknown}; see --list"
            + (" (--smoke has its own workload sizes)" if args.smoke else "")
        )

    info = peers.machine_info()
    info["loadavg_start"] = os.getloadavg()
    info["tfgrad"] = dict(version=tfgrad_version(), **git_state())
    info["reference_selfcheck"] = peers.reference_selfcheck()
    print(
        f"machine: {info['nproc']} cpus, {info['cpu_model']}, python {info['python']}, "
        f"load average {info['loadavg_start'][0]:.2f}",
        file=sys.stderr,
    )
    results = []
    for n in names:
        if peers.SYSTEMS[n].get("planned"):
            results.append(planned_result(n, cases))
            print(f"{n}: not built yet", file=sys.stderr, flush=True)
            continue
        t0 = time.perf_counter()
        results.append(peers.run_system(n, cases, budget, args.timeout))
        print(f"{n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    info["loadavg_end"] = os.getloadavg()

    text, rat, gs = report(results, cases, args.baseline, args.smoke)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                dict(
                    date=time.strftime("%Y-%m-%d %H:%M:%S"),
                    machine=info,
                    cases=cases,
                    budget_s=budget,
                    smoke=args.smoke,
                    baseline=args.baseline,
                    results=results,
                    ratios=rat,
                    goals=gs,
                ),
                fh,
                indent=1,
            )
    bad = broken(results)
    for line in bad:
        print(f"FAILED: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
