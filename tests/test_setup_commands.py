"""The two Quick start commands in README.md are real.

CI (.ci/run) runs exactly the README's test command, and the README's lab
command installs the lab extra and starts a JupyterLab that serves notebooks/.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_RUN = ROOT / ".ci" / "run"
NOTEBOOKS = ROOT / "notebooks"

SERVER_START_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 900


def readme_command(marker: str) -> str:
    """Return the one-line command of the ```sh block right after ``<!-- marker -->``."""
    lines = README.read_text(encoding="utf-8").splitlines()
    tag = f"<!-- {marker} -->"
    assert lines.count(tag) == 1, f"README.md must contain {tag!r} exactly once"
    i = lines.index(tag)
    block = lines[i + 1 : i + 4]
    assert len(block) == 3 and block[0] == "```sh" and block[2] == "```", (
        f"{tag} must be followed by a ```sh block of exactly one line, got {block!r}"
    )
    return block[1]


def test_readme_quick_start_has_exactly_two_shell_commands():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines.count("```sh") == 2
    assert readme_command("lab-command") != readme_command("test-command")


def test_ci_runs_the_readme_test_command():
    command = readme_command("test-command")
    assert "pytest" in command
    assert os.access(CI_RUN, os.X_OK), ".ci/run must be executable"
    assert "test-command" in CI_RUN.read_text(encoding="utf-8")
    # .ci/run extracts the command itself; --print-command shows what it would run.
    result = subprocess.run(
        ["bash", str(CI_RUN), "--print-command"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == command


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def _wait_for_server(base: str, token: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"jupyter lab exited with {process.returncode} before answering:\n"
                + log.read_text(errors="replace")
            )
        try:
            if _get(f"{base}/api/status", token)[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"jupyter lab did not answer within {SERVER_START_TIMEOUT_S} s:\n"
        + log.read_text(errors="replace")
    )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()  # jupyter_server shuts down cleanly on SIGTERM
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: started below
        process.wait(timeout=30)


@pytest.mark.slow
def test_readme_lab_command_installs_and_serves_notebooks(tmp_path):
    command = readme_command("lab-command")
    install, _, launch = command.rpartition(" && ")
    assert install and launch.startswith(".venv/bin/jupyter lab "), command
    assert launch.endswith(" notebooks/"), command

    # The install part exactly as written. After the test command it re-uses that .venv.
    result = subprocess.run(
        install,
        shell=True,
        executable="/bin/bash",
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{install}\n{result.stdout}\n{result.stderr}"

    token = secrets.token_hex(16)
    port = _free_port()
    argv = shlex.split(launch) + [
        "--no-browser",
        f"--IdentityProvider.token={token}",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
    ]
    assert "--allow-root" in argv, "CI and many containers run as root; jupyter refuses without it"
    env = dict(os.environ)
    # Keep the developer's own Jupyter config and runtime files out of the test.
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    log = tmp_path / "jupyter-lab.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_server(base, token, process, log)

            status, page = _get(f"{base}/lab", token)
            assert status == 200 and b"jupyter-config-data" in page

            # The directory argument makes notebooks/ the server's root directory.
            status, body = _get(f"{base}/api/contents/", token)
            assert status == 200
            listing = json.loads(body)
            assert listing["type"] == "directory"
            served = {entry["name"] for entry in listing["content"]}
            expected = {
                path.name
                for path in NOTEBOOKS.iterdir()
                if path.suffix in {".ipynb", ".md"} and not path.name.startswith(".")
            }
            assert expected, "notebooks/ should hold at least a README.md or a notebook"
            assert expected <= served, (expected, served)
            assert "pyproject.toml" not in served, "the server root is the repo, not notebooks/"
        finally:
            _stop(process)
