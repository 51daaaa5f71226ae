"""Sphinx configuration for tfgrad's documentation site.

Build (from the repository root, with the ``docs`` extra installed)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The site is plain Sphinx + MyST-NB: building it needs no Node and no network, and it executes
nothing.
The tutorials in ``notebooks/*.ipynb`` are rendered with the outputs they were saved with
(the test suite runs them with nbval). Before each build this file copies them into
``docs/notebooks/`` (ignored by git) and writes the page that lists them, so a new notebook
appears on the site without any edit here. ``TFGRAD_DOCS_NOTEBOOKS`` points the build at
another folder of notebooks (the tests use it).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

# The docs import tfgrad for the API reference; they never need Taichi. The backend is created
# lazily on first use anyway; this makes sure a docstring that computes something stays on NumPy.
os.environ.setdefault("TFGRAD_BACKEND", "numpy")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
if (ROOT / "tfgrad" / "__init__.py").is_file():  # a checkout: document this tree's tfgrad
    sys.path.insert(0, str(ROOT))

import tfgrad  # noqa: E402

NOTEBOOKS_SOURCE = Path(os.environ.get("TFGRAD_DOCS_NOTEBOOKS", ROOT / "notebooks")).resolve()
NOTEBOOKS_COPY = DOCS / "notebooks"  # generated at every build; ignored by git
# Files Sphinx would read as pages: only the top-level notebooks and the generated index are
# pages, so other sources in notebooks/ (a README.md, say) are not copied.
PAGE_SUFFIXES = {".ipynb", ".md", ".rst"}

TUTORIALS_INDEX = """\
# Tutorials

The tutorials are Jupyter notebooks from the repository's `notebooks/` folder, shown here with
the outputs they were saved with (nothing is executed to build this site). To run them, open
them in JupyterLab or on Binder.

"""


def _write_if_changed(path: Path, text: str) -> None:
    # An unchanged file keeps its time stamp, so Sphinx does not rebuild the page.
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def sync_notebooks(source: Path, target: Path) -> list[str]:
    """Copy ``source/*.ipynb`` (and the non-page files beside them, e.g. images) to ``target``,
    remove what is no longer there, and write ``target/index.md``; returns the page names."""
    if target.exists():
        for path in sorted(target.rglob("*"), reverse=True):
            if path.name == "index.md" and path.parent == target:
                continue
            path.unlink() if path.is_file() or path.is_symlink() else path.rmdir()
    target.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(source.glob("*.ipynb")) if source.is_dir() else []
    for notebook in notebooks:
        shutil.copy2(notebook, target / notebook.name)
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            relative = path.relative_to(source)
            hidden = any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
            if path.is_file() and not hidden and path.suffix not in PAGE_SUFFIXES:
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / relative)
    names = [notebook.stem for notebook in notebooks]
    if names:
        toctree = "```{toctree}\n:maxdepth: 1\n\n" + "".join(f"{n}\n" for n in names) + "```\n"
    else:
        toctree = "No tutorial notebooks have been added yet.\n"
    _write_if_changed(target / "index.md", TUTORIALS_INDEX + toctree)
    return names


sync_notebooks(NOTEBOOKS_SOURCE, NOTEBOOKS_COPY)

# ---- Project ----
project = "tfgrad"
author = "the tfgrad authors"
copyright = "the tfgrad authors"
release = version = tfgrad.__version__

# ---- Extensions ----
extensions = [
    "myst_nb",  # MyST Markdown pages and .ipynb notebooks (loads myst_parser itself)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]
suppress_warnings: list[str] = []

# MyST: $...$ and $$...$$ math as in Jupyter's Markdown cells, ::: fences for directives.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# MyST-NB: render the saved outputs, never run a kernel.
nb_execution_mode = "off"
nb_merge_streams = True
# A widget's output carries, beside the widget view, a picture of its state (an SVG snapshot
# drawn by tfgrad_widgets' kit; see tfgrad_widgets.base). The site shows that picture: the
# widget view would need require.js and the ipywidgets HTML manager from a CDN (MyST-NB's
# default `nb_ipywidgets_js`), which fails offline, and the kernel-side parts of a widget cannot
# run on a static page anyway. So no widget scripts are loaded, the widget view is never chosen,
# and SVG comes before HTML (the HTML form of the picture is for JupyterLab, which does not
# render SVG from notebooks it does not trust): the picture is a file beside the page.
nb_ipywidgets_js: dict = {}
nb_mime_priority_overrides = [
    ("*", "application/vnd.jupyter.widget-view+json", None),
    ("*", "image/svg+xml", 25),  # before text/html (30)
]

# Math ($...$ in the notebooks) is typeset by MathJax, which Sphinx adds to pages with math only.
# Its default is MathJax 4 from a CDN. The package jupyter-server-mathjax (in the docs extra)
# holds a complete MathJax 2.7, which is copied into the site, so math renders offline too.
try:
    import jupyter_server_mathjax
except ImportError:  # keep Sphinx's default: MathJax from a CDN
    MATHJAX_STATIC = None
else:
    MATHJAX_STATIC = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (MATHJAX_STATIC / "MathJax.js").is_file():
        MATHJAX_STATIC = None
if MATHJAX_STATIC is not None:
    mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"  # under _static/
    mathjax2_config = {
        "tex2jax": {
            "inlineMath": [["\\(", "\\)"]],
            "displayMath": [["\\[", "\\]"]],
            "processEscapes": True,
            "processEnvironments": True,
        },
        # the package ships the STIX-Web fonts only (as Jupyter's classic notebook used them)
        "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None},
    }
    myst_update_mathjax = False  # MyST's options are for MathJax 3 and later

# ---- API reference ----
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autosummary_generate = False  # the API page writes its entries itself; tables only link
add_module_names = False

# ---- HTML ----
html_theme = "furo"  # self-contained: no web fonts or scripts from other hosts
html_title = f"tfgrad {release}"
html_static_path: list[str] = []
html_show_sourcelink = False


def _no_taichi_imported(app, exception) -> None:
    # The site documents the core from its docstrings; none of that should start Taichi.
    if exception is None and "taichi" in sys.modules:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "Taichi was imported while building the docs; tfgrad must stay importable and "
            "documentable without starting a Taichi backend (TFGRAD_BACKEND=numpy)."
        )


# Docstrings write absolute values as |x|, which reStructuredText reads as a substitution
# reference ("Undefined substitution referenced"). Outside ``literals`` such a |name| is shown
# as written. tfgrad's docstrings use no substitutions, so nothing is lost.
_LITERAL = re.compile(r"(``.*?``)")
_BARS = re.compile(r"(?<!\\)\|(\w+)\|")


def _escape_absolute_values(app, what, name, obj, options, lines: list[str]) -> None:
    for i, line in enumerate(lines):
        parts = _LITERAL.split(line)
        lines[i] = "".join(
            part if part.startswith("``") else _BARS.sub(r"\\|\1\\|", part) for part in parts
        )


def _copy_mathjax(app, exception) -> None:
    if exception is None and MATHJAX_STATIC is not None and app.builder.format == "html":
        shutil.copytree(
            MATHJAX_STATIC, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True
        )


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _escape_absolute_values)
    app.connect("build-finished", _copy_mathjax)
    app.connect("build-finished", _no_taichi_imported)
