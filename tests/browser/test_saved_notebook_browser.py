"""A notebook opened before anything runs: notebooks/01_the_tape.ipynb as committed, in
JupyterLab, with no kernel. JupyterLab does not trust a notebook it did not run (it shows
neither widgets nor SVG from it), so what a student sees there is the snapshot each widget
left in its output, as an image: a picture of the tape, not ``TapeWidget(...)``."""

from __future__ import annotations

import lab
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300, func_only=True)]


def test_the_committed_notebook_shows_pictures_without_a_kernel(browser, lab_server,
                                                                artifacts_dir):  # fmt: skip
    page = browser.new_page(viewport=lab.VIEWPORT)
    try:
        lab.open_notebook(page, lab_server, "saved/01_the_tape.ipynb", kernel=False)
        lab.show_file_browser(page)
        index = lab.cell_index(page, "widget = TapeWidget(")
        lab.scroll_to_cell(page, index)
        cell = page.locator(".jp-Notebook .jp-Cell").filter(
            has=page.locator(".jp-InputArea", has_text="widget = TapeWidget(")
        )
        output = cell.locator(".jp-OutputArea-output").first
        picture = output.locator('img[src^="data:image/svg+xml;base64,"]')
        picture.wait_for(timeout=30_000)
        size = picture.evaluate("(img) => [img.naturalWidth, img.naturalHeight, img.width]")
        assert size[0] > 600 and size[1] > 200, size  # the picture loaded, full size
        assert "TapeWidget(" not in output.inner_text()
        lab.center(picture)
        lab.screenshot(page, artifacts_dir / "saved_notebook_no_kernel.png")
    finally:
        page.close()
