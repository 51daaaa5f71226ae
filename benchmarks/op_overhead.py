"""Per-op overhead of eager tfgrad on a tiny tensor, beside PyTorch in the same process.

Three costs on a (4,) float64 tensor, in microseconds per op (median of repeats):

- ``outside``: an op with no tape and no trace (``x * y``, ``sin(x)``);
- ``on_tape``: the same op while a ``GradientTape`` records it (the record included);
- ``sweep``: one rule applied in a reverse sweep (a chain of ``CHAIN`` ops swept once; the
  sweep's time divided by the chain's length).

PyTorch's figures are the same three things: no grad, ``requires_grad`` inputs, and
``backward()`` over the same chain. Tiny arrays make every figure overhead: the arithmetic on
four doubles takes nanoseconds.

    python benchmarks/op_overhead.py [--repeats 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import tfgrad as tg

CHAIN = 200  # ops per timed block
ROOT = Path(__file__).resolve().parent.parent


def _per_op(fn, repeats: int) -> float:
    """Median over ``repeats`` blocks of ``fn()`` (which runs CHAIN ops), in us per op."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / CHAIN * 1e6


def tfgrad_costs(repeats: int) -> dict[str, float]:
    x = tg.tensor(np.linspace(0.1, 0.4, 4))
    y = tg.tensor(np.linspace(1.0, 1.3, 4))

    def mul_chain(a):
        for _ in range(CHAIN):
            a = a * y
        return a

    def sin_chain(a):
        for _ in range(CHAIN):
            a = tg.sin(a)
        return a

    def on_tape(chain):
        def run():
            with tg.GradientTape() as tape:
                chain(tape.watch(x))

        return run

    def sweep(chain):
        # Recording is not timed: a persistent tape is recorded once, then swept each time.
        with tg.GradientTape(persistent=True) as tape:
            a = tape.watch(x)
            out = tg.sum(chain(a))
        return lambda: tape.gradient(out, a)

    return {
        "mul outside": _per_op(lambda: mul_chain(x), repeats),
        "sin outside": _per_op(lambda: sin_chain(x), repeats),
        "mul on_tape": _per_op(on_tape(mul_chain), repeats),
        "sin on_tape": _per_op(on_tape(sin_chain), repeats),
        "mul sweep": _per_op(sweep(mul_chain), repeats),
        "sin sweep": _per_op(sweep(sin_chain), repeats),
    }


TORCH_SCRIPT = """
import json, statistics, sys, time
import torch
CHAIN, repeats = json.loads(sys.argv[1])
def per_op(fn):
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / CHAIN * 1e6
x = torch.linspace(0.1, 0.4, 4, dtype=torch.float64)
y = torch.linspace(1.0, 1.3, 4, dtype=torch.float64)
def mul_chain(a):
    for _ in range(CHAIN):
        a = a * y
    return a
def sin_chain(a):
    for _ in range(CHAIN):
        a = torch.sin(a)
    return a
def no_grad(chain):
    def run():
        with torch.no_grad():
            chain(x)
    return run
def on_tape(chain):
    return lambda: chain(x.clone().requires_grad_(True))
def sweep(chain):
    def run():
        a = x.clone().requires_grad_(True)
        out = chain(a).sum()
        start = time.perf_counter()
        out.backward()
        return time.perf_counter() - start
    for _ in range(3):
        run()
    return statistics.median(run() for _ in range(repeats)) / CHAIN * 1e6
print(json.dumps({
    "torch": torch.__version__,
    "mul outside": per_op(no_grad(mul_chain)), "sin outside": per_op(no_grad(sin_chain)),
    "mul on_tape": per_op(on_tape(mul_chain)), "sin on_tape": per_op(on_tape(sin_chain)),
    "mul sweep": sweep(mul_chain), "sin sweep": sweep(sin_chain),
}))
"""


def torch_costs(repeats: int, python: str | None) -> dict | None:
    """The same figures from an interpreter with torch (this one, or ``python``), if any."""
    candidates = [python] if python else [sys.executable, str(ROOT / ".venv-bench/bin/python")]
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        result = subprocess.run([candidate, "-c", TORCH_SCRIPT, json.dumps([CHAIN, repeats])],
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode == 0:
            return json.loads(result.stdout)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--torch", help="a Python with torch (default: this one, .venv-bench)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    ours = tfgrad_costs(args.repeats)
    theirs = torch_costs(args.repeats, args.torch)
    print(f"per-op cost on (4,) float64, us (chain of {CHAIN}, median of {args.repeats})")
    print(f"{'':14} {'tfgrad':>8} {'torch':>8} {'ratio':>7}")
    for key, value in ours.items():
        if theirs:
            print(f"{key:14} {value:8.2f} {theirs[key]:8.2f} {value / theirs[key]:6.2f}x")
        else:
            print(f"{key:14} {value:8.2f} {'-':>8}")
    if args.json:
        record = {"tfgrad": ours, "torch": theirs, "chain": CHAIN, "repeats": args.repeats}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
