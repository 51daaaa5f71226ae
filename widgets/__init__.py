"""tfgrad_widgets: the ipywidgets layer of tfgrad (installed from the folder widgets/).

Widgets draw plain data that tfgrad produces (the tape's records and observer events, via
:mod:`tfgrad.viz`); tfgrad never imports this package. ``import tfgrad_widgets`` works without
Jupyter; the widgets themselves need the ``lab`` extra (ipywidgets).

>>> from tfgrad_widgets import TapeWidget   # doctest: +SKIP
>>> TapeWidget(lambda a, b: a * b + a, 2.0, 3.0)   # doctest: +SKIP
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["TapeWidget"]

try:
    __version__ = version("tfgrad")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    if name == "TapeWidget":
        try:
            from .tape_widget import TapeWidget
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"tfgrad_widgets.{name} needs ipywidgets: pip install 'tfgrad[lab]' ({err})"
            ) from err
        return TapeWidget
    raise AttributeError(f"module 'tfgrad_widgets' has no attribute {name!r}")
