"""The TapeWidget in JupyterLab, as a student meets it: notebooks/01_the_tape.ipynb in a
1280 x 720 window with the file browser open, run in headless Chromium. The widget renders live
from the kernel, fits the column, and its controls move the picture; the kernel follows every
step, and the drawing is the picture the kernel draws of that step. Screenshots land in
``$TFGRAD_ARTIFACTS`` (default ``<repo>/test-artifacts/``)."""

from __future__ import annotations

import json
import time

import lab
import pytest
from kit_page import FAKE_MODEL_JS

from tfgrad_widgets.theme import THEME

NOTEBOOK = "01_the_tape.ipynb"
UPDATE_MS = 15_000  # one round trip: click -> kernel -> answer
N_STEPS = 18  # micrograd's example: 6 records, then 12 accumulations in the sweep

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400, func_only=True)]


@pytest.fixture
def page(browser, lab_server, artifacts_dir):
    for stale in artifacts_dir.glob("tape_widget*.png"):
        stale.unlink()
    page = browser.new_page(viewport=lab.VIEWPORT)
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    yield page
    if errors:
        page.screenshot(path=str(artifacts_dir / "tape_widget_failure.png"))
    page.close()


def live_is_kernel_picture(page, widget, variable: str) -> bool:
    """The live drawing equals the kernel's graph_svg() of the same state (canonical DOM)."""
    markup = json.loads(
        lab.kernel_output(page, f"import json; print(json.dumps({variable}.graph_svg()))")
    )
    page.add_script_tag(content=FAKE_MODEL_JS)
    same = "(svg, m) => JSON.stringify(canonical(svg)) === JSON.stringify(canonical(parseSVG(m)))"
    return widget.locator("svg.tf-graph").evaluate(same, markup)


def test_tape_widget_in_jupyterlab(page, lab_server, artifacts_dir, record_property):
    lab.open_notebook(page, lab_server, NOTEBOOK)
    lab.show_file_browser(page)
    first = lab.cell_index(page, "widget = TapeWidget(")
    lab.run(page, "notebook:run-all-above", first)
    assert page.locator(".tfgrad-tape").count() == 0, "the notebook copy was cleared"

    seconds = lab.time_to_first_frame(page, first, ".tfgrad-tape svg .tf-node:not(.tf-hidden)")
    record_property("seconds_to_first_frame", seconds)
    print(f"cell run -> first drawn frame: {seconds:.3f} s")
    assert seconds < 30  # a bound on the wait, not a speed goal
    lab.scroll_to_cell(page, first)
    widget = page.locator(".tfgrad-tape").first
    caption = widget.locator(".tf-caption-line")
    expect_text(caption, f"step 1 of {N_STEPS}")

    # It fits the notebook's column: no horizontal scrolling at 1280 px with the file browser
    # open, at a readable size.
    fit = widget.evaluate("""(w) => {
        const v = w.querySelector('.tf-viewport'), s = v.querySelector('svg');
        const out = w.closest('.jp-OutputArea-output').getBoundingClientRect();
        return {column: out.width, view: v.clientWidth, svg: s.getBoundingClientRect().width,
                natural: s.viewBox.baseVal.width, scrolls: v.scrollWidth > v.clientWidth};
    }""")
    print(f"fit: {fit}")
    assert fit["svg"] <= fit["view"] <= fit["column"] and not fit["scrolls"]
    assert fit["svg"] / fit["natural"] >= THEME["min_zoom"] - 1e-9
    lab.center(widget)
    lab.screenshot(page, artifacts_dir / "tape_widget.png")

    # Step forward with the button: the caption and the drawing follow, and so does the kernel.
    widget.locator("button.tf-step-forward").click()
    expect_text(caption, f"step 2 of {N_STEPS}")
    wait_for_kernel(page, "widget.step", "1")
    assert live_is_kernel_picture(page, widget, "widget")
    widget.locator("button.tf-step-forward").click()
    widget.locator("button.tf-step-back").click()
    expect_text(caption, f"step 2 of {N_STEPS}")

    # Drag the slider to its end: the sweep is done, the adjoints reached the inputs.
    slider = widget.locator("input.tf-step-slider")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] + 30, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    expect_text(caption, f"step {N_STEPS} of {N_STEPS}")
    wait_for_kernel(page, "widget.step", str(N_STEPS - 1))
    assert widget.locator("svg.tf-graph .tf-input .tf-adj").all_text_contents() == [
        "ḡ = -5",
        "ḡ = -16",
    ]
    assert live_is_kernel_picture(page, widget, "widget")
    lab.center(widget)
    lab.screenshot(page, artifacts_dir / "tape_widget_end.png")

    # Forward mode with the toggle.
    widget.locator('.tf-mode button[data-mode="forward"]').click()
    expect_text(caption, "forward mode: tangents · step 1 of 7")
    wait_for_kernel(page, "widget.mode, widget.step", "forward 0")

    # The rest of the notebook: a training step in name scopes, each scope one box.
    lab.run(page, "notebook:run-all-cells")
    mlp_cell = lab.cell_index(page, "step = TapeWidget(loss")
    lab.scroll_to_cell(page, mlp_cell)
    mlp = page.locator(".tfgrad-tape").filter(has=page.locator(".tf-box")).first
    assert mlp.locator(".tf-box").count() == 3
    lab.center(mlp)
    lab.screenshot(page, artifacts_dir / "tape_widget_mlp.png")
    mlp.locator('.tf-box[data-scope="layer1"]').click()
    wait_for_kernel(page, "step.collapsed", "['layer2', 'loss']")
    assert mlp.locator(".tf-box").count() == 2 and mlp.locator(".tf-scope").count() == 1
    assert live_is_kernel_picture(page, mlp, "step")
    lab.center(mlp)
    lab.screenshot(page, artifacts_dir / "tape_widget_mlp_open.png")
    assert not page.errors, page.errors


def expect_text(locator, text: str) -> None:
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text, timeout=UPDATE_MS)


def wait_for_kernel(page, expression: str, expected: str) -> None:
    """Poll the kernel until ``print(expression)`` prints ``expected`` (the front end's sync is
    throttled, so it arrives a moment after the click)."""
    deadline = time.monotonic() + UPDATE_MS / 1000
    while True:
        printed = lab.kernel_output(page, f"print({expression})").strip()
        if printed == expected:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the kernel says {expression} = {printed!r}, not {expected!r}")
        time.sleep(0.1)
