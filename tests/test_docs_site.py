"""The documentation site builds offline with warnings as errors, and has every page it should.

Each build copies docs/ into a temporary folder and runs ``python -m sphinx -W`` there, so the
source tree is left untouched; ``TFGRAD_DOCS_NOTEBOOKS`` tells docs/conf.py which folder of
notebooks to render (the repository's notebooks/, or a made-up one).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest
from docs_build import build_site

import tfgrad

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

# A 1 x 1 PNG, as a notebook stores an image output.
PNG_1X1 = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8ffff3f0005fe02fea7d6a4bb"
        "0000000049454e44ae426082"
    )
).decode()


def anchors(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    _, html = build_site(tmp_path_factory.mktemp("docs-site"), NOTEBOOKS)
    return html


def test_main_pages_exist(site):
    for page in (
        "index.html",
        "widgets.html",
        "architecture.html",
        "api.html",
        "notebooks/index.html",
    ):
        assert (site / page).is_file(), f"{page} was not built"
    index = (site / "index.html").read_text(encoding="utf-8")
    for link in ('href="architecture.html"', 'href="api.html"', 'href="notebooks/index.html"'):
        assert link in index, f"the table of contents on index.html lacks {link}"


def test_api_page_documents_the_main_names(site):
    ids = anchors(site / "api.html")
    for name in (
        "tfgrad.grad",
        "tfgrad.GradientTape",
        "tfgrad.hessian",
        "tfgrad.Record",
        "tfgrad.TapeEvent",
        "tfgrad.random.Generator",
        "tfgrad.errors.TapeError",
        "tfgrad.extend.Primitive",
        "tfgrad.extend.bind",
    ):
        assert name in ids, f"api.html does not document {name}"


def test_api_page_documents_every_public_name(site):
    ids = anchors(site / "api.html")
    missing = []
    for name in tfgrad.__all__:
        is_module = type(getattr(tfgrad, name)).__name__ == "module"
        anchor = f"module-tfgrad.{name}" if is_module else f"tfgrad.{name}"
        if anchor not in ids:
            missing.append(name)
    assert not missing, (
        f"tfgrad.__all__ names without an entry in the API reference: {missing}; add them to "
        "the matching section of docs/api.md (e.g. `.. autofunction:: NAME`)."
    )


def test_every_notebook_has_a_page(site):
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    listing = (site / "notebooks" / "index.html").read_text(encoding="utf-8")
    for notebook in notebooks:
        page = site / "notebooks" / f"{notebook.stem}.html"
        assert page.is_file(), f"{notebook.name} has no page in the docs site"
        assert f'href="{notebook.stem}.html"' in listing, f"{notebook.name} is not listed"
    if not notebooks:
        assert "No tutorial notebooks" in listing


def test_no_page_loads_anything_from_other_hosts(site):
    # Scripts, styles and images come with the site, on every page: the notebooks' widgets are
    # shown as pictures, so no page loads the ipywidgets manager from a CDN (see docs/conf.py).
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 8
    for page in pages:
        text = page.read_text(encoding="utf-8")
        remote = re.findall(r'<script[^>]+src="(?:https?:)?//[^"]+"', text)
        remote += re.findall(r'<link[^>]+href="(?:https?:)?//[^"]+\.css[^"]*"', text)
        remote += re.findall(r'<img[^>]+src="(?:https?:)?//[^"]+"', text)
        assert not remote, f"{page.relative_to(site)} loads {remote}"
        assert "require.js" not in text and "html-manager" not in text, page


def _widget_outputs(notebook: Path) -> list[str]:
    """The text/plain of each widget output the notebook was saved with."""
    nb = nbformat.read(notebook, as_version=4)
    return [o["data"]["text/plain"] for c in nb.cells if c.cell_type == "code"
            for o in c.outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # fmt: skip


def _pictures(site: Path, page: str) -> list[str]:
    """The SVG files a page shows, as text."""
    html = (site / page).read_text(encoding="utf-8")
    sources = re.findall(r'<img[^>]+src="([^"]+\.svg)"', html)
    return [(site / page).parent.joinpath(src).resolve().read_text(encoding="utf-8")
            for src in sources]  # fmt: skip


def test_widgets_are_shown_as_their_snapshots(site):
    # Each widget output of 01_the_tape is on its page as the picture the widget drew of its
    # state (a local SVG file), not as the widget's text repr.
    widgets = _widget_outputs(NOTEBOOKS / "01_the_tape.ipynb")
    assert len(widgets) == 3
    pictures = [p for p in _pictures(site, "notebooks/01_the_tape.html") if "tfgrad-svg" in p]
    assert len(pictures) == len(widgets)
    assert all('class="tfgrad-svg tf-graph"' in p for p in pictures)
    assert "step 1 of 18" in pictures[0] and "ḡ =" in pictures[2]  # the MLP at its end
    page = (site / "notebooks" / "01_the_tape.html").read_text(encoding="utf-8")
    assert "TapeWidget(" not in page


def test_the_gallery_page_shows_every_widget(site):
    import tfgrad_widgets

    widgets = _widget_outputs(NOTEBOOKS / "99_widget_gallery.ipynb")
    shown = {text.split("(")[0] for text in widgets}
    assert shown == set(tfgrad_widgets.__all__), "the gallery notebook must show every widget"
    pictures = [p for p in _pictures(site, "notebooks/99_widget_gallery.html") if "tfgrad-svg" in p]
    assert len(pictures) == len(widgets) == 9
    kinds = {"tf-graph": 0, "tf-figure": 0}
    for picture in pictures:
        kinds["tf-graph" if 'class="tfgrad-svg tf-graph"' in picture else "tf-figure"] += 1
    assert kinds == {"tf-graph": 2, "tf-figure": 7}
    assert 'href="notebooks/99_widget_gallery.html"' in (site / "index.html").read_text("utf-8")
    assert (site / "widgets.html").is_file()


def _dummy_notebook() -> nbformat.NotebookNode:
    """A small executed notebook: a title, math, text, a stream, an image and an error."""
    v4 = nbformat.v4
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        v4.new_markdown_cell("# A made-up tutorial\n\nThe gradient of $x^2$ is $2x$."),
        v4.new_code_cell(
            "import tfgrad as tg\ntg.grad(lambda x: x * x)(tg.tensor(3.0))",
            execution_count=1,
            outputs=[
                v4.new_output(
                    "execute_result", {"text/plain": "tensor(6., dtype=float64)"}, execution_count=1
                )
            ],
        ),
        v4.new_markdown_cell("## Output kinds"),
        v4.new_code_cell(
            "print('swept')\nshow_figure()",
            execution_count=2,
            outputs=[
                v4.new_output("stream", name="stdout", text="swept\n"),
                v4.new_output("display_data", {"image/png": PNG_1X1, "text/plain": "<Figure>"}),
            ],
        ),
        v4.new_code_cell(
            "1 / 0",
            execution_count=3,
            metadata={"tags": ["raises-exception"]},
            outputs=[
                v4.new_output(
                    "error",
                    ename="ZeroDivisionError",
                    evalue="division by zero",
                    traceback=["ZeroDivisionError: division by zero"],
                )
            ],
        ),
    ]
    nbformat.validate(nb)
    return nb


@pytest.mark.parametrize("count", [0, 1])
def test_site_builds_with_any_number_of_notebooks(tmp_path, count):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "README.md").write_text("Not a page of the site.\n", encoding="utf-8")
    if count:
        nbformat.write(_dummy_notebook(), notebooks / "00_made_up.ipynb")
    _, html = build_site(tmp_path / "work", notebooks)

    listing = (html / "notebooks" / "index.html").read_text(encoding="utf-8")
    assert not (html / "notebooks" / "README.html").exists()
    if not count:
        assert "No tutorial notebooks" in listing
        return
    assert 'href="00_made_up.html"' in listing
    page = (html / "notebooks" / "00_made_up.html").read_text(encoding="utf-8")
    assert "A made-up tutorial" in page
    assert "tensor(6., dtype=float64)" in page  # the saved output, not a new run
    assert "swept" in page  # a stream
    assert "output traceback" in page and "division by zero" in page  # a raises-exception cell
    assert re.search(r'<img[^>]+src="\.\./_images/[0-9a-f]+\.png"', page)
    # Math is typeset by the MathJax copied into the site: the page loads nothing from the web.
    assert 'src="../_static/mathjax/MathJax.js' in page
    assert (html / "_static" / "mathjax" / "MathJax.js").is_file()
    assert not re.findall(r'src="(?:https?:)?//', page)
