"""The ChartWidget in JupyterLab: notebooks/99_widget_gallery.ipynb run in a 1280 x 720 window
with the file browser open. Each chart renders live; a click on the checkpointing frontier, a
drag of the Hessian's point, the gradient-flow toggle and the loss scale's growth-interval
slider change the view, and the kernel's answers (patches) redraw it. Screenshots land in
``$TFGRAD_ARTIFACTS``."""

from __future__ import annotations

import lab
import pytest
from playwright.sync_api import expect

NOTEBOOK = "99_widget_gallery.ipynb"
UPDATE_MS = 15_000

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400, func_only=True)]


@pytest.fixture
def page(browser, lab_server, artifacts_dir):
    for stale in artifacts_dir.glob("chart_widget*.png"):
        stale.unlink()
    page = browser.new_page(viewport=lab.VIEWPORT)
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    yield page
    page.close()


def chart(page, cell_text: str):
    """The chart shown by the first cell whose source contains ``cell_text``, in view."""
    index = lab.cell_index(page, cell_text)
    lab.scroll_to_cell(page, index)
    locator = (
        page.locator(".jp-Notebook .jp-Cell")
        .filter(has=page.locator(".jp-InputArea", has_text=cell_text))
        .locator(".tfgrad-chart")
        .first
    )
    expect(locator.locator("svg.tf-figure")).to_be_visible(timeout=UPDATE_MS)
    lab.center(locator)
    return locator


def test_chart_widgets_in_jupyterlab(page, lab_server, artifacts_dir, record_property):
    lab.open_notebook(page, lab_server, NOTEBOOK)
    lab.show_file_browser(page)
    first = lab.cell_index(page, "hessian = gallery.hessian()")
    lab.run(page, "notebook:run-all-above", first)
    seconds = lab.time_to_first_frame(page, first, ".tfgrad-chart svg.tf-figure")
    record_property("seconds_to_first_frame", seconds)
    print(f"cell run -> first drawn frame (Hessian chart): {seconds:.3f} s")
    lab.run(page, "notebook:run-all-cells")

    # Checkpointing: click another point on the frontier; the kernel answers with that
    # schedule's spans and title.
    checkpoints = chart(page, "gallery.checkpointing()")
    title = checkpoints.locator('[data-panel="schedule"] .tf-title')
    expect(title).to_have_text("schedule: segments of 4")
    before = checkpoints.locator('[data-panel="schedule"] .tf-span').count()
    checkpoints.locator('.tf-pick[data-i="1"]').click()
    expect(title).to_have_text("schedule: segments of 2", timeout=UPDATE_MS)
    expect(checkpoints.locator(".tf-chosen")).to_have_attribute("data-i", "1")
    assert checkpoints.locator('[data-panel="schedule"] .tf-span').count() != before
    lab.screenshot(page, artifacts_dir / "chart_widget_checkpointing.png")

    # Gradient flow: the toggle puts the axis back to linear.
    flow = chart(page, "gallery.gradient_flow()")
    ticks = flow.locator(".tf-tick")
    assert "10⁻⁶" in ticks.all_text_contents()
    flow.locator("button.tf-toggle").click()
    expect(flow.locator("button.tf-toggle")).to_have_attribute("aria-pressed", "false")
    assert "10⁻⁶" not in ticks.all_text_contents()
    lab.screenshot(page, artifacts_dir / "chart_widget_gradient_flow.png")

    # The Hessian: drag the point; the kernel sends the Newton step and the quadratic model at
    # the new place.
    hessian = chart(page, "hessian = gallery.hessian()")
    newton = hessian.locator('path.tf-arrow[data-layer="newton"]')
    before = newton.get_attribute("d")
    handle = hessian.locator(".tf-handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 90, y + 40, steps=12)
    page.mouse.up()
    expect(newton).not_to_have_attribute("d", before, timeout=UPDATE_MS)
    printed = lab.kernel_output(page, "print(hessian.view['landscape.point'])")
    assert printed.startswith("[") and float(printed.strip("[]\n").split(",")[0]) > -1.2
    lab.screenshot(page, artifacts_dir / "chart_widget_hessian.png")

    # Loss scaling: the growth-interval slider restarts the run in the kernel, which streams
    # the new run back (the title's counts change).
    scaling = chart(page, "gallery.loss_scale()")
    title = scaling.locator(".tf-figtitle")
    before = title.text_content()
    assert "8 overflows" in before
    scaling.locator('[data-control="growth_interval"] input').evaluate(
        "(input) => { input.value = '60'; input.dispatchEvent(new Event('input')); }"
    )
    expect(title).not_to_have_text(before, timeout=UPDATE_MS)
    printed = lab.kernel_output(page, "print(loss_scale.config['growth_interval'])")
    assert printed.strip() == "60"
    lab.screenshot(page, artifacts_dir / "chart_widget_loss_scale.png")
    assert not page.errors, page.errors
