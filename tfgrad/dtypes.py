"""The seven dtypes and NumPy's promotion rules between them.

A :class:`DType` wraps the NumPy dtype that stores it (``bfloat16`` comes from ml_dtypes,
since NumPy has none). Promotion follows NumPy 2 (NEP 50): ``int32 + float32 -> float64``,
``float16 + bfloat16 -> float32``, and Python scalars are *weak*: ``float32_tensor * 0.5`` stays
float32, ``int_tensor * 0.5`` becomes float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

from .errors import DtypeError

__all__ = [
    "DType",
    "bool_",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "as_dtype",
    "promote",
    "result_dtype",
]


@dataclass(frozen=True, eq=False)
class DType:
    """A tfgrad dtype: its name, its kind (``"b"``, ``"i"`` or ``"f"``) and storage."""

    name: str
    kind: str
    numpy: np.dtype
    rank: int  # position within its kind: wider types rank higher

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_floating(self) -> bool:
        return self.kind == "f"

    def __repr__(self) -> str:
        return f"tfgrad.{self.name}"

    def __reduce__(self):
        return (as_dtype, (self.name,))


bool_ = DType("bool", "b", np.dtype(np.bool_), 0)
int32 = DType("int32", "i", np.dtype(np.int32), 0)
int64 = DType("int64", "i", np.dtype(np.int64), 1)
float16 = DType("float16", "f", np.dtype(np.float16), 0)
bfloat16 = DType("bfloat16", "f", np.dtype(ml_dtypes.bfloat16), 0)
float32 = DType("float32", "f", np.dtype(np.float32), 1)
float64 = DType("float64", "f", np.dtype(np.float64), 2)

ALL = (bool_, int32, int64, float16, bfloat16, float32, float64)
FLOATING = (float16, bfloat16, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME["bool_"] = bool_
_BY_NUMPY = {d.numpy: d for d in ALL}


def as_dtype(dtype) -> DType:
    """Turn a DType, a name (``"float32"``) or a NumPy dtype into a :class:`DType`."""
    if isinstance(dtype, DType):
        return dtype
    if dtype is bool:
        return bool_
    if dtype is int:
        return int64
    if dtype is float:
        return float64
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype]
    try:
        found = _BY_NUMPY.get(np.dtype(dtype))
    except TypeError:
        found = None
    if found is None:
        names = ", ".join(d.name for d in ALL)
        raise DtypeError(f"tfgrad has no dtype {dtype!r}; use one of: {names}.")
    return found


def promote(a: DType, b: DType) -> DType:
    """The dtype NumPy gives ``a op b`` for two arrays (no weak scalars)."""
    if a is b:
        return a
    if a.kind == "b":
        return b
    if b.kind == "b":
        return a
    if a.kind == "i" and b.kind == "i":
        return a if a.rank >= b.rank else b
    if a.kind == "f" and b.kind == "f":
        if a.rank == b.rank:  # float16 with bfloat16: neither holds the other
            return float32
        return a if a.rank > b.rank else b
    # An integer with a float: NumPy picks a float that holds every int32/int64 value.
    return float64


def _weak_kind(value) -> str | None:
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    return None


def result_dtype(*dtypes_or_scalars) -> DType:
    """Promote strong dtypes and weak Python scalars together, as NumPy 2 does."""
    # NumPy scalars (np.float32(1), np.int64(2)) carry their dtype: strong, as in NumPy 2.
    dtypes_or_scalars = [
        as_dtype(s.dtype) if isinstance(s, np.generic) else s for s in dtypes_or_scalars
    ]
    strong = [d for d in dtypes_or_scalars if isinstance(d, DType)]
    weak = [_weak_kind(s) for s in dtypes_or_scalars if not isinstance(s, DType)]
    if strong:
        out = strong[0]
        for d in strong[1:]:
            out = promote(out, d)
    else:  # only Python scalars: the widest kind with its default type
        order = {"b": bool_, "i": int64, "f": float64}
        kinds = [k for k in weak if k is not None]
        return order[max(kinds, key="bif".index)] if kinds else float64
    for kind in weak:
        if kind is None or "bif".index(kind) <= "bif".index(out.kind):
            continue
        out = int64 if kind == "i" else float64
    return out
