"""The Taichi backend's kernel tables, one per family (see :mod:`tfgrad.backends.base`).

Each family module holds its kernels, their host adapters and its table; an op is one entry in
its family's table: ``entry(backend, op, *bufs, **params)`` runs it.
"""

from __future__ import annotations

from .. import base
from . import conv, creation, elementwise, linalg, movement, reduce

__all__ = ["TABLES", "KERNELS", "family_of"]

TABLES = {
    base.ELEMENTWISE: elementwise.ELEMENTWISE,
    base.TRANSCENDENTAL: elementwise.TRANSCENDENTAL,
    base.COMPARISON: elementwise.COMPARISON,
    base.CAST: elementwise.CAST,
    base.REDUCTION: reduce.REDUCTION,
    base.MOVEMENT: movement.MOVEMENT,
    base.INDEXING: movement.INDEXING,
    base.LINALG: {**linalg.LINALG, **conv.LINALG},
    base.CREATION: creation.CREATION,
}
KERNELS = base.KernelTables("taichi", TABLES, elementwise.scalar_entry)


def family_of(op: base.OpInfo | str) -> str:
    """The family of an op, from its :class:`~tfgrad.backends.base.OpInfo` or the table that
    holds its name."""
    return op.family if type(op) is base.OpInfo else KERNELS.find(op)[0].family
