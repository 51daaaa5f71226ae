"""Second-order tools on exact HVPs: Hessian spectra, traces and densities, Newton steps.

An optional feature layer: it imports the core, the core never imports it (``import
tfgrad.second_order``). Each tool works on a scalar ``f`` of a flat parameter vector ``x``
and reports what it cost in HVPs.
"""

from .solve import NewtonResult, newton_direction
from .spectra import HessianDensity, HessianSpectrum, hessian_density, hessian_spectrum
from .trace import TraceEstimate, hessian_trace

__all__ = [
    "hessian_spectrum",
    "hessian_density",
    "hessian_trace",
    "newton_direction",
    "HessianSpectrum",
    "HessianDensity",
    "TraceEstimate",
    "NewtonResult",
]
