r"""Optimisers with PyTorch's update rules, in the functional form tfgrad's immutable tensors ask
for: ``new_params = optimizer.step(params, grads)``.

``params`` and ``grads`` have one structure, fixed when the optimiser is made: a dict
``{name: tensor}`` (``model.state_dict()``, what :func:`tfgrad.value_and_grad` of a function
of that dict returns as gradients) or a list of tensors (``model.parameters()``). ``step``
returns the same structure with new tensors and keeps the optimiser's own state (momentum
buffers, moment estimates, step counts) per name. A ``None`` gradient leaves its parameter and
state as they are (PyTorch skips a parameter whose ``.grad`` is ``None``). Nothing is
accumulated between steps, so there is nothing to zero: each step's gradients are the values
passed in. The updates are tfgrad ops, so a step is itself differentiable.

Each parameter's update is one small chain of elementwise ops (``_rule``). Outside a
transformation it is compiled once per optimiser kind, parameter shape and dtype
(:func:`tfgrad.jit`, shared by all optimisers of that kind; the hyperparameters are 0-d tensor
arguments, so changing ``lr`` compiles nothing), and runs compiled where the backend fuses the
chain into one kernel (large parameters; on a CPU, from ~10^5 elements), op by op where it
does not (there the ops' own dispatch is cheaper than a program's call): the same ops on the
same values either way, so the same results. Under a ``grad`` or tape of the step the rule
runs op by op and is differentiated. ``nn.fit(jit=...)`` compiles the update into its step.

:meth:`Optimizer.state_dict` and :meth:`Optimizer.load_state_dict` save and restore the state
and hyperparameters in PyTorch's layout, so a checkpoint resumes a run bit for bit.

>>> import tfgrad as tg, tfgrad.nn as nn
>>> opt = nn.SGD({"w": tg.tensor([1.0])}, lr=0.5)
>>> opt.step({"w": tg.tensor([1.0])}, {"w": tg.tensor([2.0])})["w"].numpy()
array([0.])
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

import tfgrad as tg
from tfgrad.errors import OptionError, ShapeError

from .module import Module, StateDictError

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


def _items(params: Any) -> list[tuple[Any, tg.Tensor]]:
    if isinstance(params, Module):
        params = params.state_dict()
    if isinstance(params, Mapping):
        return list(params.items())
    if isinstance(params, (list, tuple)):
        return list(enumerate(params))
    raise OptionError(
        f"optimiser: params must be a dict of tensors (model.state_dict()), a list of tensors "
        f"(model.parameters()) or a Module, got {type(params).__name__}."
    )


# The compiled rules, one per (optimiser class, the flags that change its chain of ops), shared
# by every optimiser of that kind: tg.jit traces once per parameter shape and dtype.
_COMPILED: dict[tuple, Any] = {}


class Optimizer:
    """The base of the optimisers: checks structure, keeps per-parameter ``state``.

    Subclasses write the update of one parameter as a pure function of tensors,
    ``_rule(p, g, state, hyper) -> (new p, new state)``: ``state`` a tuple of tensors (empty at
    the first step), ``hyper`` the numbers of ``_hyper(key)`` (Python floats, or 0-d tensors of
    the parameter's dtype when compiled, so that the rounding is the same); ``_STATE`` names the
    state's tensors, ``_flags()`` what else selects the chain of ops.
    """

    _STATE: tuple[str, ...] = ()
    _COUNTS_STEPS = False  # whether state holds a "step" count (Adam's bias corrections)

    def __init__(self, params: Any, lr: float):
        if not lr >= 0.0:
            raise OptionError(f"{type(self).__name__}: lr must be >= 0, got {lr}.")
        items = _items(params)
        if not items:
            raise OptionError(f"{type(self).__name__}: got an empty list of parameters.")
        self.lr = float(lr)
        self._mapping = isinstance(params, (Mapping, Module))
        self._shapes = {k: (p.shape, p.dtype) for k, p in items}
        self.state: dict[Any, dict[str, Any]] = {k: {} for k, _ in items}

    def step(self, params: Any, grads: Any) -> Any:
        """New parameters from ``params`` and their ``grads`` (same structure: a dict or a
        list); the optimiser's state advances. Nothing is changed in place."""
        p_items, g_items = _items(params), _items(grads)
        name = type(self).__name__
        keys = [k for k, _ in p_items]
        g_keys = [k for k, _ in g_items]
        same = set if self._mapping else list  # a dict's order does not matter (tree_map sorts)
        if same(keys) != same(self._shapes) or same(g_keys) != same(keys):
            raise ShapeError(
                f"{name}.step: params and grads must have the names (or count) this optimiser "
                f"was made with, {list(self._shapes)}; got params {keys} and grads "
                f"{g_keys}."
            )
        grads_by_key = dict(g_items)
        flags = self._flags()
        new = []
        for k, p in p_items:
            g = grads_by_key[k]
            if (p.shape, p.dtype) != self._shapes[k] or (g is not None and g.shape != p.shape):
                raise ShapeError(
                    f"{name}.step: parameter {k!r} was {self._shapes[k][0]} "
                    f"{self._shapes[k][1].name}; got a parameter {p.shape} {p.dtype.name} and a "
                    f"gradient {None if g is None else g.shape}."
                )
            new.append(p if g is None else self._update(k, p, g, flags))
        return dict(zip(keys, new)) if self._mapping else type(params)(new)

    # ---- Checkpoints ----
    _HYPER: tuple[str, ...] = ("lr",)  # the constructor's hyperparameters, saved by name

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as PyTorch lays it out: ``{"state": {key: {"exp_avg": tensor,
        ..., "step": int}}, "param_groups": [{"lr": ..., ..., "params": [key, ...]}]}`` (one
        group), ``key`` a parameter's name or index. Parameters not yet stepped have no entry.
        A snapshot (tensors are immutable); it pickles, with the model's
        :meth:`~Module.state_dict`, into a checkpoint that :meth:`load_state_dict` resumes
        bit for bit."""
        group = {name: getattr(self, name) for name in self._HYPER}
        group["params"] = list(self._shapes)
        state = {k: dict(st) for k, st in self.state.items() if st}
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> Optimizer:
        """Take the state and hyperparameters of :meth:`state_dict` (of an optimiser of this
        kind over parameters of these names and shapes); returns ``self``. Everything is
        checked before anything changes: a failed load leaves the optimiser as it was."""
        name = type(self).__name__
        try:
            (group,) = state_dict["param_groups"]
            entries = state_dict["state"]
            keys = list(group["params"])
        except (KeyError, TypeError, ValueError):
            raise StateDictError(
                f"{name}.load_state_dict: expected {{'state': ..., 'param_groups': [one group]}} "
                f"as {name}.state_dict() returns, got {type(state_dict).__name__} with keys "
                f"{list(state_dict) if isinstance(state_dict, Mapping) else '?'}."
            ) from None
        hyper = {k: v for k, v in group.items() if k != "params"}
        same = set if self._mapping else list
        if same(keys) != same(self._shapes) or set(hyper) != set(self._HYPER):
            raise StateDictError(
                f"{name}.load_state_dict: this optimiser has parameters {list(self._shapes)} and "
                f"hyperparameters {list(self._HYPER)}; the state has parameters {keys} and "
                f"{sorted(hyper)} (saved from another model or another kind of optimiser?)."
            )
        type(self)({"check": tg.zeros((1,))}, **hyper)  # the constructor's checks of the values
        names = set(self._STATE) | ({"step"} if self._COUNTS_STEPS else set())
        new: dict[Any, dict[str, Any]] = {k: {} for k in self._shapes}
        for key, entry in entries.items():
            if key not in new or (entry and set(entry) != names):
                raise StateDictError(
                    f"{name}.load_state_dict: state entry {key!r} holds {sorted(entry)}; "
                    f"{name} keeps {sorted(names)} for each of {list(self._shapes)}."
                )
            shape = self._shapes[key][0]
            for field, value in entry.items():
                if field == "step":
                    count = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                    if not count or value < 0:
                        raise StateDictError(
                            f"{name}.load_state_dict: {key!r}'s step must be a count >= 0, got "
                            f"{value!r}."
                        )
                    new[key][field] = int(value)
                    continue
                value = value if isinstance(value, tg.Tensor) else tg.tensor(np.asarray(value))
                if value.shape != shape or not value.dtype.is_floating:
                    raise ShapeError(
                        f"{name}.load_state_dict: {key!r}'s {field} must be a floating array "
                        f"of the parameter's shape {shape}, got {value.shape} {value.dtype.name}."
                    )
                new[key][field] = value
        for k, v in hyper.items():
            setattr(self, k, tuple(map(float, v)) if isinstance(v, (tuple, list)) else v)
        self.state = new
        return self

    # ---- One parameter ----
    def _flags(self) -> tuple:
        """What, besides the state present, decides the ops of ``_rule`` (not their values)."""
        return ()

    def _hyper(self, key: Any) -> tuple[float, ...]:
        raise NotImplementedError

    @staticmethod
    def _rule(flags: tuple, p: Any, g: Any, state: tuple, hyper: tuple) -> tuple[Any, tuple]:
        raise NotImplementedError

    def _state_of(self, key: Any) -> tuple:
        st = self.state[key]
        return tuple(st[n] for n in self._STATE if st.get(n) is not None)

    def _store(self, key: Any, state: tuple) -> None:
        """Keep the new state of one parameter (and its step count)."""
        st = self.state[key]
        st.update(zip(self._STATE, state))
        if self._COUNTS_STEPS:
            st["step"] = st.get("step", 0) + 1

    def _compiled(self) -> Any:
        """The jit-compiled ``_rule`` for this optimiser's kind, positional tensors only (the
        jit's fast path): ``(p, g, *state, *hyper) -> (new p, *new state)``."""
        flags = self._flags()
        kind = (type(self), flags)
        fn = _COMPILED.get(kind)
        if fn is None:
            n_hyper, rule = len(self._hyper(None)), type(self)._rule  # nothing of self is kept

            def update(p, g, *rest):
                state, hyper = rest[: len(rest) - n_hyper], rest[len(rest) - n_hyper :]
                new_p, new_state = rule(flags, p, g, tuple(state), tuple(hyper))
                return (new_p, *new_state)

            update.__name__ = f"{type(self).__name__}_update"
            fn = _COMPILED[kind] = tg.jit(update)
        return fn

    def _update(self, key: Any, p: tg.Tensor, g: tg.Tensor, flags: tuple) -> tg.Tensor:
        state, hyper = self._state_of(key), self._hyper(key)
        compiled = None
        if type(p) is tg.Tensor and type(g) is tg.Tensor and not any(map(_traced, state)):
            kind = (type(self), flags, p.shape, p.dtype, len(state))
            if _PAYS.get(kind, True):
                compiled = self._compiled()
        if compiled is None:  # op by op: differentiated under a transformation, or cheaper
            new_p, new_state = self._rule(flags, p, g, state, hyper)
        else:
            args = (p, g, *state, *(scalar(h, p.dtype.numpy) for h in hyper))
            new_p, *new_state = compiled(*args)
            if kind not in _PAYS:  # compiled now: keep it where the backend fused a kernel
                _PAYS[kind] = bool(compiled.program(*args).kernels)
        self._store(key, tuple(new_state))
        return new_p


# (optimiser kind, shape, dtype, state count) -> whether its compiled rule holds a fused kernel.
# Where it holds none (on a CPU, parameters below ~10^5 elements: the backend's cost model
# finds NumPy's loops faster), the program runs the same ops one by one and its call costs
# more than the ops' own dispatch, so the rule runs op by op.
_PAYS: dict[tuple, bool] = {}


_SCALARS: dict[tuple, tg.Tensor] = {}


def scalar(value: float, dtype: np.dtype) -> tg.Tensor:
    """``value`` as a 0-d tensor of ``dtype`` (a hyperparameter for a compiled rule), reused
    while the same value recurs (tensors are immutable): most of them are the same every step."""
    key = (float(value).hex(), dtype)  # hex: 0.0 and -0.0 apart
    t = _SCALARS.get(key)
    if t is None:
        if len(_SCALARS) > 512:  # per-step values (Adam's bias corrections) come and go
            _SCALARS.clear()
        t = _SCALARS[key] = tg.tensor(np.asarray(value, dtype))
    return t


def _traced(x: Any) -> bool:
    """Whether ``x`` is not a plain tensor (a tracer of grad, jvp, a tape or jit)."""
    return type(x) is not tg.Tensor


class SGD(Optimizer):
    r"""Stochastic gradient descent, PyTorch's ``torch.optim.SGD`` (dampening 0):

    .. math::
        g &\leftarrow g + \lambda p \\
        b &\leftarrow \mu b + g \quad (b = g \text{ at the first step}) \\
        p &\leftarrow p - \eta\,(g + \mu b \text{ if nesterov else } b)

    with learning rate η (``lr``), momentum μ and weight decay λ; without momentum,
    ``p ← p - η g``.
    """

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        if momentum < 0.0 or weight_decay < 0.0:
            raise OptionError(
                f"SGD: momentum and weight_decay must be >= 0, got {momentum} and {weight_decay}."
            )
        if nesterov and momentum <= 0.0:
            raise OptionError("SGD: nesterov=True needs a momentum > 0.")
        self.momentum, self.nesterov, self.weight_decay = float(momentum), nesterov, weight_decay

    _STATE = ("momentum_buffer",)
    _HYPER = ("lr", "momentum", "nesterov", "weight_decay")

    def _flags(self):
        return (bool(self.weight_decay), bool(self.momentum), self.nesterov)

    def _hyper(self, key):
        return (self.lr, self.momentum, self.weight_decay)

    @staticmethod
    def _rule(flags, p, g, state, hyper):
        decay, with_momentum, nesterov = flags
        lr, momentum, weight_decay = hyper
        if decay:
            g = g + weight_decay * p
        if not with_momentum:
            return p - lr * g, ()
        buf = g if not state else momentum * state[0] + g
        g = g + momentum * buf if nesterov else buf
        return p - lr * g, (buf,)


class Adam(Optimizer):
    r"""Adam, PyTorch's ``torch.optim.Adam`` (weight decay as an L2 term added to the gradient):

    .. math::
        g &\leftarrow g + \lambda p, \qquad
        m \leftarrow \beta_1 m + (1-\beta_1) g, \qquad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        p &\leftarrow p - \eta\,\frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    at step ``t`` = 1, 2, ... of that parameter, m and v starting at 0.
    """

    _decoupled = False

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0) or eps < 0.0 or weight_decay < 0.0:
            raise OptionError(
                f"{type(self).__name__}: betas must lie in [0, 1) and eps, weight_decay be "
                f">= 0; got betas={betas}, eps={eps}, weight_decay={weight_decay}."
            )
        self.betas, self.eps, self.weight_decay = (float(b1), float(b2)), eps, weight_decay

    _STATE = ("exp_avg", "exp_avg_sq")
    _HYPER = ("lr", "betas", "eps", "weight_decay")

    _COUNTS_STEPS = True

    def _flags(self):
        return (bool(self.weight_decay), self._decoupled)

    def _hyper(self, key):
        b1, b2 = self.betas
        t = (0 if key is None else self.state[key].get("step", 0)) + 1
        # PyTorch's arrangement: lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        bias1, bias2 = 1.0 - b1**t, 1.0 - b2**t
        return (b1, 1.0 - b1, b2, 1.0 - b2, self.lr / bias1, math.sqrt(bias2), self.eps,
                1.0 - self.lr * self.weight_decay, self.weight_decay)  # fmt: skip

    @staticmethod
    def _rule(flags, p, g, state, hyper):
        decay, decoupled = flags
        b1, c1, b2, c2, step_size, root_bias2, eps, shrink, weight_decay = hyper
        if decay:
            if decoupled:  # AdamW: shrink the parameter, apart from the moments
                p = p * shrink
            else:
                g = g + weight_decay * p
        m, v = state if state else (None, None)
        m = c1 * g if m is None else b1 * m + c1 * g
        v = c2 * g * g if v is None else b2 * v + c2 * g * g
        return p - step_size * m / (tg.sqrt(v) / root_bias2 + eps), (m, v)


class AdamW(Adam):
    r"""AdamW, PyTorch's ``torch.optim.AdamW``: Adam without the L2 term, the parameter decayed
    apart from the moments first, :math:`p \leftarrow p\,(1 - \eta\lambda)` (Loshchilov and
    Hutter's decoupled weight decay); ``weight_decay`` defaults to 0.01 as in PyTorch."""

    _decoupled = True

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)
