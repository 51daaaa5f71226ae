"""Deterministic mode (``import tfgrad.determinism as det``): bitwise-equal results across runs
and thread counts, and per-operation seeds derived from one global seed.

>>> import tfgrad as tg
>>> import tfgrad.determinism as det
>>> det.set_deterministic(True, seed=7)
>>> det.is_deterministic(), det.operation_seed("dropout/1") == det.operation_seed("dropout/1")
(True, True)
>>> det.reset_deterministic_state()

While it is on, every reduction and matmul runs in an order fixed by the shapes alone, on every
backend (the core's one switch, :func:`tfgrad.config.set_deterministic`, which this module
sets): two runs, and runs with 1 or 2 threads, give the same bits for results, gradients and
trained weights (tests/test_determinism.py checks a training loop in child processes with 1
and 2 threads).

Where nondeterminism came from (measured with Taichi 1.7.4, NumPy 2.4's OpenBLAS 0.3.31, on
2 cores; ``benchmarks/determinism_cost.py --threads`` repeats it):

- **BLAS.** Under ``dispatch="auto"`` a CPU float32/float64 matmul runs ``np.matmul``, and
  OpenBLAS with 1 and 2 threads gave different bits for 64x784x128, 128x784x256,
  1000x2000x300 and a vector (2000) times a matrix (2000x300), and so for an MLP's training
  step, on both backends (not for 512x512x512 nor 1x4096x256); the same thread count gave the
  same bits run to run.
  Deterministic mode sends the matmul to the Taichi kernel, which sums ``p = 0, 1, ..., k-1`` in
  one accumulator per output (parallel over output tiles only). The NumPy backend, whose matmul
  is BLAS too, takes the same order (k outer products, accumulated in order); the two give the
  same bits.
- **Taichi kernels** were already bitwise stable across runs and thread counts, and still are:
  reductions combine fixed blocks (4096 elements, a size independent of threads) through fixed
  lanes and a fixed tree, never atomics; the matmul as above; scatter_add (a gather's gradient)
  gives each output column to one thread, adding in index order; fused kernels are pointwise.
- **NumPy** for small arrays (the auto dispatch's tiny-array path, and the NumPy backend) is
  single-threaded, and its sums take pairwise summation in an order fixed by the shape: stable.
  (So the same sum can differ by an ulp between a small array, through NumPy, and a large one,
  through Taichi: both are deterministic.)
- **Random numbers** are counter-based (:mod:`tfgrad.random`): the same seed gives the same
  draws everywhere. :func:`operation_seed` gives each named operation its own seed, derived
  from the global seed by SHA-256, never from Python's salted ``hash``: stable across processes
  and independent of the order in which the names are first asked for.

What it costs (measured: ``benchmarks/determinism_cost.py``, 2 cores shared with other work,
so BLAS's times varied up to 8x between runs; two runs, deterministic / default time, on
``tfgrad.init()``'s auto dispatch; benchmarks/README.md, "Deterministic mode"):

- reductions: nothing (0.94-1.02: the same kernels in both modes);
- matmul, the Taichi kernel against BLAS: 128x784x256 3.1x (float32), 3.5-3.9x (float64);
  1000x2000x300 float32 1.9-2.1x; 512x512x512 float32 and a vector times a matrix, within
  BLAS's noise (0.2-1.6x, 0.1-5x);
- one SGD step of a 784-256-10 tanh MLP on 128 examples (float32): 0.8-2.2x;
- the NumPy backend's ordered matmul (k NumPy calls) against BLAS: 24-73x at 128x784x256.

With 1 and 2 threads (``--threads``) every one of these cases kept its bits in deterministic
mode.

Deterministic mode does not reach NumPy called directly (``tfgrad.second_order``'s Lanczos and
solvers call BLAS on their small dense matrices). A GPU runs the same fixed-order kernels (it
has no BLAS path), but its bits need not equal the CPU's (FMA contraction); not measured here.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Iterator

from . import config
from .errors import OptionError
from .random import Generator

__all__ = [
    "set_deterministic", "reset_deterministic_state", "is_deterministic", "deterministic",
    "global_seed", "operation_seed", "operation_seeds", "clear_operation_seeds", "generator",
]  # fmt: skip

DEFAULT_SEED = 0

_seed = DEFAULT_SEED
_operation_seeds: dict[str, int] = {}  # name -> seed: the names asked for since the last clear


def _check_seed(seed, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) and not hasattr(seed, "__index__"):
        raise OptionError(
            f"{where}: seed must be an integer, not {type(seed).__name__} ({seed!r}); "
            "pass e.g. seed=0."
        )
    seed = int(seed.__index__())
    if seed < 0:
        raise OptionError(f"{where}: seed must be >= 0, not {seed}; pass e.g. seed=0.")
    return seed


def set_deterministic(enabled: bool = True, seed: int | None = None) -> None:
    """Turn deterministic mode on (``enabled``) or off, and set the global seed (``None``: keep
    it). A new seed forgets the operation seeds derived from the old one.

    Costs nothing to call; what the mode costs per op: the module docstring.
    """
    if seed is not None:
        seed = _check_seed(seed, "set_deterministic")
        global _seed
        if seed != _seed:
            _seed = seed
            _operation_seeds.clear()
    config.set_deterministic(bool(enabled))


def reset_deterministic_state() -> None:
    """Deterministic mode off, the global seed back to 0, no operation seeds."""
    global _seed
    config.set_deterministic(False)
    _seed = DEFAULT_SEED
    _operation_seeds.clear()


def is_deterministic() -> bool:
    """Whether deterministic mode is on (by this module or :func:`tfgrad.config.deterministic`)."""
    return config.deterministic_enabled()


def global_seed() -> int:
    """The seed :func:`operation_seed` derives from (0 until set)."""
    return _seed


def operation_seed(name: str) -> int:
    """The seed of the operation called ``name``: the first 8 bytes of
    ``SHA-256(f"{global_seed}:{name}")`` as an integer below 2**63.

    The same name gives the same seed, in any process and whatever was asked before, until the
    global seed changes; different names give unrelated seeds.

    >>> import tfgrad.determinism as det
    >>> det.operation_seed("init/W1") == det.operation_seed("init/W1") != det.operation_seed("b")
    True
    """
    if not isinstance(name, str):
        raise OptionError(
            f"operation_seed: name must be a str, not {type(name).__name__} ({name!r}); "
            "name the operation, e.g. operation_seed('dropout/layer1')."
        )
    seed = _operation_seeds.get(name)
    if seed is None:
        digest = hashlib.sha256(f"{_seed}:{name}".encode()).digest()
        seed = _operation_seeds[name] = int.from_bytes(digest[:8], "little") >> 1
    return seed


def operation_seeds() -> dict[str, int]:
    """The operation seeds asked for since the last :func:`clear_operation_seeds` (a copy)."""
    return dict(_operation_seeds)


def clear_operation_seeds() -> None:
    """Forget the operation seeds asked for so far (they are derived, so asking again gives the
    same ones while the global seed stays)."""
    _operation_seeds.clear()


def generator(name: str) -> Generator:
    """A fresh :class:`tfgrad.random.Generator` seeded with :func:`operation_seed(name)
    <operation_seed>`: the same draws for the same name and global seed."""
    return Generator(operation_seed(name))


@contextlib.contextmanager
def deterministic(enabled: bool = True, seed: int | None = None) -> Iterator[None]:
    """:func:`set_deterministic` for a ``with`` block; afterwards the mode, the global seed and
    the operation seeds are as they were."""
    global _seed
    saved = config.deterministic_enabled(), _seed, dict(_operation_seeds)
    try:
        set_deterministic(enabled, seed)
        yield
    finally:
        config.set_deterministic(saved[0])
        _seed = saved[1]
        _operation_seeds.clear()
        _operation_seeds.update(saved[2])
