"""The dispatch policy: which implementation runs each backend op, by op, dtype and size.

Three implementations exist on the CPU:

- ``"taichi"``: the op's Taichi kernel (every op has one);
- ``"blas"``: the reference backend's function for a floating-point op of the linear-algebra
  family: ``np.matmul`` for a matmul (OpenBLAS is about twice as fast as the Taichi matmul on
  large products and far faster on small ones: benchmarks/README.md, "Matmul"), an im2col
  product for a convolution (faster than the Taichi kernels at every size measured:
  benchmarks/README.md, "Convolution"); a float16/bfloat16 one widens its inputs to float32
  (exact), runs the float32 function and rounds the result once to its dtype (to nearest,
  ties to even; float16 overflows to inf): the Taichi kernels' "float32 accumulation, one
  rounding", but summed in BLAS's order, so a result may differ from the kernel's by one half
  ulp (benchmarks/README.md, "Half-precision dispatch"); large float16 operands and results
  are converted by Taichi's cast kernel, as fast on subnormals as on normal values (NumPy's
  float16 casts are not: ``TaichiBackend._float16_blas``), as are large float16 casts
  themselves (:data:`FLOAT16_CAST_BELOW`);
- ``"numpy"``: the reference backend's own function for the op (its entry in
  :mod:`tfgrad.backends.numpy_backend`'s table for the op's family), for arrays so small that a
  Taichi launch from Python costs more than the work. In float16/bfloat16 the reference
  function also computes in float32 and rounds each result once, as the kernel does: the same
  bits for every IEEE-exact op (arithmetic, sqrt, compares, casts, moves), within one half ulp
  where float32 library functions differ (exp, tanh, ...) or a sum's order does.

The policy reads an op's family (:class:`tfgrad.backends.base.OpInfo`), never its name. The
NumPy crossover sizes are measured by ``benchmarks/calibrate_dispatch.py`` and read from
``dispatch_thresholds.json`` beside this module: per calibrated family (a cheap elementwise op, a
transcendental, a reduction, a movement op; :data:`CALIBRATED` says which stands for each op
family) and dtype, NumPy runs arrays of fewer elements than the threshold. Modes:

- ``"auto"`` (``tfgrad.init``'s default): the table below;
- ``"taichi-only"``: every op runs its Taichi kernel (teaching, and testing every kernel).

On a GPU, or with device buffers, everything stays Taichi: the buffers live on the device.

Deterministic mode (``tfgrad.config.set_deterministic``, read here as
:func:`tfgrad.backends.base.fixed_order`) sends a matmul to its Taichi kernel instead of BLAS:
the Taichi kernels sum in an order fixed by the shapes (one accumulator along k for a matmul,
fixed blocks and a fixed tree for a reduction), and NumPy's small-array functions are
single-threaded with an order fixed by the shape (pairwise summation), so every op then gives
the same bits on any thread count (a half matmul or convolution too: the Taichi kernel).
OpenBLAS does not: with 1 and 2 threads it gave different
bits for most matmul shapes measured (tfgrad/determinism.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from ...errors import BackendError
from .. import base
from ..base import OpInfo
from . import kernels

__all__ = ["MODES", "THRESHOLDS", "CALIBRATED", "FAMILY", "FLOAT16_CAST_BELOW", "Policy"]

MODES = ("auto", "taichi-only")
TAICHI, BLAS, NUMPY = "taichi", "blas", "numpy"

THRESHOLDS_FILE = Path(__file__).with_name("dispatch_thresholds.json")

# Which calibrated family stands for each op family. Families absent here always run their
# Taichi kernel: take and scatter_add check their indices in the kernel (NumPy would raise an
# IndexError, not tfgrad's ShapeError); matmul has its own rule (BLAS).
CALIBRATED = {
    base.ELEMENTWISE: "elementwise",
    base.COMPARISON: "elementwise",
    base.CAST: "elementwise",
    base.CREATION: "elementwise",
    base.TRANSCENDENTAL: "transcendental",
    base.REDUCTION: "reduction",
    base.MOVEMENT: "movement",
}
# Indexed moves whose indices are already known valid (tfgrad.jit checked them while tracing)
# follow the movement family: NumPy's IndexError can no longer happen.
CHECKED = {base.INDEXING: base.MOVEMENT}
# The calibrated family of every op the Taichi backend runs, read from its kernel tables.
FAMILY = {
    op: CALIBRATED[family]
    for family, table in kernels.TABLES.items()
    if family in CALIBRATED
    for op in table
}

# Only floats leave Taichi, each dtype by its own measured thresholds (halves pay two float32
# conversions in NumPy, so their crossovers are lower); integer/bool inputs keep their kernels'
# dtype checks.
FLOAT32, FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
HALVES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16))
FLOATS = (FLOAT32, FLOAT64) + HALVES


def _load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, dict[np.dtype, int]]:
    """``{family: {dtype: numpy_below}}`` from the calibration file (NumPy below that size)."""
    data = json.loads(path.read_text())
    return {
        family: {np.dtype(name): int(n) for name, n in by_dtype.items()}
        for family, by_dtype in data["numpy_below"].items()
    }


THRESHOLDS = _load_thresholds()

# A conversion to or from float16 of this many elements or more runs Taichi's cast kernel
# whatever the calibrated family says: NumPy's float16 casts take a slow path for values in
# float16's subnormal range (float32 -> float16 ~35x, float16 -> float32 ~11x slower than on
# normal values; the small gradients of a float16 sweep are such values), the kernel does not,
# and from 2^16 elements it is as fast as NumPy's fast path (benchmarks/README.md, "float16
# casts"). A product on BLAS converts its large float16 operands so too.
FLOAT16_CAST_BELOW = 1 << 16
FLOAT16 = np.dtype(np.float16)


BOOL = np.dtype(np.bool_)


def _size(bufs: tuple, params: dict) -> int:
    """The elements an op touches, as the calibration counts them: its largest array, the
    output shape a parameter gives included (creation ops, broadcast_to)."""
    size = max(b.size for b in bufs) if bufs else 0
    if not params:
        return size
    shape = params.get("shape")
    if shape is not None:
        shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
        size = max(size, math.prod(shape))
    if "n" in params:  # arange(n) makes n elements, eye(n, m) n * m (m = None: n)
        n, m = params["n"], params.get("m", 1)
        size = max(size, n * (n if m is None else m))
    return size


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
        # {family: {dtype: BLAS or numpy_below}}; a family or dtype not in it runs Taichi.
        self.table: dict[str, dict[np.dtype, Any]] = {}
        self.checked: dict[str, dict[np.dtype, Any]] = {}
        if mode == "taichi-only" or device != "cpu":
            return
        self.table[base.LINALG] = dict.fromkeys(FLOATS, BLAS)
        for family, calibrated in CALIBRATED.items():
            below = thresholds.get(calibrated, {})
            self.table[family] = {d: below[d] for d in FLOATS if below.get(d, 0) > 0}
        self.checked = {family: self.table[follows] for family, follows in CHECKED.items()}

    def choose(
        self, op: base.OpInfo | str, bufs: tuple, params: dict, indices_checked: bool = False
    ) -> str:
        """The implementation for ``op`` (a name, or its :class:`~tfgrad.backends.base.OpInfo`)
        on ``bufs``; ``indices_checked``: a take/scatter_add whose indices are known to be in
        range (so NumPy may run it)."""
        family = op.family if type(op) is OpInfo else kernels.family_of(op)
        rules = self.table.get(family) or (self.checked.get(family) if indices_checked else None)
        if not rules:
            return TAICHI
        # The dtype the op computes in: its first input, or the second where the first is a bool
        # mask (where's condition); a creation op's parameter.
        if bufs:
            dtype = bufs[0].dtype
            if dtype == BOOL and len(bufs) > 1:
                dtype = bufs[1].dtype
        else:
            dtype = np.dtype(params["dtype"])
        rule = rules.get(dtype)
        if family == base.CAST and (dtype == FLOAT16 or params["dtype"] == FLOAT16):
            rule = FLOAT16_CAST_BELOW
        if rule is None:
            return TAICHI
        if rule == BLAS:  # BLAS blocks the sum along k by thread count: not in fixed order
            return TAICHI if base.fixed_order() else BLAS
        return NUMPY if _size(bufs, params) < rule else TAICHI

    def __repr__(self) -> str:
        return f"Policy(mode={self.mode!r}, device={self.device!r})"
