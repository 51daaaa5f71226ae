"""tfgrad_widgets: the ipywidgets layer of tfgrad (installed from the folder widgets/).

The widgets that show the tape being recorded and swept, Hessian spectra, the
mixed-precision loss scale and checkpointing trade-offs land here (issue 4).
They draw plain data produced by tfgrad; tfgrad never imports this package.

This module must stay importable without Jupyter: it does not import ipywidgets.
"""

from importlib.metadata import PackageNotFoundError, version

__all__: list[str] = []

try:
    __version__ = version("tfgrad")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
