"""How pytest-xdist shares the suite between processes (``-n auto --dist loadfile`` in
pyproject.toml): how many workers, which tests run together on one worker, in what order, and
a Taichi offline cache of each worker's own.

At the repository root so that it holds for every run, ``pytest notebooks/`` included.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

# One worker runs these one after another, as a run without xdist does: the Jupyter servers and
# kernels find free ports by binding and releasing them (a race between processes), nbval runs
# a notebook's cells in order on one kernel, and both installs build the package in the
# repository root (tfgrad.egg-info), one of them reinstalling it into the venv the others start.
CHILD_PROCESS_TESTS = (
    "tests/test_binder.py",
    "tests/test_setup_commands.py",
    "tests/notebooks/",
    "tests/browser/",
    "notebooks/",
)
CHILD_PROCESS_GROUP = "child-processes"
# The kernel tests compile most of the suite's kernel variants (the matmul tests some 115 of them,
# a dtype's about 16), each in a second or two: a group per dtype across these files spreads
# them over the workers, and a variant that two of the files use is compiled on one worker.
KERNEL_TESTS = "tests/backends/"
DTYPE_IN_TEST_ID = re.compile(r"\b(bool|int32|int64|float16|bfloat16|float32|float64)\b")
# Past this many workers the child-process group (a quarter of the suite's time) bounds the run.
MOST_WORKERS = 4


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, within its cgroup's CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:  # cgroup v2: "max 100000" or "<quota> <period>" in microseconds
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cpus or 1


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker per usable CPU (xdist's own count ignores CPU quotas); none on
    one CPU, where a worker process only adds its start-up and a second compile of kernels."""
    cpus = min(usable_cpus(), MOST_WORKERS)
    return cpus if cpus > 1 else 0


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    # NOTE: Taichi 1.7 takes its offline cache's lock for at most 5 x 50 ms, and a process that
    # misses it warns (into a notebook's output, in a kernel) and compiles without the cache. A
    # worker writes its whole cache when Taichi starts again and when it exits, so workers
    # sharing one folder would block each other, and each other's notebook kernels. A folder per
    # worker, inside the usual one, which its notebook kernels and other children inherit.
    os.environ["TI_OFFLINE_CACHE_FILE_PATH"] = os.path.join(
        taichi_cache_folder(), f"pytest-xdist-{worker}"
    )


def taichi_cache_folder() -> str:
    """Where Taichi keeps its offline cache: ``$TI_OFFLINE_CACHE_FILE_PATH``, else Taichi 1.7's
    default on Linux and macOS (asking Taichi means importing it here, before pytest captures
    output, and its import-time messages would land in the run's output)."""
    if os.environ.get("TI_OFFLINE_CACHE_FILE_PATH"):
        return os.environ["TI_OFFLINE_CACHE_FILE_PATH"]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "taichi", "ticache")


def xdist_group(nodeid: str) -> str:
    """The tests that share a worker with test ``nodeid``: by default its file, so that a
    module's fixtures are set up once and the kernels it compiles are compiled on one worker."""
    path = nodeid.split("::")[0]
    if path.startswith(CHILD_PROCESS_TESTS):
        return CHILD_PROCESS_GROUP
    if path.startswith(KERNEL_TESTS):
        dtype = DTYPE_IN_TEST_ID.search(nodeid.partition("[")[2])
        return f"{KERNEL_TESTS}{dtype.group()}" if dtype else path
    return path


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which builds its --dist schedulers
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` with :func:`xdist_group`'s groups for files. (xdist's loadgroup
    reads ``xdist_group`` marks through node ids that pytest 9.2 no longer lets a plugin
    change, and then groups nothing: pytest-xdist issue 1386.)"""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class GroupScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") is not None:
        # With --no-loadscope-reorder the groups go out in the order of the workers' collection:
        # the longest group first, so that it does not run alone at the end.
        items.sort(key=lambda item: xdist_group(item.nodeid) != CHILD_PROCESS_GROUP)
