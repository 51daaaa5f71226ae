"""The compiler behind ``tfgrad.jit``: trace a function once per input shapes and dtypes,
compile, reuse.

>>> import tfgrad as tg
>>> f = tg.jit(tg.grad(lambda x: tg.sum(tg.sin(x) * x)))
>>> g = f(tg.tensor([0.0, 1.0]))        # traced and compiled: a cache miss
>>> g = f(tg.tensor([2.0, 3.0]))        # the same shapes: a hit, only the program runs
>>> f.cache_info()
CacheInfo(hits=1, misses=1, entries=1)
"""

from __future__ import annotations

import functools
import time
from collections import namedtuple
from typing import Any, Callable, Sequence

import numpy as np

from .. import config
from ..errors import TracingError
from ..primitive import Tracer
from ..tensor import Tensor, tensor
from ..tree import tree_flatten, tree_unflatten
from .program import Program, compile_graph
from .trace import Graph, JitTrace, JitTracer, Var

__all__ = ["jit", "JitFunction", "Graph", "Program"]

CacheInfo = namedtuple("CacheInfo", "hits misses entries")


def _fuser_for(backend: Any) -> Any:
    """The backend's fusion hook (``Backend.fuser()``), or None where it has none."""
    hook = getattr(backend, "fuser", None)
    return None if hook is None else hook()


class _Entry:
    """A compiled program and how to turn its output buffers into the function's result."""

    __slots__ = ("program", "out_tree", "compile_s", "_specs", "_backend")

    def __init__(self, program: Program, out_tree: Any, compile_s: float, backend: Any):
        self.program, self.out_tree, self.compile_s = program, out_tree, compile_s
        self._backend = backend
        self._specs = [(v.shape, v.dtype) if isinstance(v, Var) else v for v in
                       program.graph.outputs]  # fmt: skip

    def outputs(self, bufs: tuple) -> Any:
        backend = self._backend
        leaves = [
            Tensor(b, *spec, backend) if type(spec) is tuple else spec  # a constant output
            for b, spec in zip(bufs, self._specs)
        ]
        return tree_unflatten(self.out_tree, leaves)


class JitFunction:
    """A function compiled by :func:`jit`: call it like the function it wraps.

    ``cache_info()`` counts hits and misses; ``graph(*args)``, ``program(*args)`` and
    ``kernel_sources(*args)`` show what a call with such arguments runs (compiling if needed).
    """

    def __init__(self, fn: Callable, static_argnums: Sequence[int] = ()):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.static_argnums = tuple(sorted(static_argnums))
        self._cache: dict[Any, _Entry] = {}
        self._fast: dict[Any, _Entry] = {}  # (backend, (shape, dtype) per tensor) -> entry
        self.hits = self.misses = 0
        self.last_call = None  # "hit", "miss" or "eager" (called under a transformation)

    # ---- Calling ----
    def __call__(self, *args: Any) -> Any:
        # The common case first: positional tensors only, a program already compiled for them.
        fast_key = self._fast_key(args)
        if fast_key is not None:
            entry = self._fast.get(fast_key)
            if entry is not None:
                self.hits += 1
                self.last_call = "hit"
                return entry.outputs(entry.program.run(*(a._data for a in args)))
        leaves, key, rebuild = self._split(args)
        if any(isinstance(x, Tracer) and x._trace.active for x in leaves):
            # Called inside a grad/jvp/tape of this function's inputs: run eagerly, so the outer
            # transformation sees every op (correct; compile the outer function instead).
            self.last_call = "eager"
            return self.fn(*args)
        entry = self._cache.get(key)
        if entry is None:
            self.misses += 1
            self.last_call = "miss"
            entry = self._cache[key] = self._compile(leaves, rebuild)
        else:
            self.hits += 1
            self.last_call = "hit"
        if fast_key is not None:
            self._fast[fast_key] = entry
        return entry.outputs(entry.program.run(*(x._data for x in leaves)))

    def _fast_key(self, args: tuple) -> tuple | None:
        """(backend, autocast state, deterministic mode, (shape, dtype) per argument) when every
        argument is a plain Tensor."""
        if self.static_argnums:
            return None
        key = [config.current_backend(), config.cast_state(), config.deterministic_enabled()]
        for a in args:
            if type(a) is not Tensor:
                return None
            key.append((a._shape, a._dtype))
        return tuple(key)

    def _split(self, args: tuple) -> tuple[list[Tensor], Any, Callable]:
        """The dynamic leaves (tensors), the cache key and how to rebuild the arguments."""
        static = {i: args[i] for i in self.static_argnums if i < len(args)}
        dynamic = [a for i, a in enumerate(args) if i not in static]
        flat, treedef = tree_flatten(dynamic)
        backend = config.current_backend()
        leaves, specs = [], []
        for x in flat:
            if isinstance(x, np.ndarray):
                x = tensor(x)
            if isinstance(x, Tensor):
                leaves.append(x)
                specs.append((x.shape, x.dtype.name))
            else:
                specs.append(("static", _hashable(x, "an argument's leaf")))
        statics = tuple((i, _hashable(v, f"static argument {i}")) for i, v in static.items())
        dispatch = getattr(backend, "options", {}).get("dispatch")
        casts = config.cast_state()  # a program traced under autocast holds its casts
        # deterministic mode changes the kernels the program calls (no BLAS): its own entry
        fixed = config.deterministic_enabled()
        modes = (backend, dispatch, casts, fixed)
        key = (treedef_key(treedef), tuple(specs), statics, len(args), *modes)

        def rebuild(new_leaves: list) -> tuple:
            it = iter(new_leaves)
            flat_new = [next(it) if isinstance(x, (Tensor, np.ndarray)) else x for x in flat]
            dyn = iter(tree_unflatten(treedef, flat_new))
            return tuple(static[i] if i in static else next(dyn) for i in range(len(args)))

        return leaves, key, rebuild

    def _compile(self, leaves: list[Tensor], rebuild: Callable) -> _Entry:
        start = time.perf_counter()
        trace = JitTrace()
        trace.activate()
        try:
            out = self.fn(*rebuild([trace.input(x) for x in leaves]))
        finally:
            trace.active = False
        out_leaves, out_tree = tree_flatten(out)
        graph = trace.graph
        for x in out_leaves:
            graph.outputs.append(_output_of(x, trace))
        backend = config.current_backend()
        program = compile_graph(graph, backend, _fuser_for(backend))
        return _Entry(program, out_tree, time.perf_counter() - start, backend)

    # ---- Looking inside ----
    def cache_info(self) -> CacheInfo:
        return CacheInfo(self.hits, self.misses, len(self._cache))

    def clear_cache(self) -> None:
        self._cache.clear()
        self._fast.clear()
        self.hits = self.misses = 0

    def program(self, *args: Any) -> Program:
        """The compiled program for arguments like ``args`` (compiled now if new; looking does
        not count as a call in ``cache_info``)."""
        leaves, key, rebuild = self._split(args)
        if key not in self._cache:
            self._cache[key] = self._compile(leaves, rebuild)
        return self._cache[key].program

    def graph(self, *args: Any) -> Graph:
        """The graph of primitives compiled for arguments like ``args``: the trace after the
        compiler dropped what no output needs and what does nothing (see ``Program``)."""
        return self.program(*args).graph

    def kernel_sources(self, *args: Any) -> list[str]:
        """The generated Taichi source of each fused kernel for arguments like ``args``."""
        return [k.source for k in self.program(*args).kernels]

    def __repr__(self) -> str:
        return f"jit({getattr(self.fn, '__name__', self.fn)!r})"


def treedef_key(treedef: Any) -> Any:
    """A hashable form of a tree description (types and dict keys)."""
    if isinstance(treedef, tuple):
        return tuple(treedef_key(x) for x in treedef)
    if isinstance(treedef, list):
        return tuple(treedef_key(x) for x in treedef)
    return treedef


def _hashable(x: Any, what: str) -> Any:
    try:
        hash(x)
    except TypeError:
        raise TracingError(
            f"jit: {what} is a {type(x).__name__}, which is neither a tensor nor hashable, so it "
            "cannot key the compiled cache; pass tensors, NumPy arrays, numbers or strings."
        ) from None
    return (type(x), x)


def _output_of(x: Any, trace: JitTrace) -> Any:
    """An output leaf as a Var of the graph or a constant Tensor."""
    while isinstance(x, Tracer) and not isinstance(x, JitTracer) and not x._trace.active:
        x = x.primal  # a tracer left over from a finished grad/jvp inside the function
    if isinstance(x, JitTracer) and x._trace is trace:
        return x.var
    if isinstance(x, Tracer):
        raise TracingError(
            f"jit: the function returned a {type(x).__name__} of a transformation that is still "
            "running; return plain results (call tape.gradient inside the function)."
        )
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float, np.generic, np.ndarray)):
        return tensor(x)
    raise TracingError(
        f"jit: the function returned a {type(x).__name__}; return tensors, numbers or nested "
        "tuples, lists and dicts of them."
    )


def jit(fn: Callable | None = None, *, static_argnums: int | Sequence[int] = ()) -> Any:
    """Compile ``fn``: trace it once per input shapes and dtypes into a graph of primitives,
    fuse its elementwise work into generated Taichi kernels, and reuse that on later calls.

    ``fn`` takes tensors (or NumPy arrays, or nested tuples/lists/dicts of them) and may call
    ``grad``, ``value_and_grad``, ``hessian``, ``hvp``, tapes, anything in tfgrad. Numbers and
    other hashable leaves are *static*: part of the cache key, baked into the program; so are
    the arguments at ``static_argnums``. Tensors made inside ``fn`` without its inputs
    (``tg.ones(3)``, random draws) are constants of the trace. Python control flow on traced
    values raises :class:`~tfgrad.errors.TracingError`.

    Use as ``tg.jit(f)`` or as a decorator, ``@tg.jit`` / ``@tg.jit(static_argnums=1)``.
    """
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    if fn is None:
        return lambda f: JitFunction(f, nums)
    return JitFunction(fn, nums)
