"""Shared fixtures: every backend-dependent test runs on NumPy (the reference) and Taichi."""

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

BACKENDS = ("numpy", "taichi")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Run the test with the current backend set to each backend in turn."""
    with tfgrad.use_backend(request.param) as b:
        yield b
