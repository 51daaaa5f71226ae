"""The process's one Taichi runtime: starting it for an arch, and knowing when it restarted.

``ti.init`` runs the first time a :class:`~.backend.TaichiBackend` is made; another backend with
the same arch and options shares the runtime; a different arch re-initialises Taichi, and every
buffer of the old runtime's device arrays becomes invalid (CPU NumPy buffers survive). The
runtime's *generation* grows with every ``ti.init``, so that what holds compiled kernels or
device buffers can tell that they belong to an older runtime.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import warnings
from typing import Any

import taichi as ti

from ...errors import BackendError

__all__ = ["ARCHS", "start", "generation"]

ARCHS = {
    "cpu": ("cpu",),
    "gpu": ("cuda", "vulkan", "metal"),
    "cuda": ("cuda",),
    "vulkan": ("vulkan",),
    "metal": ("metal",),
}

# Which arch and options the runtime was started with, and its generation.
_RUNTIME: dict[str, Any] = {"key": None, "generation": 0}


def generation() -> int:
    """How many times ``ti.init`` has run in this process (through :func:`start`)."""
    return _RUNTIME["generation"]


def _arch_available(name: str) -> bool:
    from taichi.lang.misc import is_arch_supported  # Taichi 1.7's own probe (no ti.init)

    ti.set_logging_level(ti.ERROR)  # the probe warns about every missing driver library
    try:
        return bool(is_arch_supported(getattr(ti, name)))
    finally:
        ti.set_logging_level(ti.WARN)


def _fp_environment():
    """Save the calling thread's floating-point environment; returns a restore function."""
    # NOTE: ti.init sets flush-to-zero/denormals-are-zero on the calling thread (seen with
    # Taichi 1.7.4 on x86-64): afterwards NumPy in this process turns 1e-310 into 0. Restoring
    # the environment keeps NumPy (and serial kernels, which run on this thread) IEEE-exact.
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        saved = ctypes.create_string_buffer(512)  # larger than any platform's fenv_t
        if libm.fegetenv(saved) != 0:
            return lambda: None
    except (OSError, AttributeError):
        return lambda: None
    return lambda: libm.fesetenv(saved)


def _init_options(ti_options: dict[str, Any]) -> dict[str, Any]:
    options = {
        "offline_cache": True,  # compiled kernels persist between sessions (~/.cache/taichi)
        "log_level": ti.WARN,  # no info lines in notebooks
    }
    # What the user set in the environment (TI_OFFLINE_CACHE=0, TI_LOG_LEVEL=info) wins.
    options = {k: v for k, v in options.items() if f"TI_{k.upper()}" not in os.environ}
    # Always IEEE semantics: NaN and inf as NumPy has them, no contraction, exact constants.
    return {**options, **ti_options, "fast_math": False}


def start(arch: str, ti_options: dict[str, Any]) -> tuple[str, int]:
    """Initialise Taichi for ``arch`` unless it already runs there; return the arch Taichi
    runs on and the runtime's generation."""
    if arch not in ARCHS:
        raise BackendError(
            f"TaichiBackend: unknown arch {arch!r}; use one of {sorted(ARCHS)} "
            "('gpu' picks CUDA, Vulkan or Metal, whichever Taichi finds)."
        )
    chosen = next((a for a in ARCHS[arch] if a == "cpu" or _arch_available(a)), None)
    if chosen is None:
        tried = ", ".join(ARCHS[arch])
        raise BackendError(
            f"TaichiBackend(arch={arch!r}): Taichi found no GPU on this machine (tried {tried}). "
            "Use arch='cpu' (tfgrad.init(arch='cpu')), or install a driver Taichi supports."
        )
    key = (chosen, tuple(sorted(ti_options.items())))
    runtime = ti.lang.impl.get_runtime()
    if _RUNTIME["key"] == key and runtime.prog is not None:
        return chosen, _RUNTIME["generation"]
    restore = _fp_environment()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # Quiet: "[Taichi] Starting on arch=..." and a DeprecationWarning from Taichi's internals
        warnings.simplefilter("ignore", DeprecationWarning)
        ti.init(arch=getattr(ti, chosen), **_init_options(ti_options))
    restore()
    _RUNTIME["generation"] += 1
    actual = ti.lang.impl.current_cfg().arch
    if actual != getattr(ti, chosen):  # Taichi fell back to the CPU, with a warning only
        _RUNTIME["key"] = ("cpu", key[1])
        raise BackendError(
            f"TaichiBackend(arch={arch!r}): Taichi could not start on {chosen} and fell back to "
            "the CPU; no GPU was found. Use arch='cpu' (tfgrad.init(arch='cpu'))."
        )
    _RUNTIME["key"] = key
    return chosen, _RUNTIME["generation"]
