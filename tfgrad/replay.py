"""Forward mode replayed over a recorded tape: :func:`push_tangents`.

A :class:`~tfgrad.GradientTape` records each primitive application with the values its rules
need; this module carries tangents forward through those records with the JVP rules, which is
what ``jacfwd`` and ``hessian`` do with all basis tangents at once (a batch), and what the tape
widget shows beside the reverse sweep. It is installed as :meth:`GradientTape.push_tangents`
(the tape itself is reverse mode only).
"""

from __future__ import annotations

from typing import Any

from .batching import batched_jvp
from .errors import ShapeError
from .forward import output_tangent
from .ops import broadcast_to
from .ops._common import as_tensor
from .tape import GradientTape
from .tensor import Tensor

__all__ = ["push_tangents"]


def push_tangents(
    tape: GradientTape, tangents: dict[int, Any], batch: int | None = None, keep: Any = None
) -> dict[int, Tensor]:
    """Carry tangents forward through the recorded records with the JVP rules.

    ``tangents`` maps watched variables (``leaf.variable``) to tangent tensors; returns the
    tangent of every variable that depends on them. This is forward mode replayed on the
    tape, for showing next to the reverse sweep; :func:`tfgrad.jvp` is forward mode
    without any tape.

    With ``batch=B``, every tangent carries a leading batch axis (shape ``(B, *shape)``)
    and all B are pushed in one pass (:mod:`tfgrad.batching`): what ``jacfwd`` uses to
    push every basis tangent at once. ``keep`` (variables) returns only their tangents; in
    a batched push every other tangent is let go once no later record reads it, so that a
    large batch holds few tangents at a time; records on no path to them are skipped.

    >>> import tfgrad as tg
    >>> with tg.GradientTape() as tape:
    ...     x = tape.watch(tg.tensor([1.0, 2.0]))
    ...     y = x * x
    >>> tape.push_tangents({x.variable: tg.tensor([1.0, 0.0])})[y.variable].numpy()
    array([2., 0.])
    """
    if batch is not None:
        return _push_batched(tape, tangents, int(batch), None if keep is None else set(keep))
    out = {v: as_tensor(t) for v, t in tangents.items()}
    for record in tape.records:
        inputs = record.inputs
        if not any(v in out for v in inputs if v is not None):
            continue
        ts = [out.get(v) if v is not None else None for v in inputs]
        tangent = output_tangent(record.primitive, ts, record.ans, record.primals, record.params)
        if tangent is not None:
            tangent = as_tensor(tangent)
            if tangent.shape != record.shape:
                tangent = broadcast_to(tangent, record.shape)
            out[record.output] = tangent
    if keep is not None:
        keep = set(keep)
        out = {v: t for v, t in out.items() if v in keep}
    return out


def _push_batched(
    tape: GradientTape, tangents: dict[int, Any], batch: int, keep: set | None
) -> dict:
    shapes = {leaf.variable: leaf.shape for leaf in tape.leaves}
    shapes.update((r.output, r.shape) for r in tape.records)
    out = {}
    for v, t in tangents.items():
        t = as_tensor(t)
        if v in shapes and t.shape != (batch,) + shapes[v]:
            raise ShapeError(
                f"push_tangents: the tangent of variable {v} has shape {t.shape}; with "
                f"batch={batch} it must be {(batch,) + shapes[v]} (the batch axis first)."
            )
        out[v] = t
    records = tape.records
    if keep is not None:
        records = _live(records, keep)
    last_read = {}  # with keep: variable -> index of the last record that reads it
    if keep is not None:
        for i, record in enumerate(records):
            last_read.update((v, i) for v in record.inputs if v is not None)
    for i, record in enumerate(records):
        inputs = record.inputs
        if not any(v in out for v in inputs):
            continue
        ts = [out.get(v) if v is not None else None for v in inputs]
        tangent = batched_jvp(
            record.primitive, ts, record.ans, record.primals, record.params, batch
        )
        if tangent is not None and (
            keep is None or record.output in keep or record.output in last_read
        ):
            out[record.output] = tangent
        if keep is not None:
            for v in inputs:
                if v is not None and last_read[v] == i and v not in keep:
                    out.pop(v, None)
    return out if keep is None else {v: t for v, t in out.items() if v in keep}


def _live(records: list, keep: set) -> list:
    """The records on a path to a variable in ``keep``: the others' tangents are never read
    (in ``hessian``, the tangents of f's own value and of the terms only it reads), so a
    batched push skips them, each a ``(B, *shape)`` op saved."""
    needed, live = set(keep), []
    for record in reversed(records):
        if record.output in needed:
            needed.update(v for v in record.inputs if v is not None)
            live.append(record)
    live.reverse()
    return live


GradientTape.push_tangents = push_tangents
