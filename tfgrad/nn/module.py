"""``Module``: a named tree of parameter tensors with a ``forward``; ``functional_call``.

A module is a mutable holder of immutable tensors. Assigning a floating-point
:class:`tfgrad.Tensor` to an attribute registers a parameter, assigning a :class:`Module` (or a
list or tuple of modules) registers a child; parameters are named by their path
(``"layers.0.weight"``) in the order they were assigned, as in PyTorch. Training never mutates
a tensor: it computes new ones and rebinds them (:meth:`Module.load_state_dict`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import numpy as np

import tfgrad as tg
from tfgrad.errors import DtypeError, ShapeError, TfgradError

__all__ = ["Module", "functional_call", "StateDictError"]


class StateDictError(TfgradError, ValueError):
    """A state dict whose names do not match the module's parameters (missing or unexpected
    keys): the message lists both."""


def _is_parameter(value: Any) -> bool:
    return isinstance(value, tg.Tensor) and value.dtype.is_floating


class Module:
    """The base class of layers and models: subclass it, assign parameters and child modules
    in ``__init__`` and write ``forward``.

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> class Affine(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.scale = tg.ones(2)
    ...         self.shift = tg.zeros(2)
    ...     def forward(self, x):
    ...         return self.scale * x + self.shift
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale', 'shift']
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # ---- registration ----

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise TfgradError(
                f"{type(self).__name__}: assign attributes after super().__init__() in __init__."
            )
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if _is_parameter(value):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        elif (
            isinstance(value, (list, tuple)) and value and all(isinstance(m, Module) for m in value)
        ):
            value = tuple(value)  # a fixed list of children, named name.0, name.1, ...
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def _children(self) -> Iterator[tuple[str, Module]]:
        for name, child in self._modules.items():
            if isinstance(child, tuple):
                for i, m in enumerate(child):
                    yield f"{name}.{i}", m
            else:
                yield name, child

    def _slots(self, prefix: str = "") -> Iterator[tuple[str, Module, str]]:
        """(full name, owning module, attribute) for every parameter, in registration order."""
        for attr in self._parameters:
            yield prefix + attr, self, attr
        for name, child in self._children():
            yield from child._slots(f"{prefix}{name}.")

    # ---- parameters ----

    def named_parameters(self) -> Iterator[tuple[str, tg.Tensor]]:
        """``(name, tensor)`` for every parameter, children included, in registration order."""
        for name, owner, attr in self._slots():
            yield name, owner._parameters[attr]

    def parameters(self) -> list[tg.Tensor]:
        """The parameter tensors, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for this module (name ``""``) and every descendant."""
        yield prefix.rstrip("."), self
        for name, child in self._children():
            yield from child.named_modules(f"{prefix}{name}.")

    def num_parameters(self) -> int:
        """The number of scalars in all parameters."""
        return sum(p.size for p in self.parameters())

    def state_dict(self) -> dict[str, tg.Tensor]:
        """The parameters as a dict ``{name: tensor}`` (the tensors themselves: they are
        immutable, so the dict is a snapshot). ``{k: v.numpy() ...}`` of it saves with
        ``numpy.savez``."""
        return dict(self.named_parameters())

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Module:
        """Rebind the parameters to the tensors (or arrays) in ``state``; returns ``self``.

        Every value must have its parameter's shape and dtype. With ``strict``, the names must
        match exactly; without, names not in ``state`` keep their tensors and names the module
        lacks are an error still (a typo should not pass silently).
        """
        slots = {name: (owner, attr) for name, owner, attr in self._slots()}
        unexpected = [k for k in state if k not in slots]
        missing = [k for k in slots if k not in state] if strict else []
        if unexpected or missing:
            raise StateDictError(
                f"load_state_dict: {type(self).__name__} got unexpected keys {unexpected} and "
                f"lacks {missing}; its parameters are {list(slots)}."
            )
        new = {}
        for name, value in state.items():
            owner, attr = slots[name]
            old = owner._parameters[attr]
            value = value if isinstance(value, tg.Tensor) else tg.tensor(np.asarray(value))
            if value.shape != old.shape:
                raise ShapeError(
                    f"load_state_dict: {name} has shape {old.shape}, got {value.shape}."
                )
            if value.dtype != old.dtype:
                raise DtypeError(
                    f"load_state_dict: {name} is {old.dtype.name}, got {value.dtype.name}; "
                    f"cast it first (value.astype('{old.dtype.name}'))."
                )
            new[name] = (owner, attr, value)
        for owner, attr, value in new.values():  # all checked first: a failure changes nothing
            owner._parameters[attr] = value
            object.__setattr__(owner, attr, value)
        return self

    # ---- modes ----

    def train(self, mode: bool = True) -> Module:
        """Set training mode (``training = mode``) here and in every descendant; returns self.
        Only layers that behave differently in training (``Dropout``) read it."""
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    # ---- calling ----

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward().")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        children = list(self._children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in children]
        return head + "\n" + "\n".join(lines) + "\n)"


@contextmanager
def _bound(module: Module, params: Mapping[str, Any]) -> Iterator[None]:
    slots = {name: (owner, attr) for name, owner, attr in module._slots()}
    unknown = [k for k in params if k not in slots]
    if unknown:
        raise StateDictError(
            f"functional_call: {type(module).__name__} has no parameters {unknown}; "
            f"its parameters are {list(slots)}."
        )
    saved = [(owner, attr, owner._parameters[attr]) for owner, attr in slots.values()]
    try:
        for name, value in params.items():
            owner, attr = slots[name]
            owner._parameters[attr] = value
            object.__setattr__(owner, attr, value)
        yield
    finally:
        for owner, attr, value in saved:
            owner._parameters[attr] = value
            object.__setattr__(owner, attr, value)


def functional_call(module: Module, params: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    """``module(*args, **kwargs)`` computed with the tensors in ``params`` (a dict of some or
    all parameter names) in place of its own, which are restored afterwards: the way to
    differentiate a module with respect to its parameters (``torch.func.functional_call``).

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> layer = nn.Linear(2, 1, generator=tg.random.Generator(0))
    >>> params = layer.state_dict()
    >>> grads = tg.grad(lambda p: tg.sum(nn.functional_call(layer, p, tg.ones((1, 2)))))(params)
    >>> grads["weight"].numpy()
    array([[1., 1.]], dtype=float32)
    """
    with _bound(module, params):
        return module(*args, **kwargs)
