"""Primitives and how they are applied: ``bind``, the one entry point of every op.

A :class:`Primitive` is one record: its name, arity, family and linearity, its forward (a backend
kernel), one VJP rule and one JVP rule per input. Rules are written in tfgrad ops, so they are
differentiable again.

Derivatives come from *traces* (JAX's design, HIPS autograd's boxes). Each active transformation
(a :class:`~tfgrad.GradientTape` recording, a ``jvp`` in progress) is a :class:`Trace` with a
level; later ones get higher levels. Its values are :class:`Tracer` objects that wrap a primal
value of a lower level. ``bind`` hands an op to the highest active trace among its inputs; that
trace unwraps its own tracers, binds the op again on the primals (reaching lower traces in turn,
and finally the backend), and wraps the result. Because the VJP/JVP rules run on the primals
through ``bind`` too, an outer tape records an inner tape's sweep: that is how exact higher
derivatives fall out, with no perturbation confusion.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from . import config
from .backends.base import OpInfo
from .dtypes import _BY_NUMPY, as_dtype
from .errors import MissingRuleError, NumericalError, TracerConversionError
from .tensor import Tensor

__all__ = ["Primitive", "Trace", "Tracer", "bind", "full_lower", "strip_derivatives"]

_levels = itertools.count(1)
_new = object.__new__


class Trace:
    """One active transformation. Subclasses implement :meth:`process`."""

    carries_derivatives = True  # False for a trace that stages ops (jit): see strip_derivatives

    def __init__(self):
        self.level = 0
        self.active = False

    def activate(self) -> None:
        self.level = next(_levels)
        self.active = True

    def process(self, prim: Primitive, args: list, params: dict) -> Tensor:
        raise NotImplementedError


class Tracer(Tensor):
    """A value seen by a trace: a primal (maybe itself a tracer of a lower level) plus what the
    trace needs. The concrete buffer of the innermost primal is shared, so ``numpy()``,
    ``item()`` and printing work as for any Tensor."""

    __slots__ = ("primal", "_trace")

    def __init__(self, trace: Trace, primal: Tensor):
        super().__init__(primal._data, primal._shape, primal._dtype, primal._backend)
        self.primal = primal
        self._trace = trace

    # NumPy converts implicitly (np.asarray, a NumPy function tfgrad does not dispatch, a list
    # of tensors), and so do math.exp(x) and np.float64(x) through __float__: the result would
    # be a constant and the derivative would be lost without a word. (A tfgrad.jit tracer has
    # no value to convert: its buffer raises TracingError.)
    def __array__(self, dtype=None, copy=None):
        if _differentiating(self):
            raise self._conversion_error("a NumPy array")
        return super().__array__(dtype, copy)

    def __float__(self) -> float:
        if self._dtype.is_floating and _differentiating(self):
            raise self._conversion_error("a Python float")
        return super().__float__()

    def __complex__(self) -> complex:
        if _differentiating(self):
            raise self._conversion_error("a Python complex")
        return complex(super().__float__())

    def _conversion_error(self, target: str) -> TracerConversionError:
        return TracerConversionError(
            f"Cannot convert a {self._label()} (a value being differentiated) of shape "
            f"{self._shape} and dtype {self._dtype.name} to {target}: the result would silently "
            "stop depending on the inputs. Compute with tfgrad ops instead (NumPy functions and "
            "ufuncs on tensors dispatch to them: np.sin(x), np.sum(x, axis=0)), or, to read the "
            "values as constants with no derivative, call .numpy() or .item() explicitly (or "
            "tfgrad.stop_gradient(x))."
        )


def _differentiating(x: Tensor) -> bool:
    """Whether a trace that carries derivatives is still active on ``x`` (a finished tape or
    jvp, or a tape inside ``stop_recording``, has nothing left to lose)."""
    while isinstance(x, Tracer):
        if x._trace.active and x._trace.carries_derivatives:
            return True
        x = x.primal
    return False


def full_lower(x: Tensor) -> Tensor:
    """The concrete value under every tracer."""
    while isinstance(x, Tracer):
        x = x.primal
    return x


def strip_derivatives(x: Tensor) -> Tensor:
    """``x`` without the derivative traces on it (what ``stop_gradient`` returns); a staging
    trace (``tfgrad.jit``) stays, so the value is still computed from the function's inputs."""
    while isinstance(x, Tracer) and x._trace.carries_derivatives:
        x = x.primal
    return x


def _lower_inactive(x: Any) -> Any:
    while isinstance(x, Tracer) and not x._trace.active:
        x = x.primal
    return x


def bind(prim: Primitive, *args: Tensor, **params: Any) -> Tensor:
    """Apply ``prim`` to tensors: the highest active trace among the inputs processes it;
    with none, the backend computes it. A cast hook (``tfgrad.amp.autocast``) sees the
    arguments first, so the casts it adds are bound (and recorded) like any op."""
    if config._cast_policy is not None:
        args = config._cast_policy(prim.name, args)
    for a in args:
        if isinstance(a, Tracer):
            break
    else:  # no tracer at all: the common case of eager code, decided in one pass
        out = prim.impl(*args, **params) if params else prim.impl(*args)
        if config._check_numerics:
            _check_numerics(prim, args, out)
        return out
    top = None
    lowered = []
    for a in args:
        if isinstance(a, Tracer):
            if not a._trace.active:
                a = _lower_inactive(a)
            if isinstance(a, Tracer) and (top is None or a._trace.level > top.level):
                top = a._trace
        lowered.append(a)
    if top is not None:
        return top.process(prim, lowered, params)
    out = prim.impl(*lowered, **params)
    if config.numerics_checked():
        _check_numerics(prim, lowered, out)
    return out


def _check_numerics(prim: Primitive, args: list, out: Tensor) -> None:
    def finite(t: Tensor) -> bool:
        if not t.dtype.is_floating:
            return True
        return bool(np.isfinite(np.asarray(t.numpy(), dtype=np.float64)).all())

    if args and all(finite(a) for a in args) and not finite(out):
        shapes = ", ".join(str(a.shape) for a in args)
        raise NumericalError(
            f"{prim.name} turned finite inputs of shapes {shapes} into NaN/inf (output shape "
            f"{out.shape}, {out.dtype.name}); check the inputs' domain (log of <= 0, sqrt of < 0, "
            "overflowing exp) or scale them."
        )


class Primitive:
    """A differentiable op: every fact about it in one place.

    ``Primitive(name, n_in, family=..., linear=...)`` declares its name, how many inputs it
    takes (``None``: any number), its family (one of :data:`tfgrad.backends.base.FAMILIES`:
    ``"elementwise"``, ``"transcendental"``, ``"reduction"``, ...; ``None`` for an op only its
    own Python forward can run) and whether it is linear in its floating inputs. These travel to
    the backends as :attr:`op`, a plain :class:`~tfgrad.backends.base.OpInfo`: the backend's
    kernel tables, its dispatch policy, ``tfgrad.jit``'s fusion and batched forward mode read
    them from there.

    Its forward is the backend's kernel for :attr:`op`, unless ``def_impl`` gives a Python one
    (on tensors) or ``def_scalar`` the math of one element of a pointwise op, which every
    backend compiles. ``vjps[i](g, ans, *inputs, **params)`` returns the cotangent of input
    ``i`` (output-shaped is fine: the tape sums broadcast axes away); ``jvps[i](t, ans, *inputs,
    **params)`` returns input ``i``'s contribution to the output tangent. A rule may return
    ``None`` for zero. Variadic primitives (``concatenate``) give ``vjp_all``/``jvp_all`` over
    all inputs instead. A linear primitive needs no JVP rule: its tangent is the primitive
    applied to the input tangents (see :func:`tfgrad.forward.output_tangent`).
    ``batched_jvp`` is forward mode for a batch of tangents at once, needed only by a
    primitive that names axes, shapes or indices (a pointwise one batches by its JVP rules).

    ``saves`` (input positions) and ``saves_output`` declare which values its rules (VJP, JVP
    and batched JVP) read, beyond shapes and dtypes: a :class:`~tfgrad.GradientTape` keeps
    only those (PyTorch's ``save_for_backward``) and hands the rules a
    :class:`~tfgrad.tape.NotSaved` stand-in (shape, dtype, ndim, size; reading its values
    raises :class:`~tfgrad.errors.NotSavedError`) for the others. Inputs that are not
    floating (indices, masks) are always kept. Giving one of the two declares the other as
    nothing; giving neither keeps every value, except for a linear primitive, whose rules
    read no floating value (its derivative is itself).
    """

    def __init__(
        self,
        name: str,
        n_in: int | None = None,
        *,
        family: str | None = None,
        linear: bool = False,
        saves: tuple[int, ...] | None = None,
        saves_output: bool | None = None,
    ):
        self.name = name
        self.op = OpInfo(name, n_in, family)
        self.linear = linear
        # What a tape keeps for the rules (its residuals); see the class docstring.
        if saves is None and saves_output is None and not linear:
            self.saves: tuple[int, ...] | None = None  # not declared: every value
            self.saves_output = True
        else:
            self.saves = tuple(saves or ())
            self.saves_output = bool(saves_output)
        self.impl: Callable[..., Tensor] = self._run_backend
        self.vjps: tuple[Callable | None, ...] | None = None
        self.jvps: tuple[Callable | None, ...] | None = None
        self.vjp_all: Callable | None = None
        self.jvp_all: Callable | None = None
        self.batched_jvp: Callable | None = None
        self.simplify: Callable | None = None

    @property
    def family(self) -> str | None:
        return self.op.family

    @property
    def n_in(self) -> int | None:
        return self.op.arity

    @property
    def on_backend(self) -> bool:
        """Whether the forward is a backend kernel (no Python ``def_impl``)."""
        return self.impl == self._run_backend

    def _run_backend(self, *args: Tensor, **params: Any) -> Tensor:
        backend = config._current or config.current_backend()
        if params:
            buf = backend.run(self.op, *[a._data for a in args], **params)
        elif len(args) == 2:
            buf = backend.run(self.op, args[0]._data, args[1]._data)
        elif len(args) == 1:
            buf = backend.run(self.op, args[0]._data)
        else:
            buf = backend.run(self.op, *[a._data for a in args])
        # wrap(buf, backend), inlined (and Tensor.__init__ with it): this runs once per op
        out = _new(Tensor)
        out._data = buf
        shape = buf.shape
        out._shape = shape if type(shape) is tuple else tuple(shape)
        out._dtype = _BY_NUMPY.get(buf.dtype) or as_dtype(buf.dtype)
        out._backend = backend
        return out

    def def_impl(self, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """A Python forward on tensors (it replaces the backend kernel)."""
        self.impl = fn
        return fn

    def def_scalar(self, fn: Callable) -> Callable:
        """The math of one element of a pointwise primitive, written with Python's arithmetic
        operators and ``abs`` only (so it means the same on a NumPy array and in a compiled
        kernel); every backend runs the primitive from it, and ``tfgrad.jit`` fuses it. ``fn``
        is a ``def`` at a module's top level (Taichi reads its source)."""
        self.op = OpInfo(self.name, self.op.arity, self.op.family, scalar=fn)
        self.impl = self._run_backend
        return fn

    def defvjp(self, *rules: Callable | None) -> None:
        self.vjps = rules

    def defjvp(self, *rules: Callable | None) -> None:
        self.jvps = rules

    def def_batched_jvp(self, rule: Callable) -> Callable:
        """``rule(tangents, ans, *inputs, batch=B, **params)``: the output's tangent for
        tangents with a leading batch axis of ``B`` (see :mod:`tfgrad.batching`)."""
        self.batched_jvp = rule
        return rule

    def def_simplify(self, rule: Callable) -> Callable:
        """``rule(out, *inputs, **params)``: the index of the input this application returns
        unchanged, or ``None``. ``inputs`` are constant Tensors, or values known only when the
        program runs (with ``shape`` and ``dtype``); ``tfgrad.jit`` drops such applications."""
        self.simplify = rule
        return rule

    def vjp_rule(self, i: int) -> Callable:
        if self.vjps is None or i >= len(self.vjps) or self.vjps[i] is None:
            raise MissingRuleError(
                f"Primitive {self.name!r} has no VJP rule for input {i}, so reverse mode cannot "
                f"pass through it; define one with {self.name}_p.defvjp(...) "
                "(see tfgrad.extend)."
            )
        return self.vjps[i]

    def jvp_rule(self, i: int) -> Callable:
        if self.jvps is None or i >= len(self.jvps) or self.jvps[i] is None:
            raise MissingRuleError(
                f"Primitive {self.name!r} has no JVP rule for input {i}, so forward mode cannot "
                f"pass through it; define one with {self.name}_p.defjvp(...) "
                "(see tfgrad.extend)."
            )
        return self.jvps[i]

    def __call__(self, *args: Tensor, **params: Any) -> Tensor:
        return bind(self, *args, **params)

    def __repr__(self) -> str:
        return f"Primitive({self.name!r})"
