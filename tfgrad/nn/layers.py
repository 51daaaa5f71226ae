"""Layers: ``Linear``, ``Conv2d``, ``MLP``, ``Sequential``, activations, ``Flatten``, ``Dropout``.

Layers that draw random numbers (initial weights, dropout masks) take a ``generator``; left
out, a layer makes its own ``Generator(0)``, so the same call builds the same layer every time.
Pass one generator to several layers to make them differ (``MLP`` does, for its layers).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import tfgrad as tg
from tfgrad.errors import OptionError, ShapeError

from . import init as _init
from .module import Module

__all__ = [
    "Linear", "Conv2d", "MLP", "Sequential", "Identity", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
    "Softplus", "GELU", "Flatten", "Dropout", "gelu", "leaky_relu",
]  # fmt: skip

Initialiser = Callable[..., tg.Tensor]


def _generator(generator: tg.random.Generator | None) -> tg.random.Generator:
    return tg.random.Generator(0) if generator is None else generator


class Linear(Module):
    r"""``y = x @ weight.T + bias`` with ``weight`` of shape ``(nout, nin)`` (PyTorch's layout, so
    its state dicts load as they are) and ``bias`` of shape ``(nout,)``.

    Both start as U(-1/√nin, 1/√nin), PyTorch's default (:func:`tfgrad.nn.init.lecun_uniform`);
    ``weight_init`` and ``bias_init`` take any initialiser of :mod:`tfgrad.nn.init`.
    Cost: one matmul, ``2·batch·nin·nout`` flops, and the same twice over for its gradient.

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> layer = nn.Linear(3, 2, generator=tg.random.Generator(0))
    >>> layer(tg.ones((5, 3))).shape, layer.weight.shape
    ((5, 2), (2, 3))
    """

    def __init__(
        self,
        nin: int,
        nout: int,
        bias: bool = True,
        *,
        generator: tg.random.Generator | None = None,
        dtype=tg.float32,
        weight_init: Initialiser = _init.lecun_uniform,
        bias_init: Initialiser | None = None,
    ):
        super().__init__()
        if nin < 1 or nout < 1:
            raise ShapeError(f"Linear: nin and nout must be positive, got {nin} and {nout}.")
        generator = _generator(generator)
        self.nin, self.nout = int(nin), int(nout)
        self.weight = weight_init(generator, (self.nout, self.nin), dtype)
        if bias:
            if bias_init is None:  # PyTorch: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                k = 1.0 / math.sqrt(self.nin)
                self.bias = generator.uniform((self.nout,), -k, k, dtype=dtype)
            else:
                self.bias = bias_init(generator, (self.nout,), dtype)
        else:
            self.bias = None

    def forward(self, x: Any) -> tg.Tensor:
        x = tg.tensor(x) if not isinstance(x, tg.Tensor) else x
        if x.ndim < 1 or x.shape[-1] != self.nin:
            raise ShapeError(
                f"Linear({self.nin}, {self.nout}): inputs need a last axis of {self.nin}, got "
                f"shape {x.shape}."
            )
        y = tg.matmul(x, tg.transpose(self.weight))
        # the bias joins in the product's dtype (PyTorch's F.linear under autocast): a float32
        # bias would promote a float16 product back and keep both copies on the tape
        return y if self.bias is None else y + tg.astype(self.bias, y.dtype)

    def extra_repr(self) -> str:
        return f"{self.nin}, {self.nout}, bias={self.bias is not None}"


def _pair(value: Any, what: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise OptionError(f"Conv2d: {what} must be an int or a pair of ints, got {value!r}.")
    return pair


class Conv2d(Module):
    r"""2-D convolution of (N, C, H, W) images by ``weight`` of shape ``(nout, nin, KH, KW)``
    (PyTorch's layout) plus ``bias`` of shape ``(nout,)``: :func:`tfgrad.conv2d`, whose
    derivatives are convolutions again, exact to every order.

    Both start as U(-1/√fan_in, 1/√fan_in) with ``fan_in = nin·KH·KW``, PyTorch's default.
    Cost: ``2·N·nout·OH·OW·nin·KH·KW`` flops, twice that for the gradient.

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> conv = nn.Conv2d(1, 8, 3, padding=1, generator=tg.random.Generator(0))
    >>> conv(tg.ones((2, 1, 8, 8))).shape, conv.weight.shape
    ((2, 8, 8, 8), (8, 1, 3, 3))
    """

    def __init__(
        self,
        nin: int,
        nout: int,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        *,
        generator: tg.random.Generator | None = None,
        dtype=tg.float32,
        weight_init: Initialiser = _init.lecun_uniform,
    ):
        super().__init__()
        if nin < 1 or nout < 1:
            raise ShapeError(f"Conv2d: nin and nout must be positive, got {nin} and {nout}.")
        generator = _generator(generator)
        self.nin, self.nout = int(nin), int(nout)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.weight = weight_init(generator, (self.nout, self.nin, *self.kernel_size), dtype)
        if bias:
            k = 1.0 / math.sqrt(self.nin * math.prod(self.kernel_size))
            self.bias = generator.uniform((self.nout,), -k, k, dtype=dtype)
        else:
            self.bias = None

    def forward(self, x: Any) -> tg.Tensor:
        x = tg.tensor(x) if not isinstance(x, tg.Tensor) else x
        if x.ndim != 4 or x.shape[1] != self.nin:
            raise ShapeError(
                f"Conv2d({self.nin}, {self.nout}): inputs must be (N, {self.nin}, H, W) images, "
                f"got shape {x.shape}; reshape a single image with x.reshape(1, {self.nin}, H, W)."
            )
        y = tg.conv2d(x, self.weight, self.stride, self.padding, self.dilation)
        if self.bias is None:
            return y
        return y + tg.reshape(tg.astype(self.bias, y.dtype), (1, self.nout, 1, 1))  # as Linear

    def extra_repr(self) -> str:
        return (
            f"{self.nin}, {self.nout}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, bias={self.bias is not None}"
        )


class Sequential(Module):
    """The modules in order, each fed the previous one's output; named ``"0"``, ``"1"``, ...

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
    >>> [name for name, _ in net.named_parameters()]
    ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise OptionError(
                    f"Sequential: item {i} is a {type(m).__name__}, not a Module; wrap "
                    "functions in a Module (e.g. nn.ReLU() for tg.relu)."
                )
            setattr(self, str(i), m)
        object.__setattr__(self, "_sequence", tuple(modules))

    def __len__(self) -> int:
        return len(self._sequence)

    def __getitem__(self, i: int) -> Module:
        return self._sequence[i]

    def __iter__(self):
        return iter(self._sequence)

    def forward(self, x: Any) -> Any:
        for m in self._sequence:
            x = m(x)
        return x


class MLP(Module):
    """A multilayer perceptron as in micrograd: ``MLP(4, [16, 3])`` is 4 → 16 → 3, an
    ``activation`` (ReLU by default) after every layer but the last, whose outputs are logits.

    The layers are ``layers.0``, ``layers.1``, ... (parameters ``layers.0.weight``, ...), drawn
    one after another from ``generator``.

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> net = nn.MLP(4, [16, 3], generator=tg.random.Generator(0))
    >>> net(tg.ones((8, 4))).shape, net.num_parameters()
    ((8, 3), 131)
    """

    def __init__(
        self,
        nin: int,
        nouts: Sequence[int],
        activation: Callable[[], Module] | None = None,
        *,
        generator: tg.random.Generator | None = None,
        dtype=tg.float32,
    ):
        super().__init__()
        nouts = list(nouts)
        if not nouts:
            raise ShapeError("MLP: nouts must list at least one layer width, e.g. [16, 3].")
        generator = _generator(generator)
        sizes = [int(nin)] + [int(n) for n in nouts]
        self.layers = [
            Linear(a, b, generator=generator, dtype=dtype) for a, b in zip(sizes, sizes[1:])
        ]
        self.activation = ReLU() if activation is None else activation()

    def forward(self, x: Any) -> tg.Tensor:
        *hidden, last = self.layers
        for layer in hidden:
            x = self.activation(layer(x))
        return last(x)

    def extra_repr(self) -> str:
        return f"{self.layers[0].nin}, {[layer.nout for layer in self.layers]}"


# ---- activations ----


def leaky_relu(x: Any, negative_slope: float = 0.01) -> tg.Tensor:
    """``x`` where ``x > 0``, ``negative_slope * x`` elsewhere."""
    x = tg.tensor(x) if not isinstance(x, tg.Tensor) else x
    return tg.where(tg.greater(x, 0), x, negative_slope * x)


def gelu(x: Any) -> tg.Tensor:
    r"""GELU in its tanh form (PyTorch's ``approximate="tanh"``):
    :math:`\tfrac12 x\,(1 + \tanh(\sqrt{2/\pi}\,(x + 0.044715 x^3)))`."""
    x = tg.tensor(x) if not isinstance(x, tg.Tensor) else x
    return 0.5 * x * (1.0 + tg.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class _Elementwise(Module):
    fn: Callable[[Any], tg.Tensor]

    def forward(self, x: Any) -> tg.Tensor:
        return type(self).fn(x)


class Identity(_Elementwise):
    """Its input, unchanged."""

    fn = staticmethod(lambda x: x)


class ReLU(_Elementwise):
    """:func:`tfgrad.relu` as a module."""

    fn = staticmethod(tg.relu)


class Tanh(_Elementwise):
    """:func:`tfgrad.tanh` as a module."""

    fn = staticmethod(tg.tanh)


class Sigmoid(_Elementwise):
    """:func:`tfgrad.sigmoid` as a module."""

    fn = staticmethod(tg.sigmoid)


class Softplus(_Elementwise):
    """:func:`tfgrad.softplus` as a module."""

    fn = staticmethod(tg.softplus)


class GELU(_Elementwise):
    """:func:`gelu` (tanh form) as a module."""

    fn = staticmethod(gelu)


class LeakyReLU(Module):
    """:func:`leaky_relu` as a module."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Any) -> tg.Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Flatten(Module):
    """Every axis from ``start_axis`` on as one: ``(N, 8, 8)`` becomes ``(N, 64)``."""

    def __init__(self, start_axis: int = 1):
        super().__init__()
        self.start_axis = int(start_axis)

    def forward(self, x: Any) -> tg.Tensor:
        x = tg.tensor(x) if not isinstance(x, tg.Tensor) else x
        return tg.reshape(x, x.shape[: self.start_axis] + (-1,))


class Dropout(Module):
    """In training mode, zero each element with probability ``p`` and scale the others by
    ``1/(1-p)``; in eval mode, the identity. Masks come from ``generator``."""

    def __init__(self, p: float = 0.5, *, generator: tg.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise OptionError(f"Dropout: p must be in [0, 1), got {p}.")
        self.p = float(p)
        self.generator = _generator(generator)

    def forward(self, x: Any) -> tg.Tensor:
        x = tg.tensor(x) if not isinstance(x, tg.Tensor) else x
        if not self.training or self.p == 0.0:
            return x
        keep = tg.greater_equal(self.generator.uniform(x.shape, dtype=x.dtype), self.p)
        return tg.where(keep, x / (1.0 - self.p), 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"
