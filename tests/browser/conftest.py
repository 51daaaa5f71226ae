"""Fixtures for the browser tier: the system Chromium (installed with apt only under CI=true;
elsewhere its absence skips these tests and says how to install it), one headless browser, a
JupyterLab server on a free localhost port in throwaway directories, and the artifacts folder.

Playwright drives Debian's Chromium through ``executable_path``: Playwright's own browser
downloads do not work on this project's machines, and the system browser needs none.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

SERVER_START_S = 90.0  # JupyterLab's first start takes 10-20 s on 2 cores
SERVER_STOP_S = 20.0
APT_S = 600.0

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
# Debian's /usr/bin/chromium is a shell launcher around this binary; Playwright starts the
# binary directly so the launcher's flag handling stays out of the way.
DEBIAN_CHROMIUM_BINARY = Path("/usr/lib/chromium/chromium")


WIDGET_NOTEBOOKS = ("01_the_tape.ipynb", "99_widget_gallery.ipynb")
# Root in a container needs --no-sandbox; /dev/shm is small there; there is no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run"]  # fmt: skip


# ---- Chromium ----------------------------------------------------------------------------
def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            if Path(found).resolve() == Path("/usr/bin/chromium") and os.access(
                DEBIAN_CHROMIUM_BINARY, os.X_OK
            ):
                return str(DEBIAN_CHROMIUM_BINARY)
            return found
    if os.access(DEBIAN_CHROMIUM_BINARY, os.X_OK):
        return str(DEBIAN_CHROMIUM_BINARY)
    return None


INSTALL_COMMAND = "sudo apt-get install -y chromium"


def _apt(*args: str) -> subprocess.CompletedProcess:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run([*prefix, "apt-get", *args], env=env, capture_output=True, text=True,
                          timeout=APT_S)  # fmt: skip


def install_chromium(say) -> None:
    """``apt-get install -y chromium`` (``apt-get update`` first if that fails): CI only."""
    if not shutil.which("apt-get") or (os.geteuid() != 0 and not shutil.which("sudo")):
        pytest.fail(f"CI=true and Chromium is missing, but apt-get cannot run here as root: "
                    f"install it first ({INSTALL_COMMAND})")  # fmt: skip
    say("tests/browser: CI=true and Chromium is missing: installing Debian's package now "
        "(apt-get install -y chromium; it changes the system, about 100 packages)")  # fmt: skip
    result = _apt("install", "-y", "chromium")
    if result.returncode != 0:
        update = _apt("update")
        result = _apt("install", "-y", "chromium")
        if result.returncode != 0:
            pytest.fail("apt-get install -y chromium failed:\n"
                        + update.stdout[-2000:] + update.stderr[-2000:]
                        + result.stdout[-3000:] + result.stderr[-3000:])  # fmt: skip
    say("tests/browser: Chromium installed")


def chromium_or_skip(find, install, say, ci: bool) -> str:
    """The path of the system Chromium. Missing, it is installed only when ``ci`` (and ``say``
    tells the log so); anywhere else the browser tests are skipped with the command that
    installs it, since nothing in the test suite changes the system on its own."""
    path = find()
    if path is not None:
        return path
    if not ci:
        pytest.skip(f"Chromium is not installed, so the browser tests did not run: install it "
                    f"with `{INSTALL_COMMAND}` (Debian, Ubuntu), or run under CI=true to let "
                    f"the test set-up install it")  # fmt: skip
    install(say)
    path = find()
    assert path, "Chromium still not found after apt-get install -y chromium"
    return path


@pytest.fixture(scope="session")
def chromium_executable(request) -> str:
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def say(line: str) -> None:  # straight to the terminal, past pytest's capture
        with capture.global_and_fixture_disabled():
            print(line, flush=True)

    ci = os.environ.get("CI") == "true"
    return chromium_or_skip(find_chromium, install_chromium, say, ci)


@pytest.fixture(scope="module")
def browser(chromium_executable):
    """A headless Chromium for the module (Playwright drives the system binary). Not for the
    whole session: Playwright's sync API holds an event loop while it runs, and the tests after
    these start their own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_executable, args=CHROMIUM_ARGS,
                                      timeout=60_000)  # fmt: skip
        yield chromium
        chromium.close()


# ---- Artifacts ---------------------------------------------------------------------------
@pytest.fixture
def page(browser):
    """A fresh page; ``page.errors`` collects the page's uncaught script errors."""
    page = browser.new_page(viewport={"width": 1100, "height": 760})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    yield page
    page.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``$TFGRAD_ARTIFACTS``, else ``<repo>/test-artifacts/`` (git-ignored)."""
    path = Path(os.environ.get("TFGRAD_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- JupyterLab --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_notebook_cleared(src: Path, dst_dir: Path) -> Path:
    """The notebook without outputs or saved widget state, so whatever widget the browser
    shows was rendered live from the kernel (and autosave never touches the repo)."""
    nb = nbformat.read(src, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    dst = dst_dir / src.name
    nbformat.write(nb, dst)
    return dst


@dataclass
class LabServer:
    url: str
    token: str
    root_dir: Path
    log_path: Path
    proc: subprocess.Popen = field(repr=False)

    def page_url(self, path: str) -> str:
        # A workspace of its own for every page, so one test's open tabs never come back in
        # the next (JupyterLab restores the last layout of a workspace).
        workspace = uuid.uuid4().hex[:12]
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset&token={self.token}"

    def log_tail(self, n_lines: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as err:
            return f"(no server log: {err})"
        return "\n".join(lines[-n_lines:])


def _get(url: str, token: str, timeout: float = 5.0) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def _stop(server: LabServer) -> None:
    """Shut the server (and its kernels) down; escalate to signals on the process group,
    then to the kernels it started, if anything is still running."""
    proc = server.proc
    try:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        children = []
    if proc.poll() is None:
        try:
            auth = {"Authorization": f"token {server.token}"}
            request = urllib.request.Request(f"{server.url}/api/shutdown", method="POST",
                                             headers=auth)  # fmt: skip
            urllib.request.urlopen(request, timeout=5).close()
        except (OSError, urllib.error.URLError):
            pass
        try:
            proc.wait(timeout=SERVER_STOP_S)
        except subprocess.TimeoutExpired:
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
    for child in children:  # kernels run in sessions of their own
        try:
            if child.is_running():
                child.kill()
        except Exception:
            pass


def copy_notebook_as_saved(src: Path, dst_dir: Path) -> Path:
    """The notebook as committed (outputs and saved widget state), with a kernel that does not
    exist, so that JupyterLab opens it without starting one: what a reader sees before running
    anything."""
    nb = nbformat.read(src, as_version=4)
    # (a kernel of the same language would be started in its place)
    nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "none",
                                 "language": "no-such-language"}  # fmt: skip
    nb.metadata.pop("language_info", None)
    dst_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dst_dir / src.name)
    return dst_dir / src.name


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory) -> LabServer:
    """JupyterLab on a free localhost port, with throwaway config, data, runtime, settings and
    workspace dirs, serving from a tmp root: cleared copies of the notebooks that show widgets
    (whatever widget the browser then shows was rendered live from the kernel), and under
    ``saved/`` 01_the_tape as committed, without a kernel."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    for name in WIDGET_NOTEBOOKS:
        copy_notebook_cleared(NOTEBOOKS / name, root)
    copy_notebook_as_saved(NOTEBOOKS / "01_the_tape.ipynb", root / "saved")
    dirs = {name: base / name for name in ("config", "data", "runtime", "settings",
                                            "workspaces", "ipython")}  # fmt: skip
    for d in dirs.values():
        d.mkdir()
    # No news or update checks in the page (nothing outside localhost is reachable anyway).
    notification = dirs["settings"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}'
    )
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    token = uuid.uuid4().hex
    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        f"--port={port}", "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    log_path = base / "jupyterlab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log_path, proc)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode} before serving; "
                            f"log tail:\n{server.log_tail()}")  # fmt: skip
            try:
                if _get(f"{server.url}/api/status", token) == 200:
                    break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer /api/status within {SERVER_START_S:.0f} s;"
                            f" log tail:\n{server.log_tail()}")  # fmt: skip
            time.sleep(0.25)
        yield server
    finally:
        _stop(server)
        log.close()


@pytest.fixture(autouse=True)
def _close_widgets():
    # Widgets left to the garbage collector at interpreter exit make ipywidgets complain.
    yield
    from ipywidgets import Widget

    Widget.close_all()
