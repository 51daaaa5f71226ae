"""Second-order tools on exact HVPs: Hessian spectra, traces and densities, Newton
steps, Gauss-Newton and Fisher products, natural gradients.

An optional feature layer: it imports the core, the core never imports it (``import
tfgrad.second_order``). Each tool works on a scalar ``f`` of a flat parameter vector ``x``
and reports what it cost in HVPs.
"""

from ._operator import CurvatureOperator
from .curvature import (
    NaturalGradientResult,
    fisher_operator,
    fisher_vector_product,
    ggn_operator,
    ggn_vector_product,
    natural_gradient,
)
from .pytree import flatten_params, newton_cg_step
from .solve import NewtonResult, newton_direction
from .spectra import HessianDensity, HessianSpectrum, hessian_density, hessian_spectrum
from .trace import TraceEstimate, hessian_trace

__all__ = [
    "hessian_spectrum",
    "hessian_density",
    "hessian_trace",
    "newton_direction",
    "newton_cg_step",
    "flatten_params",
    "ggn_vector_product",
    "fisher_vector_product",
    "natural_gradient",
    "ggn_operator",
    "fisher_operator",
    "HessianSpectrum",
    "HessianDensity",
    "TraceEstimate",
    "NewtonResult",
    "NaturalGradientResult",
    "CurvatureOperator",
]
