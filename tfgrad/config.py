"""tfgrad's few global switches, in one place: the backend, numerics checking, the cast hook
and determinism.

``tfgrad.init(backend="taichi", arch="cpu")`` picks where numbers live and kernels run; it is
called with those defaults on first use. ``use_backend`` switches for a ``with`` block.
``set_deterministic`` (or ``with deterministic():``) makes every backend compute in a fixed
order; :mod:`tfgrad.determinism` adds seeds to it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator

from .backends import base, pool
from .backends.base import get_backend_class

__all__ = [
    "init", "current_backend", "use_backend", "check_numerics", "numerics_checked", "empty_cache",
    "set_deterministic", "deterministic_enabled", "deterministic",
]  # fmt: skip

DEFAULT_BACKEND = os.environ.get("TFGRAD_BACKEND", "taichi")
DEFAULT_ARCH = os.environ.get("TFGRAD_ARCH", "cpu")

_current: Any = None
_instances: dict[tuple, Any] = {}
_check_numerics = False
# The cast hook: ``policy(op_name, args) -> args``, or None (no casting, the common case, one
# comparison per op). ``bind`` hands it every primitive's arguments before any trace sees them;
# the front ends that name their op hand it theirs before promoting (``to_float``: softmax,
# mean and the other composites; ``promote_args_nobroadcast``: matmul, dot). The casts it makes
# are ops like any other: recorded on tapes, differentiated. ``tfgrad.amp.autocast`` sets it;
# the core knows nothing of amp.
_cast_policy: Callable[[str, tuple], tuple] | None = None


def _make(backend: str, **options) -> Any:
    key = (backend, tuple(sorted(options.items())))
    if key not in _instances:
        _instances[key] = get_backend_class(backend)(**options)
    return _instances[key]


def init(
    backend: str = "taichi", arch: str | None = None, dispatch: str | None = None, **options
) -> Any:
    """Choose the backend (``"taichi"`` or ``"numpy"``) and, for Taichi, the arch and dispatch.

    ``arch="cpu"`` (the default) runs Taichi's CPU kernels; ``arch="gpu"`` picks CUDA, Vulkan or
    Metal where Taichi finds one, and raises :class:`~tfgrad.errors.BackendError` when none is
    found. ``dispatch="auto"`` (the default) runs each op with the implementation measured
    fastest for its dtype and size (BLAS for a CPU matmul, NumPy for a tiny array, else Taichi);
    ``dispatch="taichi-only"`` runs every op as a Taichi kernel. Returns the backend object.

    >>> import tfgrad
    >>> tfgrad.init(backend="numpy").name
    'numpy'
    """
    global _current
    if backend == "taichi":
        options["arch"] = arch or DEFAULT_ARCH
        options["dispatch"] = dispatch or "auto"
    elif dispatch is not None:
        from .errors import BackendError

        raise BackendError(f"The {backend} backend has one implementation; drop dispatch=.")
    elif arch not in (None, "cpu"):
        from .errors import BackendError

        raise BackendError(f"The {backend} backend runs on the CPU only; drop arch={arch!r}.")
    _current = _make(backend, **options)
    return _current


def current_backend() -> Any:
    """The backend new tensors and ops use (initialised with defaults on first use)."""
    if _current is None:
        if DEFAULT_BACKEND == "taichi":
            return init("taichi", arch=DEFAULT_ARCH)
        return init(DEFAULT_BACKEND)
    return _current


@contextlib.contextmanager
def use_backend(backend: str = "taichi", arch: str | None = None, **options) -> Iterator[Any]:
    """Run a ``with`` block on another backend, then restore the previous one."""
    global _current
    previous = _current
    try:
        yield init(backend, arch, **options)
    finally:
        _current = previous


@contextlib.contextmanager
def check_numerics(enabled: bool = True) -> Iterator[None]:
    """Raise :class:`~tfgrad.errors.NumericalError` where an op turns finite inputs into NaN/inf.

    For debugging: every op's output is inspected, which costs a copy to the host per op.
    """
    global _check_numerics
    previous = _check_numerics
    _check_numerics = enabled
    try:
        yield
    finally:
        _check_numerics = previous


def numerics_checked() -> bool:
    return _check_numerics


def set_cast_policy(policy: Callable[[str, tuple], tuple] | None) -> Any:
    """Install the cast hook (see ``_cast_policy`` above) and return the one it replaces, for
    the caller to restore. A feature's hook: ``tfgrad.amp.autocast`` is the public switch. A
    hook may have a ``state()`` method (see :func:`cast_state`)."""
    global _cast_policy
    previous = _cast_policy
    _cast_policy = policy
    return previous


def cast_state() -> Any:
    """What the cast hook would do now, as a hashable value (None: no hook, or one that casts
    nothing here): ``tfgrad.jit`` keys its compiled programs on it, since a program traced
    under autocast holds the casts it saw."""
    policy = _cast_policy
    if policy is None:
        return None
    state = getattr(policy, "state", None)
    return policy if state is None else state()


def set_deterministic(enabled: bool = True) -> None:
    """Compute every reduction and matmul in a fixed order (``enabled``), so that two runs, and
    runs on any number of threads, give bitwise-equal results; ``False`` restores the default.

    The one switch of deterministic mode, for every backend: a CPU float matmul runs the Taichi
    kernel (one accumulator along k) instead of BLAS, whose blocking depends on its thread
    count; the NumPy backend's matmul takes the same order (and gives the same bits). What it
    costs, and what is deterministic without it: :mod:`tfgrad.determinism`.

    >>> import tfgrad
    >>> tfgrad.config.set_deterministic(True); tfgrad.config.deterministic_enabled()
    True
    >>> tfgrad.config.set_deterministic(False)
    """
    base.set_fixed_order(enabled)


def deterministic_enabled() -> bool:
    """Whether deterministic mode is on (see :func:`set_deterministic`)."""
    return base.fixed_order()


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Deterministic mode (:func:`set_deterministic`) for a ``with`` block, then as before."""
    previous = base.fixed_order()
    base.set_fixed_order(enabled)
    try:
        yield
    finally:
        base.set_fixed_order(previous)


def empty_cache() -> int:
    """Give back to the OS the big host buffers (1 MiB and up) that the CPU backends keep for
    reuse, and return how many bytes that released.

    A freed big buffer goes to a free list by size (at most ``TFGRAD_POOL_BYTES``, default
    1 GiB) instead of the OS, so the next step's buffers of that size reuse memory already
    faulted in; a buffer is reused only once nothing refers to it. Call this to shrink a
    process after big work; ``TFGRAD_POOL_BYTES=0`` turns the pool off.
    """
    return pool.empty_cache()
