"""Building the documentation site the way its tests do: from a copy of docs/ in a scratch
folder, so the source tree is left untouched, with ``python -m sphinx -W``;
``TFGRAD_DOCS_NOTEBOOKS`` tells docs/conf.py which folder of notebooks to render. Used by
tests/test_docs_site.py and by the browser test that opens the built site offline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BUILD_TIMEOUT_S = 600


def build_site(work: Path, notebooks: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """Build the site from a copy of docs/ in ``work``, rendering ``notebooks/*.ipynb``."""
    source = work / "docs"
    shutil.copytree(
        DOCS, source, ignore=shutil.ignore_patterns("_build", "notebooks", "__pycache__")
    )
    html = work / "html"
    env = dict(os.environ)
    env["TFGRAD_DOCS_NOTEBOOKS"] = str(notebooks)
    env["TFGRAD_BACKEND"] = "numpy"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    argv = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    argv += ["-d", str(work / "doctrees"), str(source), str(html)]
    start = time.perf_counter()
    result = subprocess.run(
        argv, cwd=work, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    print(f"sphinx-build took {time.perf_counter() - start:.1f} s")  # shown with pytest -s
    assert result.returncode == 0, (
        f"sphinx-build -W failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
        f"{result.stderr[-8000:]}"
    )
    return result, html
