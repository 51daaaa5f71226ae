r"""Initialisers: each draws a new tensor from an explicit :class:`tfgrad.random.Generator`.

Every initialiser is ``init(generator, shape, dtype=float32) -> Tensor`` (``zeros`` ignores the
generator), so the same generator state gives the same tensor on every backend. Fans follow
PyTorch's convention for a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``
and ``fan_out = out * prod(kernel)``.

>>> import tfgrad as tg, tfgrad.nn as nn
>>> a = nn.init.xavier_uniform(tg.random.Generator(7), (3, 4))
>>> b = nn.init.xavier_uniform(tg.random.Generator(7), (3, 4))
>>> bool(tg.all(a == b))
True
"""

from __future__ import annotations

import math
from typing import Sequence

import tfgrad as tg

__all__ = [
    "fans", "zeros", "uniform", "normal", "lecun_uniform", "xavier_uniform", "xavier_normal",
    "kaiming_uniform", "kaiming_normal",
]  # fmt: skip


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (a vector counts as ``fan_in = fan_out``)."""
    shape = tuple(shape)
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def zeros(generator: tg.random.Generator | None, shape: Sequence[int], dtype=tg.float32):
    """Zeros (the generator is not advanced)."""
    return tg.zeros(tuple(shape), dtype=dtype)


def uniform(generator, shape, dtype=tg.float32, low: float = 0.0, high: float = 1.0):
    """Uniform draws in ``[low, high)``."""
    return generator.uniform(tuple(shape), low, high, dtype=dtype)


def normal(generator, shape, dtype=tg.float32, mean: float = 0.0, std: float = 1.0):
    """Normal draws with the given mean and standard deviation."""
    return generator.normal(tuple(shape), mean, std, dtype=dtype)


def lecun_uniform(generator, shape, dtype=tg.float32):
    r"""U(-k, k) with :math:`k = 1/\sqrt{\text{fan\_in}}`: PyTorch's default for ``Linear``
    (its ``kaiming_uniform_(a=√5)``) for the weight and the bias alike."""
    k = 1.0 / math.sqrt(fans(shape)[0])
    return generator.uniform(tuple(shape), -k, k, dtype=dtype)


def xavier_uniform(generator, shape, dtype=tg.float32, gain: float = 1.0):
    r"""U(-a, a) with :math:`a = \text{gain}\sqrt{6/(\text{fan\_in}+\text{fan\_out})}` (Glorot)."""
    fan_in, fan_out = fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return generator.uniform(tuple(shape), -a, a, dtype=dtype)


def xavier_normal(generator, shape, dtype=tg.float32, gain: float = 1.0):
    r"""N(0, σ²) with :math:`σ = \text{gain}\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`."""
    fan_in, fan_out = fans(shape)
    return generator.normal(tuple(shape), 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), dtype)


def kaiming_uniform(generator, shape, dtype=tg.float32):
    r"""U(-b, b) with :math:`b = \sqrt{6/\text{fan\_in}}` (He, for ReLU layers)."""
    b = math.sqrt(6.0 / fans(shape)[0])
    return generator.uniform(tuple(shape), -b, b, dtype=dtype)


def kaiming_normal(generator, shape, dtype=tg.float32):
    r"""N(0, 2/fan_in) (He, for ReLU layers)."""
    return generator.normal(tuple(shape), 0.0, math.sqrt(2.0 / fans(shape)[0]), dtype=dtype)
