"""Run a test script in child processes with 1 and 2 threads (Taichi's, OpenMP's and BLAS's),
each with its own hash salt, and return what each printed last (JSON): how the determinism
tests compare fresh runs across thread counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def results_with_1_and_2_threads(script: str, timeout: float) -> list:
    """Start both children at once, wait for them, and return their last JSON lines."""
    children = []
    for threads in (1, 2):
        env = {**os.environ, "PYTHONHASHSEED": str(threads)}  # a different salt in each
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
        path = os.path.join(os.path.dirname(__file__), script)
        children.append(subprocess.Popen(
            [sys.executable, path, str(threads)], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    results = []
    for child in children:
        out, err = child.communicate(timeout=timeout)
        assert child.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
