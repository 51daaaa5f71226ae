"""Shared fixtures: every backend-dependent test runs on NumPy (the reference) and on Taichi,
with Taichi kernels only and with the auto dispatch policy."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

import tfgrad

# Deterministic and modest: CI runs on 2 cores, and Taichi compiles each new kernel once.
settings.register_profile(
    "tfgrad",
    deadline=None,
    max_examples=10,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # the backend fixture holds for every example
    ],
)
settings.load_profile("tfgrad")

# The id names the setting: "taichi-only" runs every op as its Taichi kernel (so every kernel
# stays tested), "taichi" is the default dispatch="auto" policy (BLAS, NumPy for tiny arrays).
BACKENDS = {
    "numpy": {"backend": "numpy"},
    "taichi-only": {"backend": "taichi", "dispatch": "taichi-only"},
    "taichi": {"backend": "taichi", "dispatch": "auto"},
}


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    """Run the test with the current backend set to each backend setting in turn."""
    with tfgrad.use_backend(**BACKENDS[request.param]) as b:
        yield b
