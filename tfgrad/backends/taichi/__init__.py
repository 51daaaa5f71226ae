"""The Taichi backend: every op as a Taichi kernel (see :mod:`.backend`).

One module per job: :mod:`.runtime` (starting Taichi), :mod:`.buffers` (buffers and the views
kernels take), :mod:`.backend` (the backend object), :mod:`.kernels` (the family tables),
:mod:`.dispatch` (which implementation runs an op), :mod:`.fusion` (``tfgrad.jit``'s fused
kernels), and one module per family of ops, each with its kernels, their host adapters and its
table (:mod:`.elementwise`, :mod:`.reduce`, :mod:`.movement`, :mod:`.linalg` and :mod:`.conv`,
:mod:`.creation`), with the scalar helpers they share in :mod:`.codec`. Importing this package
imports Taichi but never calls ``ti.init``: :class:`~.backend.TaichiBackend` does, when it is
constructed.
"""

from __future__ import annotations

import os
import sys
import warnings

# Taichi's own switches, read once when it is imported, set for that import alone (a value the
# user already set wins):
_QUIET_IMPORT = {
    # no "[Taichi] version ..." banner
    "ENABLE_TAICHI_HEADER_PRINT": "False",
    # NOTE: in Jupyter, Taichi otherwise routes in-kernel print() through a buffer it empties
    # after every kernel call, and logs "Graphical python shell detected" (info level) on stderr
    # while importing, before any log level can be set. tfgrad's kernels never print; a user's
    # own kernels that do print to the kernel process's terminal instead (TI_ENABLE_PYBUF=1
    # before the first import restores Taichi's behaviour).
    "TI_ENABLE_PYBUF": "0",
}


def _import_taichi_quietly() -> None:
    # Notebooks should stay clean. The import also trips a DeprecationWarning inside Taichi
    # (locale.getdefaultlocale).
    if "taichi" in sys.modules:
        return
    set_here = [name for name in _QUIET_IMPORT if name not in os.environ]
    os.environ.update({name: _QUIET_IMPORT[name] for name in set_here})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import taichi as ti

        ti.set_logging_level(ti.WARN)  # info lines while kernels are decorated and compiled
    finally:
        for name in set_here:
            del os.environ[name]


_import_taichi_quietly()
