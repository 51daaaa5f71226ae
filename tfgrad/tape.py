"""Reverse mode: ``GradientTape`` records primitive applications and sweeps them backwards.

The tape is plain data (``tape.records``), and observers (``tape.observe``) see it recorded and
swept as it happens, which is what the live widgets draw. The sweep walks the records in reverse
creation order (creation order is a topological order), so it is iterative, visits nodes
deterministically, and calls one accumulate helper; broadcast axes are summed away in one place
(:func:`tfgrad.ops.unbroadcast`). Forward mode over the recorded records
(``tape.push_tangents``) is :mod:`tfgrad.replay`'s.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from . import config
from .errors import DtypeError, NotSavedError, ShapeError, TapeError
from .ops import add, astype, broadcast_to, ones, unbroadcast
from .ops._common import as_tensor, broadcast_shapes
from .primitive import Primitive, Trace, Tracer, _check_numerics, bind, full_lower
from .tensor import Tensor
from .tree import tree_flatten, tree_unflatten

__all__ = [
    "GradientTape", "TrackedTensor", "Record", "Leaf", "TapeEvent", "NotSaved", "name_scope",
]  # fmt: skip

_tape_ids = itertools.count(1)
_new = object.__new__
_scopes: list[str] = []


@contextlib.contextmanager
def name_scope(name: str) -> Iterator[None]:
    """Label the records made inside the block (``Record.scope``), e.g. by network layer.

    >>> import tfgrad as tg
    >>> with tg.GradientTape() as tape:
    ...     x = tape.watch(tg.tensor(1.0))
    ...     with tg.name_scope("layer1"):
    ...         y = tg.tanh(x * 2.0)
    >>> [r.scope for r in tape.records]
    ['layer1', 'layer1']
    """
    _scopes.append(str(name))
    try:
        yield
    finally:
        _scopes.pop()


class Record:
    """One primitive application on a tape, as plain data.

    ``inputs`` are the variable ids of the tracked inputs (``None`` for a constant), ``output``
    the id of the result, ``implementation`` what ran its forward (``"taichi"``, ``"numpy"``,
    ``"blas"``), ``scope`` the enclosing :func:`name_scope` names. After a sweep, ``adjoint``
    holds the cotangent that reached the output (``None`` if the sweep did not pass through).
    ``primitive``, ``primals`` and ``ans`` are what the rules receive: the primitive, its input
    values and its output, as tensors (possibly tracers of an enclosing transformation), or a
    :class:`NotSaved` stand-in (shape and dtype only) for a value the primitive's rules do not
    read (its ``saves`` declaration), unless the tape keeps every value (``keep_values``, or an
    observer while recording). Shapes and dtypes are read from them.
    """

    # NOTE: the tape keeps each application as a plain list (ENTRY below: one list literal per
    # recorded op is what the hot path can afford); a Record is a view of one, made when
    # someone looks (tape.records, an observer) and then kept, so it is always the same object.
    __slots__ = ("index", "_entry")

    def __init__(self, index: int, entry: list):
        self.index = index
        self._entry = entry

    op = property(lambda self: self._entry[_PRIM].name)
    inputs = property(lambda self: self._entry[_INPUTS])
    output = property(lambda self: self._entry[_OUTPUT])
    params = property(lambda self: self._entry[_PARAMS])
    implementation = property(lambda self: self._entry[_IMPLEMENTATION])
    scope = property(lambda self: self._entry[_SCOPE])
    _prim = property(lambda self: self._entry[_PRIM])
    _primals = property(lambda self: self._entry[_PRIMALS])
    _ans = property(lambda self: self._entry[_ANS])

    @property
    def _adjoint(self) -> Tensor | None:
        return self._entry[_ADJOINT]

    @_adjoint.setter
    def _adjoint(self, value: Tensor | None) -> None:
        self._entry[_ADJOINT] = value

    @property
    def primitive(self) -> Primitive:
        return self._entry[_PRIM]

    @property
    def primals(self) -> tuple[Tensor, ...]:
        return self._entry[_PRIMALS]

    @property
    def ans(self) -> Tensor:
        return self._entry[_ANS]

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(p.shape for p in self._primals)

    @property
    def input_dtypes(self) -> tuple[str, ...]:
        return tuple(p.dtype.name for p in self._primals)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._ans.shape

    @property
    def dtype(self) -> str:
        return self._ans.dtype.name

    @property
    def value(self) -> np.ndarray:
        """The output's value (a NumPy copy). Raises :class:`~tfgrad.errors.NotSavedError`
        where the tape did not keep it (see :class:`GradientTape`'s ``keep_values``)."""
        return full_lower(self._ans).numpy()

    @property
    def adjoint(self) -> np.ndarray | None:
        adjoint = self._entry[_ADJOINT]
        return None if adjoint is None else full_lower(adjoint).numpy()

    def __repr__(self) -> str:
        return (
            f"Record(index={self.index}, op={self.op!r}, inputs={self.inputs}, "
            f"output={self.output}, shape={self.shape}, dtype={self.dtype!r}, "
            f"implementation={self.implementation!r}, scope={self.scope!r})"
        )


# ENTRY: a recorded application, [prim, inputs, output, params, implementation, scope, primals,
# ans, adjoint], at these positions.
_PRIM, _INPUTS, _OUTPUT, _PARAMS, _IMPLEMENTATION, _SCOPE, _PRIMALS, _ANS, _ADJOINT = range(9)


class NotSaved:
    """What a record holds in place of a value its primitive's rules do not read (its
    ``saves`` declaration): the shape and dtype (``shape``, ``dtype``, ``ndim``, ``size``),
    and no buffer, so the tape does not keep the memory alive. Reading anything else (the
    values, an op on it) raises :class:`~tfgrad.errors.NotSavedError`: a declaration that
    leaves out a value a rule reads fails loudly, never silently."""

    __slots__ = ("shape", "dtype", "_prim", "_slot")

    def __init__(self, like: Tensor, prim: Primitive, slot: int | None):
        self.shape = like._shape
        self.dtype = like._dtype
        self._prim = prim
        self._slot = slot  # the input position; None for the output

    # what the sweep reads of a cotangent's target (see _backpropagate_quietly)
    _shape = property(lambda self: self.shape)
    _dtype = property(lambda self: self.dtype)
    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: math.prod(self.shape))

    def _error(self, what: str = "the values") -> NotSavedError:
        slot = "output" if self._slot is None else f"input {self._slot}"
        name = self._prim.name
        return NotSavedError(
            f"Read {what} of the {slot} of a recorded {name} (shape {self.shape}, "
            f"{self.dtype.name}), a value the tape did not keep: {name}'s "
            f"declaration says its rules do not read it (saves={self._prim.saves}, "
            f"saves_output={self._prim.saves_output}). If a rule raised this, the declaration "
            f"in tfgrad/ops/ is wrong: add the value to saves. To read recorded values, make "
            "the tape with GradientTape(keep_values=True)."
        )

    def _raise(self, *args: Any, **kwargs: Any) -> Any:
        raise self._error()

    numpy = item = tolist = __array__ = __float__ = __int__ = __index__ = __bool__ = _raise
    __len__ = __iter__ = __getitem__ = __neg__ = __pos__ = __abs__ = __invert__ = _raise
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _raise
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _raise
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _raise
    __hash__ = object.__hash__

    def __getattr__(self, name: str) -> Any:  # only for attributes not defined above
        raise self._error(f"the attribute {name!r}")

    def __repr__(self) -> str:
        return f"NotSaved(shape={self.shape}, dtype={self.dtype.name})"


def _residuals(prim: Primitive, primals: list, ans: Tensor) -> tuple[tuple, Any]:
    """What a record keeps of an application: the inputs (and output) the primitive's rules
    read, and :class:`NotSaved` stand-ins for the floating ones they do not."""
    saves = prim.saves
    if len(saves) == len(primals):  # every input (mul, matmul)
        kept = tuple(primals)
    else:
        kept = []
        for i, p in enumerate(primals):
            if i in saves or p._dtype.kind != "f":
                kept.append(p)
            else:
                kept.append(_stand_in(p, prim, i))
        kept = tuple(kept)
    return kept, (ans if prim.saves_output else _stand_in(ans, prim, None))


def _stand_in(like: Tensor, prim: Primitive, slot: int | None) -> NotSaved:
    stand_in = _new(NotSaved)  # NotSaved(like, prim, slot), without the __init__ call
    stand_in.shape = like._shape
    stand_in.dtype = like._dtype
    stand_in._prim = prim
    stand_in._slot = slot
    return stand_in


@dataclass(eq=False)
class Leaf:
    """A watched tensor: the start of the recorded computation."""

    variable: int
    shape: tuple[int, ...]
    dtype: str
    _value: Tensor | None = field(repr=False, default=None)
    _adjoint: Tensor | None = field(repr=False, default=None)

    @property
    def value(self) -> np.ndarray:
        return full_lower(self._value).numpy()

    @property
    def adjoint(self) -> np.ndarray | None:
        return None if self._adjoint is None else full_lower(self._adjoint).numpy()


@dataclass(frozen=True)
class TapeEvent:
    """What an observer is told.

    ``kind`` is ``"watch"`` (a new leaf), ``"record"`` (a new record), ``"sweep_start"``,
    ``"adjoint"`` (a record's or leaf's cotangent is complete, in sweep order),
    ``"accumulate"`` (``record``'s rule sent ``contribution`` to input ``slot``, whose variable
    now holds ``total``: fan-out shows as several of these for one variable) or
    ``"sweep_end"``. ``record`` / ``leaf`` point at the tape's own data.
    """

    kind: str
    tape_id: int
    record: Record | None = None
    leaf: Leaf | None = None
    slot: int | None = None
    variable: int | None = None
    contribution: Tensor | None = None
    total: Tensor | None = None


class TrackedTensor(Tracer):
    """A Tensor whose history a :class:`GradientTape` records (returned by ``tape.watch``)."""

    __slots__ = ("variable",)

    def __init__(self, tape: GradientTape, primal: Tensor, variable: int):
        # Tracer.__init__ inlined: one is made per recorded op.
        self._data = primal._data
        self._shape = primal._shape
        self._dtype = primal._dtype
        self._backend = primal._backend
        self.primal = primal
        self._trace = tape
        self.variable = variable

    def _label(self) -> str:
        return "TrackedTensor"

    def _repr_extra(self) -> str:
        return f", tape={self._trace.id}, variable={self.variable}"


class GradientTape(Trace):
    """Records operations on watched tensors, then computes gradients by a reverse sweep.

    >>> import tfgrad as tg
    >>> with tg.GradientTape() as tape:
    ...     x = tape.watch(tg.tensor(3.0))
    ...     y = x * x
    >>> tape.gradient(y, x).item()
    6.0

    A non-persistent tape allows one ``gradient`` call; ``persistent=True`` allows several.
    Tapes nest: an outer tape records the inner tape's sweep, which gives exact higher
    derivatives.

    Each record keeps only the values its primitive's rules read (its residuals, declared
    with the primitive: ``Primitive(saves=..., saves_output=...)``), as PyTorch's
    ``save_for_backward`` does: an add, a cast or a reshape keeps no value, a tanh its output,
    a matmul its two inputs. ``keep_values=True`` keeps every input and output, so that
    ``Record.value`` and ``Record.primals`` can be read (for display); so does a tape with an
    observer while it records (the live widgets, :func:`tfgrad.viz.trace_tape`).
    """

    def __init__(self, persistent: bool = False, keep_values: bool = False):
        super().__init__()
        self.id = next(_tape_ids)
        self.persistent = persistent
        self.keep_values = keep_values
        self._entries: list[list] = []  # what was recorded (see Record)
        self._records: list[Record] = []  # views of the first entries, made on demand
        self.leaves: list[Leaf] = []
        self._variables = itertools.count()
        self._observers: list[Callable[[TapeEvent], None]] = []
        self._entered = False
        self._used = False

    @property
    def records(self) -> list[Record]:
        """The recorded applications, in order (the same Record objects on every call)."""
        records, entries = self._records, self._entries
        for i in range(len(records), len(entries)):
            records.append(Record(i, entries[i]))
        return records

    def saved_bytes(self, watched: bool = True) -> int:
        """Bytes of the distinct buffers the records hold: each record keeps the inputs and
        output its rules read (its residuals), so this is the memory the tape keeps alive for
        its sweep (what PyTorch calls the tensors saved for backward). A buffer held by several
        records, or viewed by several tensors, counts once. ``watched=False`` leaves out the watched
        tensors' own buffers (the parameters), leaving the activations. Cost: one pass over
        the records' tensors (plain Python; for diagnostics and benchmarks)."""
        spans: set[tuple[int, int]] = set()  # host arrays: [first, last) byte addresses
        device: dict[int, int] = {}  # device buffers: id of the storage -> bytes
        skip_spans, skip_device = [], set()
        if not watched:
            for leaf in self.leaves:
                key = _buffer_key(leaf._value)
                if key is not None and key[0] == "host":
                    skip_spans.append(key[1:])
                elif key is not None:
                    skip_device.add(key[1])
        for entry in self._entries:
            for t in (*entry[_PRIMALS], entry[_ANS]):
                if type(t) is NotSaved:
                    continue
                key = _buffer_key(t)
                if key is None:
                    continue
                if key[0] == "host":
                    lo, hi = key[1:]
                    if not any(a <= lo and hi <= b for a, b in skip_spans):  # a view of one
                        spans.add((lo, hi))
                elif key[1] not in skip_device:
                    device[key[1]] = key[2]
        total, end = 0, -1
        for lo, hi in sorted(spans):  # the union of the host spans (views overlap)
            if hi > end:
                total += hi - max(lo, end)
                end = hi
        return total + sum(device.values())

    # ---- Recording ----
    def __enter__(self) -> GradientTape:
        if self._entered:
            raise TapeError(
                f"GradientTape #{self.id} was already entered; a tape records one `with` block. "
                "Create a new GradientTape for another computation."
            )
        self._entered = True
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.active = False

    def watch(self, x: Any) -> TrackedTensor:
        """Start recording operations on ``x``; returns the tracked tensor to compute with."""
        if not self.active:
            raise TapeError(
                f"GradientTape #{self.id} is not recording: call watch inside its `with` block "
                "(and outside stop_recording())."
            )
        x = as_tensor(x)
        if not x.dtype.is_floating:
            raise DtypeError(
                f"watch: cannot differentiate with respect to a {x.dtype.name} tensor "
                f"(shape {x.shape}); cast it first, e.g. x.astype('float64')."
            )
        if isinstance(x, TrackedTensor) and x._trace is self:
            return x
        if isinstance(x, Tracer) and x._trace.active and x._trace.level > self.level:
            raise TapeError(
                f"watch: this value is tracked by a trace opened after tape #{self.id}. Watch it "
                "on the outer tape first, then on the inner one."
            )
        leaf = Leaf(next(self._variables), x.shape, x.dtype.name, _value=x)
        self.leaves.append(leaf)
        if self._observers:
            self._emit(TapeEvent("watch", self.id, leaf=leaf))
        return TrackedTensor(self, x, leaf.variable)

    def sources(self) -> list[TrackedTensor]:
        """The watched values as tracked tensors, in watch order (to pass as ``sources`` to
        :meth:`gradient` when the computation that watched them is gone)."""
        return [TrackedTensor(self, leaf._value, leaf.variable) for leaf in self.leaves]

    @contextlib.contextmanager
    def stop_recording(self) -> Iterator[None]:
        """Compute inside this block without recording (tracked values act as constants)."""
        was_active = self.active
        self.active = False
        try:
            yield
        finally:
            self.active = was_active

    def process(self, prim: Primitive, args: list, params: dict) -> Tensor:
        primals, variables = [], []
        lower = False  # whether a primal is a value of another (lower) trace
        for a in args:
            if isinstance(a, TrackedTensor) and a._trace is self:
                a, v = a.primal, a.variable
            else:
                v = None
            if isinstance(a, Tracer):
                lower = True
            primals.append(a)
            variables.append(v)
        # Raises before anything is recorded. With no lower trace, bind would run the forward:
        # done here instead.
        if lower:
            ans = bind(prim, *primals, **params)
        else:
            ans = prim.impl(*primals, **params) if params else prim.impl(*primals)
            if config._check_numerics:
                _check_numerics(prim, primals, ans)
        if ans._dtype.kind != "f":  # not floating: nothing to differentiate
            return ans
        output = next(self._variables)
        if prim.saves is None or self.keep_values or self._observers:
            kept, kept_ans = tuple(primals), ans
        else:
            kept, kept_ans = _residuals(prim, primals, ans)
        self._entries.append(
            [
                prim,
                tuple(variables),
                output,
                params,
                (config._current or config.current_backend()).implementation(prim.op),
                "/".join(_scopes) if _scopes else "",
                kept,
                kept_ans,
                None,
            ]
        )
        if self._observers:
            self._emit(TapeEvent("record", self.id, record=self.records[-1]))
        out = _new(TrackedTensor)  # TrackedTensor(self, ans, output), without the __init__ call
        out._data = ans._data
        out._shape = ans._shape
        out._dtype = ans._dtype
        out._backend = ans._backend
        out.primal = ans
        out._trace = self
        out.variable = output
        return out

    # ---- Observing ----
    def observe(self, callback: Callable[[TapeEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` on every watch, record and sweep step; returns a function
        that stops the observation."""
        self._observers.append(callback)
        return lambda: self._observers.remove(callback) if callback in self._observers else None

    def _emit(self, event: TapeEvent) -> None:
        # Callers check self._observers first: an event is built only when someone listens.
        for callback in list(self._observers):
            callback(event)

    # ---- The reverse sweep ----
    def gradient(self, target: Any, sources: Any, output_gradients: Any = None) -> Any:
        """d target / d sources by one reverse sweep.

        ``target`` is a tensor (or a list of them, whose gradients add up); ``sources`` a tensor
        or a tuple/list/dict of them. Returns the same structure as ``sources``, with ``None``
        for a source the target does not depend on. ``output_gradients`` (same structure as
        ``target``) seeds the sweep, giving a vector-Jacobian product; by default ones.
        """
        if self._used and not self.persistent:
            raise TapeError(
                f"GradientTape #{self.id} was already used by gradient(); a non-persistent tape "
                "allows one sweep. Create it as GradientTape(persistent=True) to call gradient() "
                "several times."
            )
        targets, _ = tree_flatten(target)
        source_list, source_def = tree_flatten(sources)
        seeds = self._seeds(targets, output_gradients)
        source_vars = [self._source_variable(s, i) for i, s in enumerate(source_list)]
        previous = [e[_ADJOINT] for e in self._entries]
        previous_leaves = [leaf._adjoint for leaf in self.leaves]
        try:
            adjoints = self._sweep(targets, seeds, set(source_vars))
        except BaseException:
            # A failed sweep (a missing rule, say) leaves the tape as it was: usable again.
            for entry, adjoint in zip(self._entries, previous):
                entry[_ADJOINT] = adjoint
            for leaf, adjoint in zip(self.leaves, previous_leaves):
                leaf._adjoint = adjoint
            raise
        self._used = True
        results = [adjoints.get(v) for v in source_vars]
        return tree_unflatten(source_def, results)

    def _source_variable(self, source: Any, position: int) -> int:
        if not (isinstance(source, TrackedTensor) and source._trace is self):
            shape = getattr(source, "shape", None)
            raise TapeError(
                f"gradient: source {position} (shape {shape}) is not tracked by tape #{self.id}. "
                "tape.watch(x) returns a new, tracked tensor: write x = tape.watch(x) inside the "
                "`with` block and compute with that x."
            )
        return source.variable

    def _seeds(self, targets: list, output_gradients: Any) -> list:
        if output_gradients is None:
            grads = [None] * len(targets)
        else:
            grads, _ = tree_flatten(output_gradients)
            if len(grads) != len(targets):
                raise ShapeError(
                    f"gradient: {len(grads)} output_gradients for {len(targets)} targets; give "
                    "one per target."
                )
        seeds = []
        for i, (t, g) in enumerate(zip(targets, grads)):
            if not isinstance(t, Tensor):
                raise TapeError(f"gradient: target {i} is a {type(t).__name__}, not a Tensor.")
            if not t.dtype.is_floating:
                raise DtypeError(
                    f"gradient: target {i} has dtype {t.dtype.name}; only floating targets "
                    "have gradients."
                )
            if g is None:
                seeds.append(ones(t.shape, t.dtype))
                continue
            g = as_tensor(g)
            if g.shape != t.shape:
                raise ShapeError(
                    f"gradient: output_gradients[{i}] has shape {g.shape} but target {i} has "
                    f"shape {t.shape}; they must be equal."
                )
            seeds.append(g if g.dtype is t.dtype else astype(g, t.dtype))
        return seeds

    def _relevant(self, source_vars: set[int]) -> set[int]:
        # Variables that depend on a source: only their cotangents are worth computing.
        relevant = set(source_vars)
        add = relevant.add
        for entry in self._entries:
            for v in entry[_INPUTS]:
                if v in relevant:  # None never is
                    add(entry[_OUTPUT])
                    break
        return relevant

    def _sweep(self, targets: list, seeds: list, source_vars: set[int]) -> dict[int, Tensor]:
        relevant = self._relevant(source_vars)
        adjoints: dict[int, Tensor] = {}
        for t, seed in zip(targets, seeds):
            if isinstance(t, TrackedTensor) and t._trace is self and t.variable in relevant:
                _accumulate(adjoints, t.variable, seed)
        observed = bool(self._observers)
        if observed:
            self._emit(TapeEvent("sweep_start", self.id))
            records = self.records
        entries = self._entries
        quietly = _backpropagate_quietly
        for index in range(len(entries) - 1, -1, -1):
            entry = entries[index]
            output = entry[2]  # _OUTPUT
            if output not in adjoints:
                continue
            g = adjoints[output] if output in source_vars else adjoints.pop(output)
            entry[8] = g  # _ADJOINT
            if observed:
                self._emit(TapeEvent("adjoint", self.id, record=records[index]))
                self._backpropagate(records[index], g, relevant, adjoints)
            else:
                quietly(entry, g, relevant, adjoints)
        for leaf in self.leaves:
            if leaf.variable in adjoints:
                leaf._adjoint = adjoints[leaf.variable]
                if self._observers:
                    self._emit(TapeEvent("adjoint", self.id, leaf=leaf))
        if self._observers:
            self._emit(TapeEvent("sweep_end", self.id))
        return adjoints

    def _backpropagate(self, record: Record, g: Tensor, relevant: set, adjoints: dict) -> None:
        prim, primals, params = record._prim, record._primals, record.params
        wanted = [i for i, v in enumerate(record.inputs) if v is not None and v in relevant]
        if not wanted:
            return
        if prim.vjp_all is not None:
            all_cotangents = prim.vjp_all(g, record._ans, *primals, **params)
            cotangents = {i: all_cotangents[i] for i in wanted}
        else:
            cotangents = {i: prim.vjp_rule(i)(g, record._ans, *primals, **params) for i in wanted}
        for i, c in cotangents.items():
            if c is None:
                continue
            variable = record.inputs[i]
            c = _fit(c, primals[i])
            _accumulate(adjoints, variable, c)
            if self._observers:
                self._emit(
                    TapeEvent(
                        "accumulate",
                        self.id,
                        record=record,
                        slot=i,
                        variable=variable,
                        contribution=c,
                        total=adjoints[variable],
                    )
                )


def _backpropagate_quietly(entry: list, g: Tensor, relevant: set, adjoints: dict) -> None:
    """``GradientTape._backpropagate`` for a sweep nobody observes: the same rules, called in
    the same order with the same arguments, with the per-record work kept to the minimum."""
    prim, inputs, _, params, _, _, primals, ans, _ = entry  # ENTRY's order (see Record)
    rules = prim.vjps
    if len(inputs) == 1 and rules and prim.vjp_all is None:  # sin, sum, reshape...: one rule
        variable = inputs[0]
        if variable not in relevant:
            return
        like = primals[0]
        c = (rules[0] or prim.vjp_rule(0))(g, ans, like, **params)
        if c is None:
            return
        if not isinstance(c, Tensor) or c._shape != like._shape or c._dtype is not like._dtype:
            c = _fit(c, like)
        previous = adjoints.get(variable)
        adjoints[variable] = c if previous is None else add(previous, c)
        return
    if prim.vjp_all is not None:
        wanted = [i for i, v in enumerate(inputs) if v in relevant]
        if not wanted:
            return
        all_cotangents = prim.vjp_all(g, ans, *primals, **params)
        cotangents = [(i, all_cotangents[i]) for i in wanted]
    else:
        # Every rule runs before any cotangent is accumulated, as in the observed sweep.
        cotangents = []
        for i, v in enumerate(inputs):
            if v in relevant:
                rule = rules[i] if rules and i < len(rules) and rules[i] else prim.vjp_rule(i)
                c = rule(g, ans, *primals, **params) if params else rule(g, ans, *primals)
                cotangents.append((i, c))
    for i, c in cotangents:
        if c is None:
            continue
        like = primals[i]
        if not isinstance(c, Tensor) or c._shape != like._shape or c._dtype is not like._dtype:
            c = _fit(c, like)
        variable = inputs[i]
        previous = adjoints.get(variable)
        adjoints[variable] = c if previous is None else add(previous, c)


def _fit(c: Tensor, like: Tensor) -> Tensor:
    """A rule's cotangent brought to its input's shape and dtype (the one place that sums
    broadcast axes away)."""
    c = as_tensor(c)
    if c.shape != like.shape:
        full_shape = broadcast_shapes("gradient", c.shape, like.shape)
        if c.shape != full_shape:
            c = broadcast_to(c, full_shape)
        c = unbroadcast(c, like.shape)
    return c if c.dtype is like.dtype else astype(c, like.dtype)


def _accumulate(adjoints: dict[int, Tensor], variable: int, c: Tensor) -> None:
    # Fan-out: a value used twice receives the sum of both cotangents.
    adjoints[variable] = add(adjoints[variable], c) if variable in adjoints else c


def _buffer_key(t: Any) -> tuple | None:
    """Where a tensor's buffer lies: ``("host", first, last)`` byte addresses of a NumPy array
    (``np.byte_bounds``, which NumPy 1.24 keeps elsewhere), ``("device", id, bytes)`` of a
    device buffer's storage, None for a value without one (a tracer of a transformation)."""
    data = getattr(t, "_data", None)
    if isinstance(data, np.ndarray):
        start = data.__array_interface__["data"][0]
        if data.size == 0:
            return ("host", start, start)
        lo = hi = start
        for n, stride in zip(data.shape, data.strides):
            if stride < 0:
                lo += (n - 1) * stride
            else:
                hi += (n - 1) * stride
        return ("host", lo, hi + data.itemsize)
    storage = getattr(data, "array", None)
    if storage is None:
        return None
    return ("device", id(storage), data.size * data.dtype.itemsize)
