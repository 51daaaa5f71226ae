"""The TapeWidget in a real browser: JupyterLab runs notebooks/01_the_tape.ipynb in headless
Chromium, the widget renders live from the kernel, and its step buttons and slider move the
picture. Screenshots land in ``$TFGRAD_ARTIFACTS`` (default ``<repo>/test-artifacts/``).

This is the one test that needs Chromium; the set-up installs Debian's package if it is
missing (see conftest.py), so it never skips.
"""

from __future__ import annotations

import time

import pytest

NOTEBOOK = "01_the_tape.ipynb"
KERNEL_READY_S = 90.0
RUN_ALL_S = 120.0
UPDATE_MS = 15_000  # one round trip: click -> kernel -> redraw -> browser

# What the notebook's first TapeWidget (micrograd's example, reverse mode) shows.
N_STEPS = 18

# A hard ceiling on the test body; the fixtures bound their own waits (apt, server start).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300, func_only=True)]

# Root in a container needs --no-sandbox; /dev/shm is small there; there is no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run"]  # fmt: skip

STATE_JS = """() => {
  const app = window.jupyterapp;
  if (!app) return {phase: 'no app'};
  const dialogs = [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText);
  const w = app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== 'NOTEBOOK') return {phase: 'opening', dialogs};
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return {phase: kernel ? 'kernel' : 'no kernel', dialogs,
          status: kernel ? kernel.status : null,
          connection: kernel ? kernel.connectionStatus : null};
}""".replace("NOTEBOOK", NOTEBOOK)

START_RUN_ALL_JS = """() => {
  const app = window.jupyterapp;
  window.__tfgradRunAll = undefined;
  app.shell.activateById(app.shell.currentWidget.id);
  app.commands.execute('notebook:run-all-cells').then(
    ok => { window.__tfgradRunAll = ok ? 'ok' : 'failed'; },
    err => { window.__tfgradRunAll = 'error: ' + err; });
}"""

KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle';
}"""

RESTORED_JS = """() => {
  window.__tfgradRestored = false;
  window.jupyterapp.restored.then(() => { window.__tfgradRestored = true; });
}"""

# The code cells as the notebook model holds them: execution counts, errors, and how many
# outputs are widget views (independent of which cells the windowed notebook keeps in the DOM).
CELLS_JS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = [...w.content.model.cells].filter(c => c.type === 'code');
  return cells.map(c => {
    const outs = [];
    for (let i = 0; i < c.outputs.length; i++) outs.push(c.outputs.get(i).toJSON());
    return {count: c.executionCount,
            errors: outs.filter(o => o.output_type === 'error')
                        .map(o => o.ename + ': ' + o.evalue),
            widgets: outs.filter(o => o.data &&
                                 o.data['application/vnd.jupyter.widget-view+json']).length};
  });
}"""

SVG_STATE_JS = """(svg) => {
  const nodes = [...svg.querySelectorAll('g.node')];
  const active = nodes.filter(g => g.classList.contains('active'));
  return {nodes: nodes.map(g => g.getAttribute('data-node')),
          active: active.map(g => g.getAttribute('data-node')),
          adjoints: [...svg.querySelectorAll('text')].filter(t => t.textContent.startsWith('ḡ'))
                        .length,
          markup: svg.outerHTML};
}"""


def test_tape_widget_renders_and_steps_in_jupyterlab(lab_server, chromium_executable,
                                                      artifacts_dir):  # fmt: skip
    from playwright.sync_api import expect, sync_playwright

    console: list[str] = []
    failure_shot = artifacts_dir / "tape_widget_failure_page.png"
    for stale in artifacts_dir.glob("tape_widget*.png"):
        stale.unlink()
    started = time.monotonic()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_executable,
            args=CHROMIUM_ARGS,
            timeout=60_000,
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.set_default_timeout(30_000)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
        try:
            _exercise(page, lab_server, artifacts_dir, expect)
        except Exception as err:
            try:
                page.screenshot(path=str(failure_shot))
                shot = str(failure_shot)
            except Exception as shot_err:  # the page itself may be gone
                shot = f"(no screenshot: {shot_err})"
            pytest.fail(
                f"{type(err).__name__}: {err}\n"
                f"after {time.monotonic() - started:.1f} s\n"
                f"page screenshot: {shot}\n"
                f"browser console (last 20):\n" + "\n".join(console[-20:]) + "\n"
                f"JupyterLab log tail ({lab_server.log_path}):\n{lab_server.log_tail()}",
                pytrace=True,
            )
        finally:
            browser.close()


def _exercise(page, lab_server, artifacts_dir, expect) -> None:
    page.goto(lab_server.page_url(NOTEBOOK), wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    page.evaluate(RESTORED_JS)
    page.wait_for_function("() => window.__tfgradRestored === true", timeout=60_000)

    # Wait for the notebook and an idle kernel; accept a "Select Kernel" dialog if one shows.
    deadline = time.monotonic() + KERNEL_READY_S
    state: dict = {}
    while True:
        state = page.evaluate(STATE_JS)
        if state.get("dialogs"):
            page.locator(".jp-Dialog .jp-mod-accept").first.click()
        elif state.get("status") == "idle" and state.get("connection") == "connected":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"notebook/kernel not ready in {KERNEL_READY_S:.0f} s: {state}")
        time.sleep(0.25)

    widgets = page.locator(".tfgrad-tape-widget")
    assert widgets.count() == 0, "the notebook copy was cleared: no widget before running"

    # Run All Cells (the command behind Run > Run All Cells), bounded.
    page.evaluate(START_RUN_ALL_JS)
    page.wait_for_function("() => window.__tfgradRunAll !== undefined",
                           timeout=RUN_ALL_S * 1000)  # fmt: skip
    cells = page.evaluate(CELLS_JS)
    errors = [e for c in cells for e in c["errors"]]
    result = page.evaluate("() => window.__tfgradRunAll")
    assert result == "ok" and not errors, f"Run All Cells: {result}; errors: {errors}"
    assert all(c["count"] is not None for c in cells), f"cells not all run: {cells}"
    assert sum(c["widgets"] for c in cells) == 2, f"two TapeWidget outputs expected: {cells}"
    page.wait_for_function(KERNEL_IDLE_JS, timeout=30_000)

    # The first TapeWidget (micrograd's example, reverse mode) rendered live.
    widget = widgets.first
    expect(widget).to_be_attached(timeout=30_000)
    widget.scroll_into_view_if_needed()
    svg = widget.locator("svg.tfgrad-tape")
    expect(svg).to_be_visible()
    caption = widget.locator(".widget-html-content").first
    expect(caption).to_contain_text(f"step 1 of {N_STEPS}")
    forward = widget.locator("button.tfgrad-step-forward")
    back = widget.locator("button.tfgrad-step-back")
    expect(forward).to_be_visible()
    expect(back).to_be_visible()
    expect(widget.locator(".widget-slider")).to_have_count(2)  # step and ms/step
    expect(widget.locator(".widget-toggle-buttons")).to_be_visible()

    first = svg.evaluate(SVG_STATE_JS)
    assert len(first["nodes"]) >= 3, f"expected at least 3 nodes at step 1: {first['nodes']}"
    assert first["active"], "one node is highlighted at every step"
    caption_1 = caption.inner_text()
    assert caption_1.startswith(f"reverse mode: record, then sweep · step 1 of {N_STEPS} · "
                                "record 0:"), caption_1  # fmt: skip
    widget.screenshot(path=str(artifacts_dir / "tape_widget.png"))

    # One step forward: the caption and the drawing follow.
    forward.click()
    expect(caption).to_contain_text(f"step 2 of {N_STEPS}", timeout=UPDATE_MS)
    _wait_for_svg_change(page, svg, first["markup"])
    second = svg.evaluate(SVG_STATE_JS)
    assert (len(second["nodes"]) > len(first["nodes"])
            or second["active"] != first["active"]), (first, second)  # fmt: skip
    assert set(first["nodes"]) <= set(second["nodes"]), "recording only adds nodes"
    widget.screenshot(path=str(artifacts_dir / "tape_widget_step2.png"))

    # Two more forward and one back.
    forward.click()
    expect(caption).to_contain_text(f"step 3 of {N_STEPS}", timeout=UPDATE_MS)
    forward.click()
    expect(caption).to_contain_text(f"step 4 of {N_STEPS}", timeout=UPDATE_MS)
    back.click()
    expect(caption).to_contain_text(f"step 3 of {N_STEPS}", timeout=UPDATE_MS)

    # Drag the step slider to its end: the sweep is done, adjoints reached the inputs.
    handle = widget.locator(".widget-slider .noUi-handle").first
    track = widget.locator(".widget-slider .noUi-target").first
    box_h, box_t = handle.bounding_box(), track.bounding_box()
    page.mouse.move(box_h["x"] + box_h["width"] / 2, box_h["y"] + box_h["height"] / 2)
    page.mouse.down()
    page.mouse.move(box_t["x"] + box_t["width"] + 40, box_h["y"] + box_h["height"] / 2, steps=8)
    page.mouse.up()
    expect(caption).to_contain_text(f"step {N_STEPS} of {N_STEPS}", timeout=UPDATE_MS)
    expect(svg.locator("text", has_text="ḡ =").first).to_be_visible(timeout=UPDATE_MS)
    last = svg.evaluate(SVG_STATE_JS)
    assert last["adjoints"] >= len(first["nodes"]), last["adjoints"]
    widget.screenshot(path=str(artifacts_dir / "tape_widget_end.png"))


def _wait_for_svg_change(page, svg, before: str) -> None:
    deadline = time.monotonic() + UPDATE_MS / 1000
    while svg.evaluate("s => s.outerHTML") == before:
        if time.monotonic() > deadline:
            raise AssertionError("the SVG did not change after the step")
        time.sleep(0.1)
