"""The exceptions tfgrad raises.

Every message names the op, the shapes or dtypes involved, and what to do about it.
Catch :class:`TfgradError` to catch them all.
"""

from __future__ import annotations

__all__ = [
    "TfgradError",
    "ShapeError",
    "DtypeError",
    "TapeError",
    "NotSavedError",
    "BackendError",
    "MissingRuleError",
    "MissingKernelError",
    "NumericalError",
    "GradcheckError",
    "TracingError",
    "TracerConversionError",
    "NumpyDispatchError",
    "OptionError",
    "SecondOrderError",
    "NegativeCurvatureError",
    "AMPConfigError",
]


class TfgradError(Exception):
    """Base class of every error tfgrad raises on purpose."""


class ShapeError(TfgradError, ValueError):
    """Shapes that do not fit the op (broadcasting, matmul, reshape, axis out of range)."""


class DtypeError(TfgradError, TypeError):
    """A dtype the op cannot take (e.g. a gradient with respect to an integer tensor)."""


class TapeError(TfgradError, RuntimeError):
    """Misuse of a GradientTape (second sweep of a non-persistent tape, a target not on it)."""


class NotSavedError(TapeError):
    """A rule read a value the tape did not keep: the primitive's ``saves`` declaration in
    ``tfgrad/ops/`` leaves out a value its rules read (an internal error: fix the
    declaration), or a record's value was read from a tape made without ``keep_values``."""


class BackendError(TfgradError, RuntimeError):
    """A backend cannot be initialised or cannot run what was asked."""


class MissingRuleError(TfgradError, NotImplementedError):
    """A primitive has no VJP or JVP rule for the derivative that was asked for."""


class MissingKernelError(BackendError, NotImplementedError):
    """A backend has no kernel for a primitive."""


class NumericalError(TfgradError, FloatingPointError):
    """A value that cannot be used (NaN or inf where a finite number is required)."""


class GradcheckError(TfgradError, AssertionError):
    """:func:`tfgrad.gradcheck` found analytic and numeric derivatives that disagree."""


class TracingError(TfgradError, RuntimeError):
    """:func:`tfgrad.jit` met something it cannot compile (Python control flow on traced values)."""


class TracerConversionError(TfgradError, TypeError):
    """A traced value (tracked by a tape, a forward-mode dual, a ``tfgrad.jit`` tracer) was
    about to become a plain NumPy array, which would drop its derivative without a word."""


class NumpyDispatchError(TfgradError, TypeError):
    """A NumPy function or ufunc was called on a tensor, but tfgrad has no counterpart for it
    (or for one of the arguments given), so it cannot run it and keep the derivative."""


class OptionError(TfgradError, ValueError):
    """An option that is not one of those a function takes (an unknown ``method=`` or
    ``mode=``): the message lists the valid ones."""


class SecondOrderError(TfgradError, ValueError):
    """A :mod:`tfgrad.second_order` tool was given a value it cannot use (``k`` or a budget out
    of range, a negative damping, an ``x`` beside an operator); an unknown ``method=`` or
    ``which=`` is an :class:`OptionError`, a wrong shape a :class:`ShapeError`."""


class NegativeCurvatureError(TfgradError, ArithmeticError):
    """Conjugate gradient met a direction ``p`` with ``pᵀ(H + damping·I)p <= 0``: the system
    is not positive definite, so CG's answer would not be a Newton step (add damping)."""


class AMPConfigError(TfgradError, ValueError):
    """A :mod:`tfgrad.amp` setting that cannot work (a growth factor <= 1, a backoff factor
    outside (0, 1), a non-positive scale or interval, ``min_scale > max_scale``, a target dtype
    that is not float16 or bfloat16): the message names the field and a value that works."""
