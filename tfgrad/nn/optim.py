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

>>> import tfgrad as tg, tfgrad.nn as nn
>>> opt = nn.SGD({"w": tg.tensor([1.0])}, lr=0.5)
>>> opt.step({"w": tg.tensor([1.0])}, {"w": tg.tensor([2.0])})["w"].numpy()
array([0.])
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import tfgrad as tg
from tfgrad.errors import OptionError, ShapeError

from .module import Module

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


class Optimizer:
    """The base of the optimisers: checks structure, keeps per-parameter ``state``.

    Subclasses write ``_update(key, p, g, state) -> new p`` for one parameter.
    """

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
        new = []
        for k, p in p_items:
            g = grads_by_key[k]
            if (p.shape, p.dtype) != self._shapes[k] or (g is not None and g.shape != p.shape):
                raise ShapeError(
                    f"{name}.step: parameter {k!r} was {self._shapes[k][0]} "
                    f"{self._shapes[k][1].name}; got a parameter {p.shape} {p.dtype.name} and a "
                    f"gradient {None if g is None else g.shape}."
                )
            new.append(p if g is None else self._update(k, p, g, self.state[k]))
        return dict(zip(keys, new)) if self._mapping else type(params)(new)

    def _update(self, key: Any, p: tg.Tensor, g: tg.Tensor, state: dict) -> tg.Tensor:
        raise NotImplementedError


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

    def _update(self, key, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            buf = g if buf is None else self.momentum * buf + g
            state["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return p - self.lr * g


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

    def _update(self, key, p, g, state):
        b1, b2 = self.betas
        if self.weight_decay:
            if self._decoupled:  # AdamW: shrink the parameter, apart from the moments
                p = p * (1.0 - self.lr * self.weight_decay)
            else:
                g = g + self.weight_decay * p
        t = state.get("step", 0) + 1
        m = state.get("exp_avg")
        v = state.get("exp_avg_sq")
        m = (1.0 - b1) * g if m is None else b1 * m + (1.0 - b1) * g
        v = (1.0 - b2) * g * g if v is None else b2 * v + (1.0 - b2) * g * g
        state.update(step=t, exp_avg=m, exp_avg_sq=v)
        # PyTorch's arrangement: lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        bias1, bias2 = 1.0 - b1**t, 1.0 - b2**t
        return p - (self.lr / bias1) * m / (tg.sqrt(v) / math.sqrt(bias2) + self.eps)


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
