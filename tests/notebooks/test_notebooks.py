"""The tutorials as committed: executed, free of errors, with checked numbers, and each one
runs top to bottom in under a minute (nbval, run by the same pytest command, compares the
outputs of the cells tagged ``nbval-check-output``)."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
BUDGET_S = 60.0


def test_the_tutorials_exist():
    assert [p.name for p in NOTEBOOKS][:2] == ["00_start.ipynb", "01_the_tape.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_and_checked(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count is not None for c in code), "commit it executed"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"committed with error outputs: {errors}"
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "run top to bottom in one kernel session"
    checked = [c for c in code if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked, "tag the cells whose numbers matter with nbval-check-output"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom_within_a_minute(path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=int(BUDGET_S), kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - start
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.1f} s (budget {BUDGET_S:.0f} s)"
