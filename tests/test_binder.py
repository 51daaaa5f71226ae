"""binder/ holds what Binder (repo2docker) needs to launch the notebooks, checked without Docker.

repo2docker reads only binder/ when that folder exists: runtime.txt pins the Python, and
requirements.txt installs the repository itself with the lab extra. The checks: the files and
the launch link, the Dockerfile that ``repo2docker --no-build`` would build from them, and a
real install of binder/requirements.txt into a fresh virtual environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
RUNTIME = BINDER / "runtime.txt"
REQUIREMENTS = BINDER / "requirements.txt"
POST_BUILD = BINDER / "postBuild"
LANDING = "notebooks/00_start.ipynb"
# The repository has no public home yet: tfgrad/tfgrad is a placeholder (see binder/README.md).
LAUNCH_URL = f"https://mybinder.org/v2/gh/tfgrad/tfgrad/main?urlpath=lab/tree/{LANDING}"
# CPython versions with a taichi 1.7.4 wheel (cp310 to cp313); the slow test checks it for real.
TAICHI_PYTHONS = {"3.10", "3.11", "3.12", "3.13"}
INSTALL_TIMEOUT_S = 900


def runtime_python() -> str:
    text = RUNTIME.read_text(encoding="utf-8").strip()
    match = re.fullmatch(r"python-(3\.\d+)", text)
    assert match, f"binder/runtime.txt must be one line like 'python-3.11', got {text!r}"
    return match.group(1)


def pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def requirement_lines() -> list[str]:
    lines = REQUIREMENTS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def test_binder_folder_is_the_only_configuration():
    assert BINDER.is_dir()
    assert not (ROOT / ".binder").exists(), "repo2docker refuses both binder/ and .binder/"
    # Each of these would override or silence runtime.txt / requirements.txt.
    for name in ("Dockerfile", "environment.yml", "default.nix", "Pipfile", "Pipfile.lock"):
        assert not (BINDER / name).exists(), f"binder/{name} would change what repo2docker reads"


def test_runtime_pins_a_python_with_a_taichi_wheel():
    version = runtime_python()
    assert version in TAICHI_PYTHONS, (
        f"binder/runtime.txt pins Python {version}; taichi 1.7.4 has wheels for "
        f"{sorted(TAICHI_PYTHONS)} only"
    )
    assert "taichi==1.7.4" in pyproject()["project"]["dependencies"]


def test_requirements_install_the_repository_with_the_lab_extra():
    lines = requirement_lines()
    local = [line for line in lines if re.fullmatch(r"(-e\s+)?\.\[[\w,\s-]*\]", line)]
    assert local, f"binder/requirements.txt must install the repository ('-e .[lab]'): {lines}"
    assert any("lab" in re.split(r"[\[\],\s]+", line) for line in local)
    lab = " ".join(pyproject()["project"]["optional-dependencies"]["lab"])
    for package in ("jupyterlab", "ipywidgets", "anywidget"):
        assert package in lab, f"the lab extra must install {package}"


def test_post_build_if_any_is_executable_and_stops_on_errors():
    if not POST_BUILD.exists():
        return  # requirements.txt installs everything; nothing to run after the build
    assert os.access(POST_BUILD, os.X_OK), "binder/postBuild must be executable"
    text = POST_BUILD.read_text(encoding="utf-8")
    assert text.startswith("#!"), "binder/postBuild needs a shebang line"
    assert re.search(r"^\s*set -e", text, re.MULTILINE), "binder/postBuild must `set -e`"


def test_launch_link_opens_the_landing_notebook_in_jupyterlab():
    assert LAUNCH_URL in (BINDER / "README.md").read_text(encoding="utf-8")
    assert LAUNCH_URL in (ROOT / "README.md").read_text(encoding="utf-8"), "the README badge"
    assert (ROOT / LANDING).is_file(), f"the Binder link opens {LANDING}, which does not exist"


def repo2docker_executable() -> str:
    found = shutil.which("repo2docker", path=str(Path(sys.executable).parent))
    found = found or shutil.which("repo2docker")
    assert found, 'repo2docker is missing: install the test extra, pip install -e ".[test]"'
    return found


def test_repo2docker_would_build_what_binder_needs(tmp_path):
    # --no-build prints the generated Dockerfile and never contacts Docker.
    result = subprocess.run(
        [repo2docker_executable(), "--no-build", "--debug", str(ROOT)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"python={runtime_python()}" in output, output
    install = 'pip install --no-cache-dir -r "binder/requirements.txt"'
    assert install in output, output
    copy = output.find("COPY --chown=0:0 src/ ${REPO_DIR}/")
    assert 0 <= copy < output.find(install), "requirements.txt must be installed after the copy"
    if POST_BUILD.exists():
        assert "./binder/postBuild" in output, output


def _run(argv: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{argv}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.mark.slow
def test_binder_requirements_install_in_a_fresh_venv(tmp_path):
    version = runtime_python()
    # The pinned Python if this machine has it, else this one (the wheel is checked below).
    python = shutil.which(f"python{version}") or sys.executable
    venv = tmp_path / "venv"
    _run([python, "-m", "venv", str(venv)], timeout=120)
    venv_python = venv / "bin" / "python"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    # As repo2docker does: from the repository root, exactly binder/requirements.txt.
    _run(
        [venv_python, "-m", "pip", "install", "-r", str(REQUIREMENTS)],
        cwd=ROOT,
        env=env,
        timeout=INSTALL_TIMEOUT_S,
    )
    if POST_BUILD.exists():
        _run(["bash", str(POST_BUILD)], cwd=ROOT, env=env, timeout=INSTALL_TIMEOUT_S)

    # Outside the repository, so that nothing is imported from the working directory.
    _run(
        [venv_python, "-c", "import tfgrad, tfgrad_widgets, ipywidgets, anywidget, jupyterlab"],
        cwd=tmp_path,
        env={**env, "TFGRAD_BACKEND": "numpy"},
        timeout=120,
    )
    extensions = _run(
        [venv / "bin" / "jupyter", "labextension", "list"], cwd=tmp_path, env=env, timeout=120
    )
    listed = extensions.stdout + extensions.stderr
    assert "@jupyter-widgets/jupyterlab-manager" in listed, listed
    assert "anywidget" in listed, listed  # the widgets' base renders through it

    venv_version = _run(
        [venv_python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=60
    ).stdout.strip()
    if venv_version != version:
        # The install above proved the wheel for this Python; prove it for the pinned one.
        _run(
            [venv_python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--python-version", version, "--platform", "manylinux_2_27_x86_64",
             "-d", str(tmp_path / "wheels"), "taichi==1.7.4"],
            env=env,
            timeout=INSTALL_TIMEOUT_S,
        )  # fmt: skip
