"""Exact second order (``import tfgrad.second_order as so``): Hessians, HVPs, diagonals and
Laplacians; Hessian spectra, traces and densities, Newton steps, Gauss-Newton and Fisher
products, natural gradients, each on exact HVPs and reporting what it cost.

A feature layer: it imports the core and the core never imports it. The spectral tools and
solvers work on a scalar ``f`` of a flat parameter vector ``x`` (``flatten_params`` makes one
of a pytree).
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
from .derivatives import (
    directional_second_derivative,
    hessian,
    hessian_diagonal,
    hvp,
    jacobian,
    laplacian,
    value_grad_and_laplacian,
)
from .pytree import flatten_params, newton_cg_step
from .solve import NewtonResult, newton_direction
from .spectra import HessianDensity, HessianSpectrum, hessian_density, hessian_spectrum
from .taylor import TaylorTensor, TaylorTrace, taylor_pass
from .trace import TraceEstimate, hessian_trace

__all__ = [
    # derivatives
    "hessian", "hvp", "hessian_diagonal", "laplacian", "value_grad_and_laplacian",
    "directional_second_derivative", "jacobian",
    # Taylor mode (the forward Laplacian's machinery)
    "TaylorTensor", "TaylorTrace", "taylor_pass",
    # spectra, traces, densities
    "hessian_spectrum", "hessian_density", "hessian_trace",
    "HessianSpectrum", "HessianDensity", "TraceEstimate",
    # Newton steps and curvature products
    "newton_direction", "newton_cg_step", "flatten_params", "NewtonResult",
    "ggn_vector_product", "fisher_vector_product", "natural_gradient", "NaturalGradientResult",
    "ggn_operator", "fisher_operator", "CurvatureOperator",
]  # fmt: skip
