"""Shape and movement primitives (reshape, transpose, slice, concatenate, gather and scatter),
their rules, and NumPy-style indexing built on them. (``broadcast_to`` lives beside ``sum``, its
transpose, in :mod:`.reduce`.)

These primitives name axes, shapes or indices, so each declares how forward mode runs on a batch
of tangents (``def_batched_jvp``): the tangents carry a leading batch axis, which the rule
shifts the axes past. All of them are linear, so their JVP comes from that flag.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..backends.base import INDEXING, MOVEMENT
from ..errors import ShapeError
from ..primitive import Primitive, Tracer, bind
from ..tensor import Tensor, tensor
from ._common import as_tensor, install_stack, normalize_axes, promote_args_nobroadcast, shape_of
from .creation import zeros
from .elementwise import add, add_p

__all__ = [
    "reshape", "transpose", "expand_dims", "squeeze", "concatenate", "stack", "split", "take",
    "scatter_add", "getitem",
]  # fmt: skip


# ---- Reshape ----
def reshape_vjp(g, ans, x, shape):
    return bind(reshape_p, g, shape=x.shape)


def reshape_batched_jvp(ts, ans, x, shape, batch):
    return bind(reshape_p, ts[0], shape=(batch,) + tuple(shape))


reshape_p = Primitive("reshape", 1, family=MOVEMENT, linear=True)
reshape_p.defvjp(reshape_vjp)
reshape_p.def_batched_jvp(reshape_batched_jvp)


def reshape(x: Any, shape: int | Sequence[int]) -> Tensor:
    """The same elements in a new shape (one entry may be -1), as ``numpy.reshape``."""
    x = as_tensor(x)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    if shape.count(-1) > 1 or any(s < -1 for s in shape):
        raise ShapeError(f"reshape: invalid target shape {shape} for a tensor of shape {x.shape}.")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or x.size % known:
            raise ShapeError(f"reshape: cannot infer -1 in {shape} for {x.size} elements.")
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    if math.prod(shape) != x.size:
        raise ShapeError(
            f"reshape: cannot reshape shape {x.shape} ({x.size} elements) into {shape} "
            f"({math.prod(shape)} elements); the sizes must match."
        )
    return x if shape == x.shape else bind(reshape_p, x, shape=shape)


# ---- Transpose ----
def transpose_vjp(g, ans, x, axes):
    return bind(transpose_p, g, axes=tuple(int(i) for i in np.argsort(axes)))


def transpose_batched_jvp(ts, ans, x, axes, batch):
    return bind(transpose_p, ts[0], axes=(0,) + tuple(a + 1 for a in axes))


transpose_p = Primitive("transpose", 1, family=MOVEMENT, linear=True)
transpose_p.defvjp(transpose_vjp)
transpose_p.def_batched_jvp(transpose_batched_jvp)


def transpose(x: Any, axes: Sequence[int] | None = None) -> Tensor:
    """Permute axes (reverse them by default), as ``numpy.transpose``."""
    x = as_tensor(x)
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(int(a) % max(x.ndim, 1) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(
            f"transpose: axes {axes} are not a permutation of range({x.ndim}) for shape {x.shape}."
        )
    return x if axes == tuple(range(x.ndim)) else bind(transpose_p, x, axes=axes)


def expand_dims(x: Any, axis: int | Sequence[int]) -> Tensor:
    """Insert size-1 axes at ``axis``, as ``numpy.expand_dims``."""
    x = as_tensor(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = x.ndim + len(axes)
    axes = normalize_axes("expand_dims", axes, ndim)
    it = iter(x.shape)
    return reshape(x, tuple(1 if i in axes else next(it) for i in range(ndim)))


def squeeze(x: Any, axis: int | Sequence[int] | None = None) -> Tensor:
    """Drop size-1 axes (all of them, or those in ``axis``)."""
    x = as_tensor(x)
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axes("squeeze", axis, x.ndim)
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ShapeError(f"squeeze: axis {bad} of shape {x.shape} is not of size 1.")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


# ---- Slice (basic indexing with steps) ----
def slice_vjp(g, ans, x, index):
    # Place g back at the sliced positions: one scatter_add per sliced axis.
    out = g
    for axis in reversed(range(x.ndim)):
        start, stop, step = index[axis]
        positions = range(start, stop, step)
        if len(positions) == x.shape[axis] and step == 1:
            continue
        dest_shape = out.shape[:axis] + (x.shape[axis],) + out.shape[axis + 1 :]
        if step == 1:
            # A run of positions: g between two blocks of zeros, a concatenation (cheaper than
            # a scatter kernel); + 0.0 is the scatter's 0 + g, so -0.0 becomes 0.0 as there.
            before, after = start, x.shape[axis] - stop
            parts = [bind(add_p, out, tensor(0.0, out.dtype))]
            block = dest_shape[:axis], dest_shape[axis + 1 :]
            if before:
                parts.insert(0, zeros(block[0] + (before,) + block[1], g.dtype))
            if after:
                parts.append(zeros(block[0] + (after,) + block[1], g.dtype))
            out = bind(concatenate_p, *parts, axis=axis) if len(parts) > 1 else parts[0]
            continue
        idx = as_tensor(np.asarray(positions, dtype=np.int64))
        out = bind(scatter_add_p, zeros(dest_shape, g.dtype), idx, out, axis=axis)
    return out


def slice_batched_jvp(ts, ans, x, index, batch):
    return bind(slice_p, ts[0], index=((0, batch, 1),) + tuple(index))


slice_p = Primitive("slice", 1, family=MOVEMENT, linear=True)
slice_p.defvjp(slice_vjp)
slice_p.def_batched_jvp(slice_batched_jvp)


# ---- Concatenate ----
def concatenate_vjp(g, ans, *xs, axis):
    out, start = [], 0
    for x in xs:
        stop = start + x.shape[axis]
        index = tuple((start, stop, 1) if i == axis else (0, n, 1) for i, n in enumerate(g.shape))
        out.append(bind(slice_p, g, index=index))
        start = stop
    return tuple(out)


def concatenate_batched_jvp(ts, ans, *xs, axis, batch):
    parts = [t if t is not None else zeros((batch,) + x.shape, x.dtype) for t, x in zip(ts, xs)]
    return bind(concatenate_p, *parts, axis=axis + 1)


concatenate_p = Primitive("concatenate", None, family=MOVEMENT, linear=True)
concatenate_p.vjp_all = concatenate_vjp
concatenate_p.def_batched_jvp(concatenate_batched_jvp)


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis, as ``numpy.concatenate``."""
    xs = [as_tensor(t) for t in tensors]  # shapes are checked before any cast is recorded
    if not xs or xs[0].ndim == 0:
        raise ShapeError(
            "concatenate: needs at least one tensor, and zero-dimensional tensors cannot be "
            "concatenated; stack them."
        )
    (axis,) = normalize_axes("concatenate", axis, xs[0].ndim)
    for x in xs[1:]:
        if x.ndim != xs[0].ndim or any(
            a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != axis
        ):
            shapes = ", ".join(str(t.shape) for t in xs)
            raise ShapeError(
                f"concatenate: shapes {shapes} differ outside axis {axis}; they must match there."
            )
    xs = promote_args_nobroadcast("concatenate", xs)
    return xs[0] if len(xs) == 1 else bind(concatenate_p, *xs, axis=axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis, as ``numpy.stack``."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ShapeError("stack: needs at least one tensor.")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all shapes must be equal, got {sorted(shapes)}.")
    return concatenate([expand_dims(t, axis) for t in tensors], axis)


install_stack(stack)  # nested lists of tensors, wherever an op takes an array-like


def split(x: Any, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[Tensor]:
    """Split into pieces along ``axis``, as ``numpy.split``."""
    x = as_tensor(x)
    (axis,) = normalize_axes("split", axis, x.ndim)
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(
                f"split: axis {axis} of size {n} cannot be split into {k} equal sections; "
                "pass split points instead."
            )
        bounds = [i * (n // k) for i in range(k + 1)]
    else:
        bounds = [0] + [min(int(i), n) for i in indices_or_sections] + [n]
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        index = tuple((start, max(start, stop), 1) if i == axis else (0, m, 1)
                      for i, m in enumerate(x.shape))  # fmt: skip
        pieces.append(bind(slice_p, x, index=index))
    return pieces


# ---- Gather and scatter ----
def take_vjp(g, ans, x, idx, axis):
    return bind(scatter_add_p, zeros(x.shape, g.dtype), idx, g, axis=axis)


def take_batched_jvp(ts, ans, x, idx, axis, batch):
    return bind(take_p, ts[0], idx, axis=axis + 1)


take_p = Primitive("take", 2, family=INDEXING, linear=True)  # linear in x; idx is an index
take_p.defvjp(take_vjp, None)
take_p.def_batched_jvp(take_batched_jvp)


def scatter_add_vjp_operand(g, ans, operand, idx, updates, axis):
    return g


def scatter_add_vjp_updates(g, ans, operand, idx, updates, axis):
    return bind(take_p, g, idx, axis=axis)


def scatter_add_jvp_updates(t, ans, operand, idx, updates, axis):
    return bind(scatter_add_p, zeros(operand.shape, t.dtype), idx, t, axis=axis)


def scatter_add_batched_jvp(ts, ans, operand, idx, updates, axis, batch):
    out = ts[0]
    if ts[2] is not None:
        term = _scatter_into_zeros(ts[2], idx, operand.shape, axis, batch)
        out = term if out is None else add(out, term)
    return out


def _scatter_into_zeros(t, idx, shape, axis, batch):
    # scatter_add(zeros((B, *shape)), idx, t, axis + 1). Where idx is a run of consecutive
    # positions (what the derivative of a slice scatters), that is t between two blocks of
    # zeros: a concatenation, cheaper than a scatter kernel or NumPy's add.at. t + 0.0 is what
    # the scatter computes (0.0 + t), so -0.0 becomes 0.0 there too.
    start = _run_start(idx)
    if start is None:
        return bind(scatter_add_p, zeros((batch,) + shape, t._dtype), idx, t, axis=axis + 1)
    t = bind(add_p, t, tensor(0.0, t._dtype))
    parts, after = [], shape[axis] - start - idx.shape[0]
    for size in (start, None, after):
        if size is None:
            parts.append(t)
        elif size:
            parts.append(zeros((batch,) + shape[:axis] + (size,) + shape[axis + 1 :], t._dtype))
    return t if len(parts) == 1 else bind(concatenate_p, *parts, axis=axis + 1)


def _run_start(idx: Tensor) -> int | None:
    """``a`` if the indices are ``a, a + 1, ..., a + n - 1`` (n >= 1), else None. A tracer's
    values are not read (a staged program must not depend on them)."""
    if isinstance(idx, Tracer) or len(idx.shape) != 1 or not idx.shape[0]:
        return None
    positions = idx.numpy()
    start = int(positions[0])
    if start < 0:  # a negative index counts from the end: not a plain run
        return None
    if int(positions[-1]) - start != len(positions) - 1:
        return None
    return start if np.array_equal(positions, np.arange(start, start + len(positions))) else None


# Linear in (operand, updates) together (idx is an index). NOTE: explicit JVP rules all the same,
# one per input: the linear rule would scatter the updates' tangent into the operand's, an order
# of additions the batched rule (which must agree bit for bit) does not follow, and materialise
# a zero for an input without a tangent.
scatter_add_p = Primitive("scatter_add", 3, family=INDEXING, linear=True)
scatter_add_p.defvjp(scatter_add_vjp_operand, None, scatter_add_vjp_updates)
scatter_add_p.defjvp(scatter_add_vjp_operand, None, scatter_add_jvp_updates)
scatter_add_p.def_batched_jvp(scatter_add_batched_jvp)


def _index_tensor(op: str, indices: Any, size: int) -> Tensor:
    idx = np.asarray(indices.numpy() if isinstance(indices, Tensor) else indices)
    if idx.size == 0 and isinstance(indices, list):  # x[[]]: NumPy reads [] as no positions
        idx = idx.astype(np.int64)
    if idx.dtype.kind not in "iu":
        raise ShapeError(f"{op}: indices must be integers, got dtype {idx.dtype}.")
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise ShapeError(
            f"{op}: index out of range for an axis of size {size} (got values from "
            f"{idx.min()} to {idx.max()}); use indices in [{-size}, {size - 1}]."
        )
    return as_tensor(np.where(idx < 0, idx + size, idx).astype(np.int64))


def take(x: Any, indices: Any, axis: int = 0) -> Tensor:
    """Elements of ``x`` at integer ``indices`` along ``axis`` (negative indices count back)."""
    x = as_tensor(x)
    (axis,) = normalize_axes("take", axis, x.ndim)
    return bind(take_p, x, _index_tensor("take", indices, x.shape[axis]), axis=axis)


def scatter_add(x: Any, indices: Any, updates: Any, axis: int = 0) -> Tensor:
    """A copy of ``x`` with ``updates`` added at ``indices`` along ``axis`` (repeats add up).

    ``updates`` has ``x``'s shape with axis ``axis`` replaced by ``indices``' shape.
    """
    # Shapes are checked before promotion, so a failed call records no cast on a tape.
    x_shape, u_shape = shape_of(x), shape_of(updates)
    (axis,) = normalize_axes("scatter_add", axis, len(x_shape))
    idx = _index_tensor("scatter_add", indices, x_shape[axis])
    expected = x_shape[:axis] + idx.shape + x_shape[axis + 1 :]
    if u_shape != expected:
        raise ShapeError(
            f"scatter_add: updates have shape {u_shape}, but x of shape {x_shape} with "
            f"indices of shape {idx.shape} along axis {axis} needs {expected}."
        )
    x, updates = promote_args_nobroadcast("scatter_add", [x, updates])
    return bind(scatter_add_p, x, idx, updates, axis=axis)


# ---- NumPy-style indexing ----
def getitem(x: Tensor, key: Any) -> Tensor:
    """``x[key]`` for ints, slices, ``None``, ``...`` and one integer array (via ``take``)."""
    key = key if isinstance(key, tuple) else (key,)
    arrays = [k for k in key if _is_index_array(k)]
    if any(isinstance(k, (bool, np.bool_)) or _is_bool_array(k) for k in key):
        raise ShapeError(
            f"getitem: boolean masks are not supported as indices of a tensor of shape {x.shape} "
            "(the result's shape would depend on the data); use tfgrad.where(mask, x, 0) or "
            "take with the mask's integer positions."
        )
    if len(arrays) > 1:
        raise ShapeError(
            f"getitem: only one integer-array index per indexing expression is supported, got "
            f"{len(arrays)} for a tensor of shape {x.shape}; index in two steps, e.g. "
            "x[rows][:, cols], or use tfgrad.take."
        )
    # NumPy: ints count as advanced indices beside an array; apart, the array's axes go first
    advanced = [i for i, k in enumerate(key) if not (k is None or k is Ellipsis
                                                     or isinstance(k, slice))]  # fmt: skip
    array_first = bool(arrays) and advanced != list(range(advanced[0], advanced[-1] + 1))
    n_ellipsis = sum(k is Ellipsis for k in key)
    if n_ellipsis > 1:
        raise ShapeError("An index can only have a single ellipsis ('...').")
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if used > x.ndim:
        raise ShapeError(
            f"getitem: {used} indices for a tensor of shape {x.shape} ({x.ndim} dimensions); "
            "use at most one index per dimension."
        )
    if n_ellipsis:
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (x.ndim - used) + key[i + 1 :]
    else:
        key = key + (slice(None),) * (x.ndim - used)

    index, final_shape, array_axis, array_key = [], [], None, None
    axis = 0
    for k in key:
        if k is None:
            final_shape.append(1)
            continue
        n = x.shape[axis]
        if isinstance(k, slice):
            triple = k.indices(n)
            if not range(*triple):  # empty: k.indices may give a start of -1, read as "last"
                triple = (0, 0, 1)
            index.append(triple)
            final_shape.append(len(range(*triple)))
        elif _is_index_array(k):
            index.append((0, n, 1))
            array_axis, array_key = len(final_shape), _index_tensor("getitem", k, n)
            final_shape.append(n)  # replaced by the take below
        else:
            i = int(k)
            if not -n <= i < n:
                raise ShapeError(
                    f"getitem: index {i} is out of range for axis {axis} of size {n} (tensor "
                    f"shape {x.shape}); use an index in [{-n}, {n - 1}]."
                )
            i %= n
            index.append((i, i + 1, 1))
        axis += 1
    index = tuple(index)
    out = x
    if any(triple != (0, n, 1) for triple, n in zip(index, x.shape)):
        out = bind(slice_p, x, index=index)
    out = reshape(out, tuple(final_shape))
    if array_axis is not None:
        out = take(out, array_key, axis=array_axis)
        if array_first and array_axis:
            taken = tuple(range(array_axis, array_axis + array_key.ndim))
            rest = tuple(i for i in range(out.ndim) if i not in taken)
            out = transpose(out, taken + rest)
    return out


def _is_index_array(k: Any) -> bool:
    if isinstance(k, Tensor):
        return k.dtype.kind == "i"
    if isinstance(k, (list, np.ndarray)):
        return np.asarray(k).dtype.kind in "iu" or (isinstance(k, list) and not k)
    return False


def _is_bool_array(k: Any) -> bool:
    if isinstance(k, Tensor):
        return k.dtype.kind == "b"
    if isinstance(k, (list, np.ndarray)):
        return np.asarray(k).dtype == np.bool_
    return False
