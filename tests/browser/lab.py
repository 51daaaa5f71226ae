"""Driving JupyterLab from Playwright: open a notebook, wait for its kernel, run cells, read the
notebook model, time a cell to its widget's first drawn frame, take screenshots the way a
student sees the page (1280 x 720, the file browser open)."""

from __future__ import annotations

import time

KERNEL_READY_S = 90.0
RUN_S = 120.0
VIEWPORT = {"width": 1280, "height": 720}  # a laptop window

STATE_JS = """(path) => {
  const app = window.jupyterapp;
  if (!app) return {phase: 'no app'};
  const dialogs = [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText);
  const w = app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path) return {phase: 'opening', dialogs};
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return {phase: kernel ? 'kernel' : 'no kernel', dialogs,
          status: kernel ? kernel.status : null,
          connection: kernel ? kernel.connectionStatus : null};
}"""

# The code cells as the notebook model holds them: execution counts, errors, and how many
# outputs are widget views (independent of which cells the windowed notebook keeps in the DOM).
CELLS_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = [...w.content.model.cells].filter(c => c.type === 'code');
  return cells.map(c => {
    const outs = [];
    for (let i = 0; i < c.outputs.length; i++) outs.push(c.outputs.get(i).toJSON());
    return {count: c.executionCount, source: c.sharedModel.getSource(),
            errors: outs.filter(o => o.output_type === 'error')
                        .map(o => o.ename + ': ' + o.evalue),
            widgets: outs.filter(o => o.data &&
                                 o.data['application/vnd.jupyter.widget-view+json']).length};
  });
}"""

# Each command gets a number and only the latest one writes its result: a run-all that
# re-executes a cell cancels that cell's earlier execution, whose promise then settles false,
# and must not be read as the run-all's own result.
RUN_JS = """([command, index]) => {
  const app = window.jupyterapp;
  const w = app.shell.currentWidget;
  const id = window.__tfgradRunId = (window.__tfgradRunId || 0) + 1;
  window.__tfgradRun = undefined;
  app.shell.activateById(w.id);
  if (index !== null) w.content.activeCellIndex = index;
  const settle = (result) => { if (window.__tfgradRunId === id) window.__tfgradRun = result; };
  app.commands.execute(command).then(
    ok => settle(ok === false ? 'failed' : 'ok'),
    err => settle('error: ' + err));
}"""

KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""


def open_notebook(page, server, path: str, kernel: bool = True) -> None:
    """Open ``path`` in JupyterLab and wait until its kernel is idle (or, ``kernel=False``, for
    a notebook whose kernel does not exist: until "No Kernel" is chosen when JupyterLab asks)."""
    page.goto(server.page_url(path), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    page.evaluate(
        "() => { window.__restored = false;"
        " window.jupyterapp.restored.then(() => { window.__restored = true; }); }"
    )
    page.wait_for_function("() => window.__restored === true", timeout=60_000)
    deadline = time.monotonic() + KERNEL_READY_S
    answered = False  # without a kernel: JupyterLab asks which one (the notebook's is unknown)
    while True:
        state = page.evaluate(STATE_JS, path)
        if state.get("dialogs"):
            button = ".jp-mod-accept" if kernel else "button:has-text('No Kernel')"
            page.locator(f".jp-Dialog {button}").first.click()
            answered = True
        elif kernel and state.get("status") == "idle" and state.get("connection") == "connected":
            return
        elif not kernel and answered and state.get("phase") == "no kernel":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"notebook {path} not ready in {KERNEL_READY_S:.0f} s: {state}")
        time.sleep(0.25)


def show_file_browser(page) -> None:
    """The left side bar open on the file browser, as JupyterLab starts for a new user."""
    page.evaluate("""() => {
        const app = window.jupyterapp;
        app.shell.expandLeft && app.shell.expandLeft();
        app.shell.activateById('filebrowser');
        app.shell.activateById(app.shell.currentWidget.id);
    }""")


def run(page, command: str, index: int | None = None, timeout_s: float = RUN_S) -> None:
    """Run a notebook command (``notebook:run-all-cells``, ``notebook:run-cell``, ...) with cell
    ``index`` active, and wait for it and for the kernel to finish."""
    page.evaluate(RUN_JS, [command, index])
    page.wait_for_function("() => window.__tfgradRun !== undefined", timeout=timeout_s * 1000)
    result = page.evaluate("() => window.__tfgradRun")
    page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_s * 1000)
    errors = [e for c in cells(page) for e in c["errors"]]
    assert result == "ok" and not errors, f"{command}: {result}; errors: {errors}"


def cells(page) -> list[dict]:
    return page.evaluate(CELLS_JS)


def cell_index(page, text: str) -> int:
    """The index, among all cells, of the first code cell whose source contains ``text``."""
    return page.evaluate("""(text) => {
        const w = window.jupyterapp.shell.currentWidget;
        return [...w.content.model.cells].findIndex(c => c.type === 'code'
            && c.sharedModel.getSource().includes(text));
    }""", text)  # fmt: skip


def scroll_to_cell(page, index: int) -> None:
    """Bring cell ``index`` to the top of the notebook (a windowed notebook keeps only the
    cells near the view in the page)."""
    page.evaluate("""async (index) => {
        const w = window.jupyterapp.shell.currentWidget;
        await w.content.scrollToItem(index, 'start');
    }""", index)  # fmt: skip
    page.wait_for_timeout(300)


def time_to_first_frame(page, index: int, selector: str) -> float:
    """Run cell ``index`` and return the seconds from the run command to the first animation
    frame in which ``selector`` (the widget's drawing) is in the page."""
    page.evaluate("""(selector) => {
        window.__t0 = performance.now(); window.__t1 = undefined;
        const poll = () => {
            if (document.querySelector(selector)) window.__t1 = performance.now();
            else requestAnimationFrame(poll);
        };
        requestAnimationFrame(poll);
    }""", selector)  # fmt: skip
    page.evaluate(RUN_JS, ["notebook:run-cell", index])
    page.wait_for_function("() => window.__t1 !== undefined", timeout=RUN_S * 1000)
    # The kernel can report idle before the cell's reply settles the command: wait for both.
    page.wait_for_function("() => window.__tfgradRun !== undefined", timeout=RUN_S * 1000)
    page.wait_for_function(KERNEL_IDLE_JS, timeout=RUN_S * 1000)
    result = page.evaluate("() => window.__tfgradRun")
    assert result == "ok", f"notebook:run-cell {index}: {result}"
    return page.evaluate("() => (window.__t1 - window.__t0) / 1000")


def kernel_output(page, code: str) -> str:
    """Run ``code`` in the notebook's kernel (silently: no cell, no history) and return what it
    printed: how a test reads the kernel's side of a widget."""
    return page.evaluate("""async (code) => {
        const w = window.jupyterapp.shell.currentWidget;
        const future = w.sessionContext.session.kernel.requestExecute(
            {code, silent: false, store_history: false});
        let out = "";
        future.onIOPub = (msg) => {
            if (msg.header.msg_type === "stream") out += msg.content.text;
            if (msg.header.msg_type === "error") out += "ERROR " + msg.content.evalue;
        };
        await future.done;
        return out;
    }""", code)  # fmt: skip


def screenshot(page, path) -> None:
    """The whole window, as the student sees it."""
    page.screenshot(path=str(path))


def center(locator) -> None:
    """Scroll the notebook so that ``locator``'s element is in the middle of the window."""
    locator.evaluate("(el) => el.scrollIntoView({block: 'center'})")
    locator.page.wait_for_timeout(300)
