"""Data: seeded batching and shuffling, a fixed train/test split, two synthetic sets (moons,
spirals) and the 8×8 handwritten digits, shipped inside the package (nothing is downloaded).

The data sets are NumPy arrays (plain data, ready to plot); :func:`batches` makes tensors of
them one batch at a time. Every random choice (shuffle order, noise, split) comes from an
explicit :class:`tfgrad.random.Generator`; left out, a fresh ``Generator(0)``.

The digits are the 1,797 images of scikit-learn's ``load_digits`` (``digits.csv.gz`` in its
wheel), themselves the test part of the UCI Machine Learning Repository's *Optical Recognition
of Handwritten Digits* (E. Alpaydin and C. Kaynak, 1998; licensed CC BY 4.0; scikit-learn is
BSD-3-Clause). They are stored here as ``digits.npz``: ``images``, uint8 (1797, 8, 8) with
pixel counts 0..16, and ``labels``, uint8 (1797,).
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any, Iterator

import numpy as np

import tfgrad as tg
from tfgrad.errors import OptionError, ShapeError

__all__ = [
    "Batches", "batches", "permutation", "train_test_split", "make_moons", "make_spirals",
    "load_digits",
]  # fmt: skip


def _generator(generator: tg.random.Generator | None) -> tg.random.Generator:
    return tg.random.Generator(0) if generator is None else generator


def _array(x: Any) -> np.ndarray:
    return x.numpy() if isinstance(x, tg.Tensor) else np.asarray(x)


def permutation(n: int, generator: tg.random.Generator | None = None) -> np.ndarray:
    """A random order of ``range(n)`` (int64), drawn from ``generator`` (which it advances):
    the ranks of ``n`` uniform draws."""
    u = _generator(generator).uniform((int(n),)).numpy()
    return np.argsort(u, kind="stable").astype(np.int64)


class Batches:
    """``(inputs, targets)`` batches as tensors, re-iterable: each pass is one epoch, shuffled
    afresh from the generator when ``shuffle`` (so a whole run repeats from the seed).
    Made by :func:`batches`."""

    def __init__(self, inputs, targets, batch_size, shuffle, generator, drop_last):
        self.inputs, self.targets = _array(inputs), _array(targets)
        if len(self.inputs) != len(self.targets):
            raise ShapeError(
                f"batches: {len(self.inputs)} inputs but {len(self.targets)} targets; the first "
                "axes must match."
            )
        if int(batch_size) < 1:
            raise OptionError(f"batches: batch_size must be >= 1, got {batch_size}.")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.generator = _generator(generator) if shuffle else generator

    def __len__(self) -> int:
        n, b = len(self.inputs), self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def __iter__(self) -> Iterator[tuple[tg.Tensor, tg.Tensor]]:
        n = len(self.inputs)
        order = permutation(n, self.generator) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield tg.tensor(self.inputs[idx]), tg.tensor(self.targets[idx])

    def __repr__(self) -> str:
        return (
            f"Batches(n={len(self.inputs)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, batches={len(self)})"
        )


def batches(
    inputs: Any,
    targets: Any,
    batch_size: int = 32,
    shuffle: bool = False,
    generator: tg.random.Generator | None = None,
    drop_last: bool = False,
) -> Batches:
    """The data ``(inputs, targets)`` (arrays or tensors, items on the first axis) in batches of
    ``batch_size``, the last one smaller unless ``drop_last``; what :func:`tfgrad.nn.fit` takes.

    >>> import numpy as np, tfgrad as tg, tfgrad.nn as nn
    >>> data = nn.batches(np.arange(10.0), np.arange(10), batch_size=4, shuffle=True,
    ...                   generator=tg.random.Generator(0))
    >>> [len(y) for _, y in data]
    [4, 4, 2]
    """
    return Batches(inputs, targets, batch_size, shuffle, generator, drop_last)


def train_test_split(
    inputs: Any,
    targets: Any,
    test_size: float = 0.25,
    generator: tg.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(inputs_train, inputs_test, targets_train, targets_test)`` (scikit-learn's order), the
    test part a random ``test_size`` fraction (rounded up) of the items. With the default
    ``Generator(0)`` the split is the same on every call and every machine."""
    x, y = _array(inputs), _array(targets)
    if len(x) != len(y):
        raise ShapeError(f"train_test_split: {len(x)} inputs but {len(y)} targets.")
    if not 0.0 < test_size < 1.0:
        raise OptionError(f"train_test_split: test_size must lie in (0, 1), got {test_size}.")
    order = permutation(len(x), generator)
    n_test = math.ceil(test_size * len(x))
    test, train = order[:n_test], order[n_test:]
    return x[train], x[test], y[train], y[test]


def make_moons(
    n_samples: int = 200, noise: float = 0.1, generator: tg.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved half circles (scikit-learn's ``make_moons``): points ``(n, 2)`` float32
    and labels ``(n,)`` int64 (0 for the upper moon, 1 for the lower), Gaussian noise of
    standard deviation ``noise``, in a shuffled order."""
    generator = _generator(generator)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out, t_in = np.linspace(0.0, np.pi, n_out), np.linspace(0.0, np.pi, n_in)
    x = np.concatenate([np.cos(t_out), 1.0 - np.cos(t_in)])
    y = np.concatenate([np.sin(t_out), 1.0 - np.sin(t_in) - 0.5])
    points = np.stack([x, y], axis=1) + noise * generator.normal((n_samples, 2)).numpy()
    labels = np.concatenate([np.zeros(n_out, np.int64), np.ones(n_in, np.int64)])
    order = permutation(n_samples, generator)
    return points[order].astype(np.float32), labels[order]


def make_spirals(
    n_samples: int = 300,
    n_classes: int = 3,
    noise: float = 0.2,
    generator: tg.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_classes`` interleaved spiral arms (the CS231n set): points ``(n, 2)`` float32 in
    about [-1, 1]², labels ``(n,)`` int64, angular noise of standard deviation ``noise``
    radians, in a shuffled order; the classes share the points as evenly as they can."""
    if n_classes < 1 or n_samples < n_classes:
        raise OptionError(
            f"make_spirals: need n_classes >= 1 and n_samples >= n_classes, got {n_samples} "
            f"samples and {n_classes} classes."
        )
    generator = _generator(generator)
    counts = [n_samples // n_classes + (k < n_samples % n_classes) for k in range(n_classes)]
    points, labels = [], []
    for k, n in enumerate(counts):
        r = np.linspace(0.0, 1.0, n)
        theta = np.linspace(4.0 * k, 4.0 * (k + 1), n) + noise * generator.normal((n,)).numpy()
        points.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        labels.append(np.full(n, k, np.int64))
    order = permutation(n_samples, generator)
    return np.concatenate(points)[order].astype(np.float32), np.concatenate(labels)[order]


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 handwritten digits: inputs ``(1797, 64)`` float32, the 8×8 images row by row
    with pixels scaled from 0..16 to [0, 1] (``reshape(-1, 8, 8)`` gives the images back), and
    labels ``(1797,)`` int64 in 0..9. Read from the package (no download); see the module's
    docstring for the source and licence.

    >>> import tfgrad.nn as nn
    >>> x, y = nn.load_digits()
    >>> x.shape, y.shape, int(y.max())
    ((1797, 64), (1797,), 9)
    """
    with resources.files("tfgrad.nn").joinpath("digits.npz").open("rb") as f:
        with np.load(f) as stored:
            images, labels = stored["images"], stored["labels"]
    inputs = images.reshape(len(images), 64).astype(np.float32) / np.float32(16.0)
    return inputs, labels.astype(np.int64)
