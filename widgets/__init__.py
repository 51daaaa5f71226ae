"""tfgrad_widgets: the widgets of tfgrad (installed from the folder widgets/).

Every widget stands on one base (:mod:`tfgrad_widgets.base`): an anywidget whose front end ships
inside this package, fed the plain data that tfgrad produces (:mod:`tfgrad.viz`) once and small
updates after, with a static SVG picture of its state for wherever it cannot run. Both pictures
are drawn by one drawing kit (:mod:`tfgrad_widgets.svg` here, ``static/kit.js`` in the browser).
tfgrad never imports this package. ``import tfgrad_widgets`` works without Jupyter; the widgets
themselves need the ``lab`` extra (anywidget, ipywidgets).

- :class:`TapeWidget`: a tape recorded, then swept backwards (or a forward pass), step by step;
- :class:`ChartWidget`: the kit's panels (lines on linear or log axes, heat maps, scatter and
  frontiers, bars, timelines) drawn from plain data, with small live updates;
- :class:`HessianWidget`: the exact Hessian at a point the student drags (two variables:
  contours, the quadratic model, eigenvectors, Newton and gradient steps), or as a heat map
  beside its spectrum (n variables), or its eigenvalue density by stochastic Lanczos
  quadrature (many variables, H never formed), and its top eigenvalue and trace in training;
- :class:`LossScaleWidget`: dynamic loss scaling (the scale on a log axis, overflows marked,
  skipped steps counted, the loss beside it), live from a training loop, restarted by its
  controls, or replayed from a recorded ``stability_metrics()``.

>>> from tfgrad_widgets import TapeWidget   # doctest: +SKIP
>>> TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)   # doctest: +SKIP
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

# tests/test_docs_site.py checks that the gallery notebook shows every name in __all__.
__all__ = ["TapeWidget", "ChartWidget", "HessianWidget", "LossScaleWidget"]

_HOMES = {"TapeWidget": ".tape_widget", "ChartWidget": ".chart_widget",
          "HessianWidget": ".hessian_widget", "LossScaleWidget": ".loss_scale_widget"}

try:
    __version__ = version("tfgrad")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    if name in _HOMES:
        try:
            module = import_module(_HOMES[name], __name__)
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"tfgrad_widgets.{name} needs anywidget and ipywidgets: "
                f"pip install 'tfgrad[lab]' ({err})"
            ) from err
        return getattr(module, name)
    raise AttributeError(f"module 'tfgrad_widgets' has no attribute {name!r}")
