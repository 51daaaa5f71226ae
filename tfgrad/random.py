"""Random numbers from explicit generators: no hidden global state.

A :class:`Generator` is a seed and a counter; each draw hashes (seed, counter + i) on the backend
(counter-based, see :mod:`tfgrad.backends.rng`) and advances the counter, so the same seed gives
the same numbers on every backend.

>>> import tfgrad as tg
>>> rng = tg.random.Generator(0)
>>> rng.normal((2, 3)).shape
(2, 3)
"""

from __future__ import annotations

import math
from typing import Sequence

from .dtypes import as_dtype, float64
from .errors import DtypeError
from .ops.creation import random_normal_p, random_uniform_p, shape_tuple
from .primitive import Primitive, bind
from .tensor import Tensor

__all__ = ["Generator"]


class Generator:
    """A stream of random numbers, reproducible from its seed."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.counter = 0

    def _draw(self, prim: Primitive, shape, dtype, words_per_value: int) -> Tensor:
        shape = shape_tuple(shape)
        dt = as_dtype(dtype)
        if not dt.is_floating:
            raise DtypeError(f"random: {prim.name} draws floats; got dtype {dt.name}.")
        out = bind(prim, shape=shape, seed=self.seed, counter=self.counter, dtype=dt.numpy)
        self.counter += words_per_value * math.prod(shape)
        return out

    def uniform(
        self, shape: int | Sequence[int] = (), low: float = 0.0, high: float = 1.0, dtype=float64
    ) -> Tensor:
        """Uniform draws in ``[low, high)``."""
        u = self._draw(random_uniform_p, shape, dtype, 1)
        return u if (low, high) == (0.0, 1.0) else low + (high - low) * u

    def normal(
        self, shape: int | Sequence[int] = (), mean: float = 0.0, std: float = 1.0, dtype=float64
    ) -> Tensor:
        """Normal draws with the given mean and standard deviation."""
        z = self._draw(random_normal_p, shape, dtype, 2)
        return z if (mean, std) == (0.0, 1.0) else mean + std * z

    def __repr__(self) -> str:
        return f"Generator(seed={self.seed}, counter={self.counter})"
