"""The dispatch policy: which implementation runs each backend op, by op, dtype and size.

Three implementations exist on the CPU:

- ``"taichi"``: the op's Taichi kernel (every op has one);
- ``"blas"``: ``np.matmul`` for a float32/float64 matmul (OpenBLAS reaches ~180 GFLOP/s here,
  the Taichi matmul 75-170 in float32 on large products and far less on small ones: see
  benchmarks/README.md, "Matmul");
- ``"numpy"``: the reference backend's own function for the op
  (:data:`tfgrad.backends.numpy_backend._OPS`), for arrays so small that a Taichi launch
  (~40 us from Python) costs more than the work.

The NumPy crossover sizes are measured by ``benchmarks/calibrate_dispatch.py`` and read from
``dispatch_thresholds.json`` beside this module: per op family (a cheap elementwise op, a
transcendental, a reduction, a movement op) and dtype, NumPy runs arrays of fewer elements than
the threshold. Modes:

- ``"auto"`` (``tfgrad.init``'s default): the table below;
- ``"taichi-only"``: every op runs its Taichi kernel (teaching, and testing every kernel).

On a GPU, or with device buffers, everything stays Taichi: the buffers live on the device.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from ...errors import BackendError

__all__ = ["MODES", "THRESHOLDS", "Policy"]

MODES = ("auto", "taichi-only")
TAICHI, BLAS, NUMPY = "taichi", "blas", "numpy"

THRESHOLDS_FILE = Path(__file__).with_name("dispatch_thresholds.json")

# Which calibrated family stands for each op. Ops absent here always run their Taichi kernel:
# reshape is a view either way; take and scatter_add check their indices in the kernel (NumPy
# would raise an IndexError, not tfgrad's ShapeError); matmul has its own rule (BLAS).
FAMILY = {
    **dict.fromkeys(
        ("neg", "abs", "sign", "sqrt", "add", "sub", "mul", "div", "maximum", "minimum"),
        "elementwise",
    ),
    **dict.fromkeys(("eq", "ne", "lt", "le", "gt", "ge", "where", "cast"), "elementwise"),
    **dict.fromkeys(("full", "arange", "eye", "random_uniform"), "elementwise"),
    **dict.fromkeys(
        ("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "pow", "random_normal"),
        "transcendental",
    ),
    **dict.fromkeys(("sum", "max", "prod", "cumsum"), "reduction"),
    **dict.fromkeys(("transpose", "broadcast_to", "slice", "concatenate"), "movement"),
}
CREATION = ("full", "arange", "eye", "random_uniform", "random_normal")
# Indexed moves whose indices are already known valid (tfgrad.jit checked them while tracing)
# follow the movement family: NumPy's IndexError can no longer happen.
CHECKED_INDEXING = ("take", "scatter_add")

# Only float32/float64 leave Taichi: the thresholds were measured in those dtypes; float16 and
# bfloat16 keep Taichi (NumPy computes halves through float32 copies), and integer/bool inputs
# keep their kernels' dtype checks.
FLOAT32, FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
HALVES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))


def _load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, dict[np.dtype, int]]:
    """``{family: {dtype: numpy_below}}`` from the calibration file (NumPy below that size)."""
    data = json.loads(path.read_text())
    return {
        family: {np.dtype(name): int(n) for name, n in by_dtype.items()}
        for family, by_dtype in data["numpy_below"].items()
    }


THRESHOLDS = _load_thresholds()


def _data_dtype(op: str, bufs: tuple, params: dict) -> np.dtype:
    if op in CREATION:
        return np.dtype(params["dtype"])
    return bufs[1].dtype if op == "where" else bufs[0].dtype  # where's first input is the mask


def _size(op: str, bufs: tuple, params: dict) -> int:
    """The elements an op touches, as the calibration counts them (its largest array)."""
    if op in ("full", "random_uniform", "random_normal", "broadcast_to"):
        shape = params["shape"]
        return int(shape) if isinstance(shape, (int, np.integer)) else math.prod(shape)
    if op == "arange":
        return params["n"]
    if op == "eye":
        return params["n"] * (params.get("m") or params["n"])
    return max(b.size for b in bufs)


class Policy:
    """The table for one mode on one device: ``choose(op, bufs, params)`` names the
    implementation, ``"taichi"``, ``"blas"`` or ``"numpy"``."""

    def __init__(self, mode: str = "auto", device: str = "cpu", thresholds=None):
        if mode not in MODES:
            raise BackendError(
                f"Unknown dispatch {mode!r}; use one of {list(MODES)} (tfgrad.init(dispatch=...))."
            )
        self.mode = mode
        self.device = device
        thresholds = THRESHOLDS if thresholds is None else thresholds
        # {op: {dtype: BLAS or numpy_below}}; an op or dtype not in it runs Taichi.
        self.table: dict[str, dict[np.dtype, Any]] = {}
        if mode == "taichi-only" or device != "cpu":
            return
        self.table["matmul"] = {FLOAT32: BLAS, FLOAT64: BLAS}
        for op, family in FAMILY.items():
            below = thresholds.get(family, {})
            self.table[op] = {d: below[d] for d in (FLOAT32, FLOAT64) if below.get(d, 0) > 0}
        self.checked = {op: self.table["slice"] for op in CHECKED_INDEXING}

    def choose(self, op: str, bufs: tuple, params: dict, indices_checked: bool = False) -> str:
        """The implementation for ``op`` on ``bufs``; ``indices_checked``: a take/scatter_add
        whose indices are known to be in range (so NumPy may run it)."""
        rules = self.table.get(op) or (self.checked.get(op) if indices_checked else None)
        if not rules:
            return TAICHI
        rule = rules.get(_data_dtype(op, bufs, params))
        if rule is None:
            return TAICHI
        if rule == BLAS:
            return BLAS
        return NUMPY if _size(op, bufs, params) < rule else TAICHI

    def __repr__(self) -> str:
        return f"Policy(mode={self.mode!r}, device={self.device!r})"
