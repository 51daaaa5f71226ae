"""Collapsed Taylor mode: value, first-order tangents and second-order coefficients in ONE
forward pass (the forward Laplacian of Li et al. 2023; Dangel et al. 2024).

For ``B`` directions ``x1_b`` every value carries its primal, its ``B`` first-order tangents
(batched, shape ``(B, *S)``) and a second-order coefficient ``x2``. Through ``y = g(x)``::

    y1_b = g'(x)·x1_b
    y2   = g'(x)·x2 + Σ_b g''(x)[x1_b, x1_b]      (collapsed: one coefficient, shape S)
    y2_b = g'(x)·x2_b + g''(x)[x1_b, x1_b]         (not collapsed: B coefficients)

With ``x1_b = e_b`` (every basis direction) and ``x2 = 0``, the output's ``y2`` is the trace
of the Hessian (the Laplacian) and, not collapsed, ``y2_b`` is the Hessian's diagonal; ``y1``
is the gradient. No new rule is written: ``g'(x)·t`` is the primitive's own JVP rule
(:func:`tfgrad.forward.output_tangent`, batched by :func:`tfgrad.batching.batched_jvp`) and
``g''(x)[v, v]`` is the JVP of that JVP rule in the same direction ``v``:

- a pointwise primitive: its second derivative is diagonal (element by element), so a forward
  pass over the rule with unit tangents gives each ``∂²g/∂x_i∂x_j`` (``size`` elements, no
  batch), and only the products of the tangents, ``Σ_b x1_ib ⊙ x1_jb``, touch the batch;
- a linear primitive (reshape, sum, slicing, ...): zero;
- any other (matmul, max, prod, cumprod, a custom one): the batched rule recorded on a tape and
  the ``B`` directions pushed through it again (:func:`tfgrad.replay.push_tangents`), whose
  ``(B, B, *S)`` result's diagonal is the term: exact, ``B`` times the memory of a pointwise
  step; it is skipped outright when the rule does not depend on the primal (``x @ W`` with a
  constant ``W``).

Two shortcuts keep the pass lean without changing what it computes (up to rounding):

- the input's tangents, the unit basis, are not materialised while only reshapes and a
  product ``x @ W`` (``x`` a vector) read them: that product's tangents are the rows of ``W``
  (:class:`_UnitBasis`), which skips an ``n × n × m`` product and the ``n × n`` identity;
- a pointwise primitive with tangents on one input gets its first and second derivatives from
  one unbatched forward pass over its JVP rule (``g'`` is that pass's value, ``g''`` its
  tangent), so the batched tangent is one product ``x1 ⊙ g'`` instead of the rule again.
"""

from __future__ import annotations

from typing import Callable

from ..backends.base import POINTWISE
from ..batching import batched_jvp
from ..errors import ShapeError
from ..forward import DualTensor, ForwardTrace, output_tangent
from ..ops import add, astype, broadcast_to, concatenate, eye, multiply, ones, reshape, sum, zeros
from ..ops._common import as_tensor
from ..ops.linalg import matmul_p
from ..ops.movement import reshape_p
from ..primitive import Primitive, Trace, Tracer, bind
from ..replay import push_tangents
from ..tape import GradientTape
from ..tensor import Tensor

__all__ = ["TaylorTensor", "TaylorTrace", "taylor_pass"]


class TaylorTensor(Tracer):
    """A primal with ``t1`` (``(B, *shape)``: B first-order tangents) and ``t2`` (the collapsed
    second-order coefficient, ``shape``; or ``(B, *shape)`` not collapsed); ``None`` is zero."""

    __slots__ = ("t1", "t2")

    def __init__(self, trace: TaylorTrace, primal: Tensor, t1: Tensor | None, t2: Tensor | None):
        super().__init__(trace, primal)
        self.t1 = t1
        self.t2 = t2

    def _label(self) -> str:
        return "TaylorTensor (forward Laplacian)"


class TaylorTrace(Trace):
    """One collapsed (or, with ``collapse=False``, per-direction) Taylor-mode pass over
    ``batch`` directions."""

    def __init__(self, batch: int, collapse: bool = True):
        super().__init__()
        self.batch = batch
        self.collapse = collapse

    def process(self, prim: Primitive, args: list, params: dict) -> Tensor:
        primals, t1s, t2s = [], [], []
        for a in args:
            if isinstance(a, TaylorTensor) and a._trace is self:
                primals.append(a.primal)
                t1s.append(a.t1)
                t2s.append(a.t2)
            else:
                primals.append(a)
                t1s.append(None)
                t2s.append(None)
        primals = tuple(primals)
        unit = [i for i, t in enumerate(t1s) if isinstance(t, _UnitBasis)]
        if unit:
            out = self._unit_shortcut(prim, unit, t1s, t2s, primals, params)
            if out is not None:
                return out
            for i in unit:
                t1s[i] = t1s[i].tensor()
        batch, has_t1 = self.batch, any(t is not None for t in t1s)
        y1 = q = None
        mixed = has_t1 and not prim.linear and prim.family not in POINTWISE
        if mixed and prim is matmul_p and (t1s[0] is None or t1s[1] is None):
            mixed = False  # bilinear: along one input only, g'' = 0 (no tape needed)
        if mixed:
            # the value and one batched JVP, recorded on a tape, give y1 and, pushed again, g''
            ans, y1, q = _mixed_term(prim, t1s, primals, params, batch, self.collapse)
        else:
            ans = bind(prim, *primals, **params)
        if not ans.dtype.is_floating:
            return ans
        g1 = None  # g'(x) of the one input with tangents, for a pointwise primitive
        if has_t1 and not mixed:
            idx = [i for i, t in enumerate(t1s) if t is not None]
            if prim.linear or prim.family not in POINTWISE:
                y1 = batched_jvp(prim, t1s, ans, primals, params, batch)
            elif len(idx) == 1:
                y1, q, g1 = _pointwise_one_input(
                    prim, idx[0], t1s[idx[0]], ans, primals, params, batch, self.collapse
                )
            else:
                y1 = batched_jvp(prim, t1s, ans, primals, params, batch)
                q = _pointwise_term(prim, t1s, ans, primals, params, batch, self.collapse)
        y2 = None
        t2_idx = [i for i, t in enumerate(t2s) if t is not None]
        if t2_idx:  # g'(x)·x2
            if g1 is not None and t2_idx == idx:  # the same one input: x2 ⊙ g'
                y2 = _times_derivative(t2s[idx[0]], g1, primals[idx[0]], ans, not self.collapse)
            elif self.collapse:
                y2 = output_tangent(prim, t2s, ans, primals, params)
            else:
                y2 = batched_jvp(prim, t2s, ans, primals, params, batch)
        if q is not None:
            y2 = q if y2 is None else add(y2, q)
        if y1 is None and y2 is None:
            return ans
        return TaylorTensor(
            self,
            ans,
            _fit(y1, (batch,) + ans.shape, ans),
            _fit(y2, ans.shape if self.collapse else (batch,) + ans.shape, ans),
        )

    def _unit_shortcut(self, prim, unit, t1s, t2s, primals, params):
        """The output for an application reading the unit basis where its tangents need no
        product: a reshape (still the unit basis, reshaped) or ``x @ W`` for a row vector
        ``x`` (the tangents are W's rows). ``None``: materialise the basis instead."""
        if any(t is not None for t in t2s) or len(unit) != len([t for t in t1s if t is not None]):
            return None
        basis = t1s[unit[0]]
        if prim is reshape_p:
            ans = bind(prim, *primals, **params)
            return TaylorTensor(self, ans, basis.reshaped(ans.shape), None)
        if prim is matmul_p and unit == [0]:
            a, b = primals
            if a.ndim == 2 and a.shape[0] == 1 and b.ndim == 2:
                ans = bind(prim, a, b, **params)
                rows = b if basis.batch == basis.n else b[basis.start : basis.start + basis.batch]
                y1 = reshape(rows, (basis.batch,) + ans.shape)  # (B, 1, m): e_b @ W = W[b]
                return TaylorTensor(self, ans, _fit(y1, (basis.batch,) + ans.shape, ans), None)
        return None


class _UnitBasis:
    """Rows ``start .. start + batch`` of the ``n × n`` identity as the input's tangents, each
    reshaped to ``shape``: kept symbolic until an op needs the numbers (:meth:`tensor`)."""

    __slots__ = ("batch", "n", "start", "shape", "dtype", "_tensor")

    def __init__(self, batch: int, n: int, start: int, shape: tuple, dtype):
        self.batch, self.n, self.start, self.shape, self.dtype = batch, n, start, shape, dtype
        self._tensor = None

    def reshaped(self, shape: tuple) -> _UnitBasis:
        return _UnitBasis(self.batch, self.n, self.start, tuple(shape), self.dtype)

    def tensor(self) -> Tensor:
        if self._tensor is None:
            eye_rows = eye(self.batch, self.n, k=self.start, dtype=self.dtype)
            self._tensor = reshape(eye_rows, (self.batch,) + self.shape)
        return self._tensor


def _fit(t: Tensor | None, shape: tuple, ans: Tensor) -> Tensor | None:
    if t is None:
        return None
    t = as_tensor(t)
    if t.shape != shape:
        if t.ndim > len(shape):  # a rule kept size-1 axes of a broadcast: sum them away
            t = sum(t, axis=tuple(range(t.ndim - len(shape))))
        t = broadcast_to(t, shape)
    return t if t.dtype is ans.dtype else astype(t, ans.dtype)


def _unwrap(x: Tensor, tape: GradientTape) -> Tensor:
    return x.primal if isinstance(x, Tracer) and x._trace is tape else x


def _times_derivative(t: Tensor, g1: Tensor, p: Tensor, ans: Tensor, batched: bool) -> Tensor:
    """``t ⊙ g'`` for a tangent ``t`` of input ``p`` (with a leading batch axis if ``batched``),
    aligned on the right as :mod:`tfgrad.batching` aligns a pointwise rule's tangents."""
    return multiply(_aligned(t, p, ans) if batched else t, g1)


def _aligned(t: Tensor, p: Tensor, ans: Tensor) -> Tensor:
    if p.ndim >= ans.ndim:
        return t
    return reshape(t, t.shape[:1] + (1,) * (ans.ndim - p.ndim) + p.shape)


def _pointwise_one_input(prim, i, t1, ans, primals, params, batch, collapse):
    """``(y1, q, g')`` for a pointwise primitive whose input ``i`` alone has tangents: one
    unbatched forward pass over its JVP rule gives ``g'`` (the value) and ``g''`` (the
    tangent); then ``y1 = x1 ⊙ g'`` and ``q = g'' ⊙ Σ_b x1_b ⊙ x1_b``."""
    g1, g2 = _pointwise_derivatives(prim, primals, params, i)
    if g1 is None:
        return None, None, None
    y1 = _times_derivative(t1, g1, primals[i], ans, True)
    q = None
    if g2 is not None:
        d = _aligned(t1, primals[i], ans)
        prods = multiply(d, d)
        q = multiply(g2, sum(prods, axis=0) if collapse else prods)
    return y1, q, g1


def _pointwise_derivatives(prim, primals, params, i):
    """``(∂g/∂x_i, ∂²g/∂x_i²)`` of a pointwise primitive, element by element (``None`` for
    zero): its JVP rule applied to ones on input ``i``, and that rule's JVP along ones."""
    ones_i = ones(primals[i].shape, primals[i].dtype)
    trace = ForwardTrace()
    trace.activate()
    try:
        full = list(primals)
        full[i] = DualTensor(trace, primals[i], ones_i)
        tangents = [None] * len(primals)
        tangents[i] = ones_i  # a constant: only the primal moves
        out = bind(prim, *full, **params)
        t = output_tangent(prim, tangents, out, tuple(full), params)
    finally:
        trace.active = False
    if t is None:
        return None, None
    if isinstance(t, DualTensor) and t._trace is trace:
        return t.primal, t.tangent
    return as_tensor(t), None


def _pointwise_term(prim, t1s, ans, primals, params, batch, collapse):
    """Σ_b g''(x)[x1_b, x1_b] (collapsed, shape of ``ans``) or each term ``(B, *ans.shape)``
    for a pointwise primitive: the JVP of its JVP rule, element by element."""
    idx = [i for i, t in enumerate(t1s) if t is not None]
    # Output element k depends on one element of each input, so g'' is diagonal: with
    # g_ij = ∂²g/∂x_i∂x_j elementwise (unbatched passes, O(size) each), the term is
    # Σ_ij g_ij ⊙ Σ_b x1_ib ⊙ x1_jb; only the products of tangents touch the batch.
    rank = ans.ndim
    dirs = {}
    for i in idx:  # align on the right of the batch axis, as batching's _align does
        p = primals[i]
        dirs[i] = reshape(t1s[i], (batch,) + (1,) * (rank - p.ndim) + p.shape)
    term = None
    for a, i in enumerate(idx):
        for j in idx[a:]:
            g_ij = _pointwise_coefficient(prim, primals, params, i, j)
            if g_ij is None:
                continue
            prods = multiply(dirs[i], dirs[j])
            if collapse:
                prods = sum(prods, axis=0)
            piece = multiply(g_ij if i == j else multiply(g_ij, 2.0), prods)
            term = piece if term is None else add(term, piece)
    return term


def _mixed_term(prim, t1s, primals, params, batch, collapse):
    """``(ans, y1, q)`` for a primitive that mixes elements (matmul, max, prod, ...): its
    value, the batched first-order tangent ``y1`` and the second-order term ``q`` (as in
    :func:`_pointwise_term`; ``None`` for zero). The batched JVP is recorded on a tape and the
    ``B`` directions pushed through it again: its ``(B, B, *S)`` tangent holds
    ``g''[x1_b, x1_c]``, whose diagonal ``b == c`` is the term."""
    idx = [i for i, t in enumerate(t1s) if t is not None]
    with GradientTape(persistent=True) as tape:
        watched = {i: tape.watch(primals[i]) for i in idx}
        full = tuple(watched.get(i, p) for i, p in enumerate(primals))
        a = bind(prim, *full, **params)  # recorded: the rule may read it (max, prod)
        if not a.dtype.is_floating:
            return _unwrap(a, tape), None, None
        h = batched_jvp(prim, list(t1s), a, full, params, batch)  # (B, *S): g'(p)·x1_b
    ans = _unwrap(a, tape)
    if not (isinstance(h, Tracer) and h._trace is tape):
        return ans, h, None  # the rule does not depend on the primal: g'' = 0 along these inputs
    pushed = push_tangents(
        tape, {watched[i].variable: t1s[i] for i in idx}, batch=batch, keep=(h.variable,)
    ).get(h.variable)  # (B_c, B_b, *S): g''[x1_b, x1_c]
    if pushed is None:
        return ans, h.primal, None
    mask = reshape(eye(batch, dtype=ans.dtype), (batch, batch) + (1,) * ans.ndim)
    diagonal = sum(multiply(pushed, mask), axis=0)  # (B, *S): the terms with b == c
    return ans, h.primal, (sum(diagonal, axis=0) if collapse else diagonal)


def _pointwise_coefficient(prim, primals, params, i, j):
    """``∂²g/∂x_i∂x_j`` of a pointwise primitive, element by element (``None`` for zero): the
    JVP, along ones on input ``j``, of its JVP rule applied to ones on input ``i``."""
    ones_i = ones(primals[i].shape, primals[i].dtype)

    def rule(p):
        full = list(primals)
        full[j] = p
        tangents = [None] * len(primals)
        tangents[i] = ones_i  # a constant: only the primal moves
        out = bind(prim, *full, **params)
        t = output_tangent(prim, tangents, out, tuple(full), params)
        return [zeros(out.shape, out.dtype) if t is None else t]

    trace = ForwardTrace()
    trace.activate()
    try:
        x = DualTensor(trace, primals[j], ones(primals[j].shape, primals[j].dtype))
        (t,) = rule(x)
    finally:
        trace.active = False
    return t.tangent if isinstance(t, DualTensor) and t._trace is trace else None


def taylor_pass(
    f: Callable, x: Tensor, collapse: bool = True, chunk_size: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(f(x), gradient, c)`` from Taylor-mode passes along every basis direction of ``x``:
    ``c`` is the Laplacian (``collapse=True``) or the Hessian's diagonal (shape of ``x``).
    ``chunk_size`` directions travel per pass (default: all ``n`` in one pass); the
    second-order coefficients of different chunks add up, as the directions are
    independent."""
    n = x.size
    if n == 0:
        return as_tensor(f(x)), zeros(x.shape, x.dtype), zeros(() if collapse else x.shape, x.dtype)
    chunk = n if chunk_size is None else max(1, int(chunk_size))
    value, grads, coeffs = None, [], []
    for start in range(0, n, chunk):
        b = min(chunk, n - start)
        trace = TaylorTrace(b, collapse)
        trace.activate()
        try:
            basis = _UnitBasis(b, n, start, x.shape, x.dtype)
            out = as_tensor(f(TaylorTensor(trace, x, basis, None)))
        finally:
            trace.active = False
        if out.size != 1:
            raise ShapeError(
                f"laplacian: the function must return one number, got shape {out.shape}; "
                "reduce it (tfgrad.sum) or take the Laplacian of each output separately."
            )
        if isinstance(out, TaylorTensor) and out._trace is trace:
            value = out.primal
            t1 = out.t1.tensor() if isinstance(out.t1, _UnitBasis) else out.t1
            t1 = zeros((b,) + out.shape, out.dtype) if t1 is None else t1
            t2_shape = out.shape if collapse else (b,) + out.shape
            t2 = zeros(t2_shape, out.dtype) if out.t2 is None else out.t2
        else:
            value = out
            t1 = zeros((b,) + out.shape, out.dtype)
            t2 = zeros(out.shape if collapse else (b,) + out.shape, out.dtype)
        grads.append(reshape(t1, (b,)))
        coeffs.append(reshape(t2, () if collapse else (b,)))
    grad = reshape(grads[0] if len(grads) == 1 else concatenate(grads), x.shape)
    if collapse:
        lap = coeffs[0]
        for c in coeffs[1:]:
            lap = add(lap, c)
        return value, grad, lap
    return value, grad, reshape(coeffs[0] if len(coeffs) == 1 else concatenate(coeffs), x.shape)
