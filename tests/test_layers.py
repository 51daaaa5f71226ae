"""The layering of tfgrad/ is a contract: import-linter checks the contracts in pyproject.toml
([tool.importlinter]), and each contract is shown to catch a deliberate violation in a copy of
the package, so that a contract that can no longer fail does not pass unnoticed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# contract id -> (a module of tfgrad, an import that breaks the contract when added to it)
VIOLATIONS = {
    "layers": ("tfgrad/tensor.py", "from . import ops"),
    "backends": ("tfgrad/backends/numpy_backend.py", "from ..tensor import Tensor"),
    "backend-layers": ("tfgrad/backends/base.py", "from . import numpy_backend"),
    "compiler-neutral": ("tfgrad/compiler/program.py", "from ..backends.taichi import codec"),
    "no-widgets": ("tfgrad/viz.py", "import matplotlib"),
    "acyclic": ("tfgrad/ops/movement.py", "from . import reduce"),
}


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the tfgrad found first is the one in cwd
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layering_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(VIOLATIONS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize("contract", list(VIOLATIONS))
def test_each_contract_catches_a_violation(tmp_path, contract):
    shutil.copytree(
        ROOT / "tfgrad", tmp_path / "tfgrad", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    kept = lint_imports(tmp_path, "--contract", contract)  # the copy as it is: kept
    assert kept.returncode == 0 and "1 kept, 0 broken" in kept.stdout, kept.stdout + kept.stderr
    module, line = VIOLATIONS[contract]
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n{line}  # a deliberate violation\n")
    result = lint_imports(tmp_path, "--contract", contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 1 broken" in result.stdout, result.stdout
