"""Counter-based random numbers: the reference both backends reproduce.

A stream is ``(seed, counter)``: the ``i``-th number of a draw is a hash of the seed and
``counter + i`` (SplitMix64), so a draw depends on nothing but its arguments, no hidden
global state exists, and the Taichi kernels give the same bits as NumPy.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function of ``x + golden`` (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        return z ^ (z >> np.uint64(31))


def bits(seed: int, counter: int, n: int) -> np.ndarray:
    """``n`` uint64 words: ``splitmix64(splitmix64(seed) + counter + i)``."""
    key = splitmix64(np.array([seed % 2**64], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        index = np.arange(n, dtype=np.uint64) + np.uint64(counter % 2**64) + key
    return splitmix64(index)


def unit_float64(words: np.ndarray) -> np.ndarray:
    """Uniform in [0, 1) from the top 53 bits."""
    return (words >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


# Significand bits per dtype: a draw keeps this many top bits, so it is exact in the dtype and
# never rounds up to 1.0 (a float64 draw rounded to float16 would, about once in 7000).
MANTISSA_BITS = {"float64": 53, "float32": 24, "float16": 11, "bfloat16": 8}


def uniform(seed: int, counter: int, n: int, dtype) -> np.ndarray:
    """Standard uniform draws in [0, 1): the top ``MANTISSA_BITS[dtype]`` bits of each word."""
    dtype = np.dtype(dtype)
    bits_kept = MANTISSA_BITS[dtype.name]
    top = bits(seed, counter, n) >> np.uint64(64 - bits_kept)
    return (top.astype(np.float64) * (1.0 / 2**bits_kept)).astype(dtype)


def normal(seed: int, counter: int, n: int, dtype) -> np.ndarray:
    """Standard normal draws by Box-Muller on words ``2i`` and ``2i+1`` of the stream."""
    words = bits(seed, counter, 2 * n)
    u1 = unit_float64(words[0::2])
    u2 = unit_float64(words[1::2])
    # 1 - u1 lies in (0, 1], so the log is finite.
    return (np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)).astype(dtype)
