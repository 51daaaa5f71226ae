"""Every op in the table, on every backend: forward against NumPy, then first and second
derivatives in both modes against central differences in float64 (``tfgrad.gradcheck``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from op_table import OPS, OpCase

import tfgrad as tg

DIFFERENTIABLE = [case for case in OPS if case.order > 0]


@pytest.mark.parametrize("case", OPS, ids=lambda c: c.name)
@given(data=st.data())
def test_forward_matches_numpy(backend, case: OpCase, data):
    shapes, params = case.draw(data, 0)
    seed = data.draw(st.integers(0, 2**16))
    for dtype in case.dtypes:
        arrays = case.inputs(shapes, seed, dtype)
        got = case.fn(*(tg.tensor(a) for a in arrays), **params)
        want = np.asarray(case.ref(*arrays, **params))
        assert got.shape == want.shape, (case.name, shapes, params)
        assert got.dtype.name == want.dtype.name, (case.name, got.dtype, want.dtype)
        rtol = 1e-12 if dtype == "float64" else case.rtol32
        np.testing.assert_allclose(got.numpy(), want, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("case", DIFFERENTIABLE, ids=lambda c: c.name)
@given(data=st.data())
@settings(max_examples=5)
def test_derivatives_match_finite_differences(backend, case: OpCase, data):
    shapes, params = case.draw(data, 1)
    seed = data.draw(st.integers(0, 2**16))
    arrays = case.inputs(shapes, seed, "float64")
    args = [tg.tensor(a) for a in arrays]
    assert tg.gradcheck(lambda *xs: case.fn(*xs, **params), args, order=case.order, seed=seed)
