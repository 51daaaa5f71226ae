"""Batched forward mode: B tangents pushed through one application at once.

A batched tangent of a value of shape ``S`` has shape ``(B, *S)``. :func:`batched_jvp` computes
an application's output tangent from such tangents with the same JVP rules as unbatched forward
mode (:func:`tfgrad.forward.output_tangent`), in one of three ways:

- a pointwise primitive (family in :data:`~tfgrad.backends.base.POINTWISE`): its JVP rules run
  unchanged on the batched tangents, once each tangent is aligned on the right (JAX's
  ``defvectorized``): NumPy broadcasting pairs trailing axes, so a rule such as ``t * cos(x)``
  broadcasts ``x`` over the batch;
- a primitive that names axes, shapes or indices declares a batched rule in its block
  (``Primitive.def_batched_jvp``: axes moved past the batch axis, ``(B,) + shape``);
- any other primitive (a custom one from :mod:`tfgrad.extend` without a family) falls back to
  its own rules, once per batch element: correct, slower.

Everything is written in tfgrad ops, so batched tangents are differentiable again.
"""

from __future__ import annotations

from .backends.base import POINTWISE
from .forward import output_tangent
from .ops import broadcast_to, reshape, stack, zeros
from .ops.movement import reshape_p
from .primitive import Primitive, bind
from .tensor import Tensor

__all__ = ["batched_jvp"]


def batched_jvp(
    prim: Primitive, tangents: list, ans: Tensor, primals: tuple, params: dict, batch: int
) -> Tensor | None:
    """The output's batched tangent, exactly ``(batch, *ans.shape)``, or ``None`` for zero.
    ``tangents[i]`` is input ``i``'s batched tangent or ``None``."""
    if prim.batched_jvp is not None:
        out = prim.batched_jvp(tangents, ans, *primals, batch=batch, **params)
    elif prim.family in POINTWISE:
        out = output_tangent(prim, _align(tangents, ans, primals, batch), ans, primals, params)
    else:
        out = _loop(prim, tangents, ans, primals, params, batch)
    if out is None:
        return None
    full = (batch,) + ans.shape
    if out.shape != full:
        if out.ndim < len(full):  # a rule dropped size-1 axes: align on the right of the batch
            out = reshape(out, out.shape[:1] + (1,) * (len(full) - out.ndim) + out.shape[1:])
        out = broadcast_to(out, full)
    return out


def _align(tangents: list, ans: Tensor, primals: tuple, batch: int) -> list:
    # The tangent of an input of lower rank than the output gets size-1 axes after the batch
    # axis, so that broadcasting never pairs the batch axis with an axis of a primal.
    rank = len(ans.shape)
    aligned = []
    for t, p in zip(tangents, primals):
        if t is not None and len(p.shape) < rank:
            t = bind(reshape_p, t, shape=(batch,) + (1,) * (rank - len(p.shape)) + p.shape)
        aligned.append(t)
    return aligned


def _loop(prim, tangents, ans, primals, params, batch):
    """The primitive's own rules, once per batch element."""
    if batch == 0:
        return zeros((0,) + ans.shape, ans.dtype)
    columns = []
    for b in range(batch):
        ts = [None if t is None else t[b] for t in tangents]
        out = output_tangent(prim, ts, ans, primals, params)
        columns.append(
            out if out is None or out.shape == ans.shape else broadcast_to(out, ans.shape)
        )
    if all(c is None for c in columns):
        return None
    return stack([zeros(ans.shape, ans.dtype) if c is None else c for c in columns])
