"""Forward mode: dual tensors carry a tangent beside each primal, pushed by the JVP rules.

One forward pass gives J·v for a tangent ``v`` (true forward mode, not two reverse passes).
Because JVP rules are tfgrad ops, forward mode composes with tapes in any order: ``jvp`` of a
``grad`` is forward-over-reverse, the exact Hessian-vector product.

:func:`output_tangent` is the one place that applies a primitive's JVP rules; the same rules
replay over a recorded tape (:mod:`tfgrad.replay`) and push batches of tangents
(:mod:`tfgrad.batching`).
"""

from __future__ import annotations

from typing import Sequence

from .errors import DtypeError, ShapeError
from .ops import add, astype, broadcast_to, zeros
from .ops._common import as_tensor
from .primitive import Primitive, Trace, Tracer, bind
from .tensor import Tensor

__all__ = ["DualTensor", "ForwardTrace", "forward_pass", "output_tangent"]


def output_tangent(
    prim: Primitive, tangents: list, ans: Tensor, primals: tuple, params: dict
) -> Tensor | None:
    """The output tangent of one application of ``prim`` (``None`` for zero), from the input
    tangents (``None`` where an input has none): the sum of the primitive's per-input JVP rules,
    its ``jvp_all`` over all inputs, or, for a linear primitive without rules, the primitive
    itself applied to the tangents (a zero for an input without one; index inputs as they
    are)."""
    if prim.jvp_all is not None:
        return prim.jvp_all(tangents, ans, *primals, **params)
    if prim.jvps is None and prim.linear:
        return _linear_jvp(prim, tangents, primals, params)
    out = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        term = prim.jvp_rule(i)(t, ans, *primals, **params)
        if term is not None:
            out = term if out is None else add(out, term)
    return out


def _linear_jvp(prim: Primitive, tangents: list, primals: tuple, params: dict) -> Tensor | None:
    # f linear in its floating inputs: df = f(dx, dy, ...)
    given = [t for t in tangents if t is not None]
    if not given:
        return None
    dtype = given[0].dtype
    args = [
        t if t is not None else zeros(p.shape, dtype) if p.dtype.is_floating else p
        for t, p in zip(tangents, primals)
    ]
    return bind(prim, *args, **params)


class DualTensor(Tracer):
    """A primal value with its tangent (the directional derivative being carried)."""

    __slots__ = ("tangent",)

    def __init__(self, trace: ForwardTrace, primal: Tensor, tangent: Tensor):
        super().__init__(trace, primal)
        self.tangent = tangent

    def _label(self) -> str:
        return "DualTensor"


class ForwardTrace(Trace):
    """One forward-mode transformation (one ``jvp`` call)."""

    def process(self, prim: Primitive, args: list, params: dict) -> Tensor:
        primals, tangents = [], []
        for a in args:
            if isinstance(a, DualTensor) and a._trace is self:
                primals.append(a.primal)
                tangents.append(a.tangent)
            else:
                primals.append(a)
                tangents.append(None)
        ans = bind(prim, *primals, **params)
        if not ans.dtype.is_floating:
            return ans
        tangent = output_tangent(prim, tangents, ans, primals, params)
        if tangent is None:
            return ans
        tangent = as_tensor(tangent)
        if tangent.shape != ans.shape:
            tangent = broadcast_to(tangent, ans.shape)
        if tangent.dtype is not ans.dtype:
            tangent = astype(tangent, ans.dtype)
        return DualTensor(self, ans, tangent)


def forward_pass(fn, primals: Sequence[Tensor], tangents: Sequence[Tensor]) -> tuple[list, list]:
    """Run ``fn(*duals)`` once; return the flat outputs and their tangents.

    ``fn`` returns a list of tensors. A tangent must match its primal's shape and dtype.
    """
    trace = ForwardTrace()
    trace.activate()
    try:
        duals = []
        for i, (p, t) in enumerate(zip(primals, tangents)):
            t = as_tensor(t)
            if t.shape != p.shape:
                raise ShapeError(
                    f"jvp: tangent {i} has shape {t.shape} but its primal has shape {p.shape}; "
                    "they must be equal."
                )
            if not p.dtype.is_floating:
                raise DtypeError(
                    f"jvp: primal {i} has dtype {p.dtype.name}; forward mode needs floating "
                    "inputs (cast with astype('float64'))."
                )
            duals.append(DualTensor(trace, p, t if t.dtype is p.dtype else astype(t, p.dtype)))
        outs = fn(*duals)
    finally:
        trace.active = False
    values, out_tangents = [], []
    for out in outs:
        out = as_tensor(out)
        if isinstance(out, DualTensor) and out._trace is trace:
            values.append(out.primal)
            out_tangents.append(out.tangent)
        else:
            values.append(out)
            out_tangents.append(zeros(out.shape, out.dtype))
    return values, out_tangents
