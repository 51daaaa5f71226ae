"""The documentation site, built here and opened from disk in Chromium with every network
request refused: the tape page shows its widgets' pictures, the gallery shows every widget,
and nothing is fetched from anywhere but the site's own files."""

from __future__ import annotations

from pathlib import Path

import lab
import pytest
from docs_build import build_site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600, func_only=True)]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def test_docs_pages_show_the_snapshots_offline(browser, tmp_path, artifacts_dir):
    _, html = build_site(tmp_path / "docs", NOTEBOOKS)
    page = browser.new_page(viewport=lab.VIEWPORT)
    refused: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    try:
        # 01_the_tape shows three widgets; the gallery six, of every kind in tfgrad_widgets
        for name, expected in (("01_the_tape", 3), ("99_widget_gallery", 6)):
            page.goto((html / "notebooks" / f"{name}.html").as_uri(), wait_until="load")
            pictures = page.locator('img[src$=".svg"]')
            loaded = pictures.evaluate_all(
                "(imgs) => imgs.map(i => i.complete && i.naturalWidth > 0)"
            )
            assert len(loaded) >= expected and all(loaded), (name, loaded)
            pictures.first.scroll_into_view_if_needed()
            page.wait_for_timeout(300)
            page.screenshot(path=str(artifacts_dir / f"docs_{name}.png"))
        assert not refused, f"the pages asked for {refused}"
    finally:
        page.close()
