"""Exact second order: Hessians, HVPs, diagonals, Laplacians (``import tfgrad.second_order as
so``). A feature layer: it uses the core and the core never imports it."""

from .derivatives import (
    directional_second_derivative,
    hessian,
    hessian_diagonal,
    hvp,
    jacobian,
    laplacian,
    value_grad_and_laplacian,
)
from .taylor import TaylorTensor, TaylorTrace, taylor_pass

__all__ = [
    # derivatives
    "hessian", "hvp", "hessian_diagonal", "laplacian", "value_grad_and_laplacian",
    "directional_second_derivative", "jacobian",
    # Taylor mode (the forward Laplacian's machinery)
    "TaylorTensor", "TaylorTrace", "taylor_pass",
    # spectra and solvers:
]  # fmt: skip

# spectra and solvers:
