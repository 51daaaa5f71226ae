"""``autocast``: each op's compute dtype chosen by a list, as ``torch.autocast`` does.

Inside ``with autocast("float16"):``

- an op on the *allow* list (:data:`AUTOCAST_ALLOW`: matmul (``@``), dot, and the
  convolutions and einsum where tfgrad has them) has its float32, float16 and bfloat16 inputs
  cast to the low-precision dtype, before the front end promotes them: it reads 16-bit
  operands and, as every tfgrad kernel does for halves, multiplies and accumulates in float32,
  rounding once to the 16-bit output;
- an op on the *deny* list (:data:`AUTOCAST_DENY`: exp, log, sum, softmax, mean, var, norms and
  losses, ...) has its float16 and bfloat16 inputs cast up to float32, where their range and
  accumulation need it;
- every other op follows its inputs (NumPy's promotion, as outside the block).

float64 tensors are never cast (nor integers and bools), as in PyTorch. The casts are ordinary
``cast`` ops, bound before any trace sees the op: a tape records them and differentiates through
them, so the gradient reaching a float32 leaf (a master weight) is float32. A cast costs one
kernel per input per op; nothing is cached between ops (PyTorch caches the cast of a leaf
weight within a block: here two uses of a weight cast it twice).

The switch is the core's one cast hook (``tfgrad.config.set_cast_policy``), which ``bind``
consults for every primitive, ``to_float`` for every composite (softmax, mean, var, ..., which
are not primitives) and matmul's promotion before it promotes. The hook is installed while any
thread is inside an autocast block and removed after the last one leaves; which lists apply is
kept per thread, so a block in one thread changes no op of another (as PyTorch's thread-local
autocast state). Leaving a block restores the previous state, also when the block raises;
blocks nest (the innermost wins, and ``autocast(enabled=False)`` switches casting off inside).
A block must be left in the thread that entered it (a generator suspended inside one keeps it
open). ``tfgrad.jit`` keys its compiled programs on the block's lists (``config.cast_state``):
a function traced inside a block is traced again outside it.

Run the backward sweep (``tape.gradient``) after the block, as PyTorch advises: the rules then
run in the dtypes the forward chose.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from .. import config
from ..dtypes import DType, bfloat16, float16, float32
from ..errors import AMPConfigError
from ..ops import astype
from ..tensor import Tensor

__all__ = ["autocast", "autocast_dtype", "AUTOCAST_ALLOW", "AUTOCAST_DENY", "TARGET_DTYPES"]

# By name, so that an op another module adds later (conv2d) is covered once it exists.
AUTOCAST_ALLOW = ("matmul", "dot", "conv1d", "conv2d", "conv3d", "einsum")
AUTOCAST_DENY = (
    # primitives
    "exp", "expm1", "log", "log1p", "pow", "tan", "sum", "prod", "cumsum", "cumprod",
    # composites (their first step is to_float, which the hook sees by this name)
    "softmax", "log_softmax", "logsumexp", "mean", "var", "softplus",
    # norms and losses: applied once a primitive or a composite (to_float) has these names
    "norm", "layer_norm", "group_norm", "batch_norm", "cross_entropy", "nll_loss", "mse_loss",
)  # fmt: skip
TARGET_DTYPES = {"float16": float16, "bfloat16": bfloat16}
_CAST = (float16, bfloat16, float32)  # float64 (and integers, bools) are never cast


def target_dtype(dtype: Any, where: str) -> DType:
    """float16 or bfloat16 from a name or a DType, else an :class:`AMPConfigError`."""
    name = dtype.name if isinstance(dtype, DType) else dtype
    if name not in TARGET_DTYPES:
        raise AMPConfigError(
            f"{where}: the low-precision dtype must be 'float16' or 'bfloat16', got {dtype!r}; "
            "pick one of those (bfloat16 keeps float32's range, float16 keeps more digits)."
        )
    return TARGET_DTYPES[name]


def op_names(names: Iterable[str] | None, default: tuple[str, ...], where: str) -> tuple:
    """A list of op names as a tuple of strings (the default for None)."""
    if names is None:
        return default
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    for n in names:
        if not isinstance(n, str):
            raise AMPConfigError(
                f"{where}: op lists hold op names (strings such as 'matmul'), got {n!r}."
            )
    return names


def check_lists(allow: tuple, deny: tuple, where: str) -> None:
    both = sorted(set(allow) & set(deny))
    if both:
        raise AMPConfigError(
            f"{where}: {', '.join(both)} on both the allow and the deny list; an op computes in "
            "one dtype, so name it on one list only."
        )


@dataclass(frozen=True, eq=False)
class _Mode:
    """One autocast block: the dtype each listed op computes in (empty when disabled), and
    the same as a hashable key (what ``tfgrad.jit`` caches its programs by)."""

    dtype: DType
    enabled: bool
    targets: dict
    key: tuple | None


_local = threading.local()  # .stack: the blocks this thread is in, innermost last
_lock = threading.Lock()
_blocks = 0  # blocks open in all threads: the hook is installed while this is positive
_previous_policy: Any = None


class _CastHook:
    """The core's cast hook while some thread is in a block: ``hook(name, args)`` returns
    ``args`` with the inputs of a listed op cast to its compute dtype; ``hook.state()`` the
    innermost block's key in this thread (None outside one)."""

    def __call__(self, name: str, args: tuple) -> tuple:
        stack = getattr(_local, "stack", None)
        if not stack:  # another thread is in a block, this one is not
            return args
        target = stack[-1].targets.get(name)
        if target is None:
            return args
        out = None
        for i, a in enumerate(args):
            if isinstance(a, Tensor) and a._dtype in _CAST and a._dtype is not target:
                if out is None:
                    out = list(args)
                out[i] = astype(a, target)  # a cast op: recorded, and the hook ignores "cast"
        return args if out is None else tuple(out)

    def state(self) -> tuple | None:
        stack = getattr(_local, "stack", None)
        return stack[-1].key if stack else None


_hook = _CastHook()


def _enter(mode: _Mode) -> None:
    global _blocks, _previous_policy
    with _lock:
        if _blocks == 0:
            _previous_policy = config.set_cast_policy(_hook)
        _blocks += 1
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(mode)


def _exit() -> None:
    global _blocks
    _local.stack.pop()
    with _lock:
        _blocks -= 1
        if _blocks == 0:
            config.set_cast_policy(_previous_policy)


@contextlib.contextmanager
def autocast(
    dtype: Any = "float16",
    enabled: bool = True,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
) -> Iterator[None]:
    """Compute the ops of the ``with`` block in mixed precision (see the module's docstring).

    ``dtype`` is ``"float16"`` or ``"bfloat16"`` (or the DType); ``allow`` and ``deny``
    replace :data:`AUTOCAST_ALLOW` and :data:`AUTOCAST_DENY` (op names); ``enabled=False``
    switches casting off inside an enclosing block. Usable as a decorator too.

    >>> import tfgrad as tg
    >>> from tfgrad.amp import autocast
    >>> x, w = tg.ones((2, 3), "float32"), tg.ones((3, 4), "float32")
    >>> with autocast("bfloat16"):
    ...     y = x @ w                     # allow list: bfloat16 in, float32 accumulation
    ...     p = tg.softmax(y, axis=-1)    # deny list: float32
    >>> y.dtype, p.dtype, (x @ w).dtype
    (tfgrad.bfloat16, tfgrad.float32, tfgrad.float32)
    """
    low = target_dtype(dtype, "autocast")
    allow = op_names(allow, AUTOCAST_ALLOW, "autocast")
    deny = op_names(deny, AUTOCAST_DENY, "autocast")
    check_lists(allow, deny, "autocast")
    targets = {}
    if enabled:
        targets = {name: low for name in allow}
        targets.update({name: float32 for name in deny})
    key = tuple(sorted((name, d.name) for name, d in targets.items())) or None
    _enter(_Mode(low, bool(enabled), targets, key))
    try:
        yield
    finally:
        _exit()


def autocast_dtype() -> DType | None:
    """The low-precision dtype of the innermost enabled autocast block of this thread, or
    None outside one (or inside ``autocast(enabled=False)``)."""
    stack = getattr(_local, "stack", None)
    if not stack or not stack[-1].enabled:
        return None
    return stack[-1].dtype
