r"""Losses (``loss(prediction, target) -> scalar tensor``) and the ``accuracy`` metric.

``cross_entropy`` takes logits and is computed as ``-log_softmax``, whose shift by the row's
maximum is a constant (``tfgrad.logsumexp``), so logits of 1e4 neither overflow nor lose their
gradient, ``softmax(logits) - onehot(target)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import tfgrad as tg
from tfgrad.errors import DtypeError, OptionError, ShapeError, TfgradError

__all__ = ["mse_loss", "cross_entropy", "accuracy"]

_REDUCTIONS = ("mean", "sum", "none")


def _as_tensor(x: Any) -> tg.Tensor:
    return x if isinstance(x, tg.Tensor) else tg.tensor(x)


def _reduce(name: str, per_item: tg.Tensor, reduction: str) -> tg.Tensor:
    if reduction == "mean":
        return tg.mean(per_item)
    if reduction == "sum":
        return tg.sum(per_item)
    if reduction == "none":
        return per_item
    raise OptionError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}.")


def mse_loss(prediction: Any, target: Any, reduction: str = "mean") -> tg.Tensor:
    r"""Mean squared error, :math:`\frac1n\sum_i (p_i - t_i)^2` (``reduction="sum"``: the sum;
    ``"none"``: the squares). Shapes must match exactly: a silent broadcast of ``(N,)`` against
    ``(N, 1)`` would average an N×N table.

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> nn.mse_loss(tg.tensor([1.0, 2.0]), tg.tensor([1.0, 4.0])).item()
    2.0
    """
    prediction, target = _as_tensor(prediction), _as_tensor(target)
    if prediction.shape != target.shape:
        raise ShapeError(
            f"mse_loss: prediction has shape {prediction.shape} and target {target.shape}; "
            "they must match (reshape one of them)."
        )
    return _reduce("mse_loss", tg.square(prediction - target), reduction)


def _labels(target: tg.Tensor) -> np.ndarray | None:
    try:
        return target.numpy()
    except TfgradError:  # a traced target (under tfgrad.jit): its values are not known yet
        return None


def cross_entropy(logits: Any, target: Any, reduction: str = "mean") -> tg.Tensor:
    r"""Cross-entropy from unnormalised ``logits`` of shape ``(..., C)`` (classes on the last
    axis): :math:`-\log\operatorname{softmax}(z)_{y}` per item, then ``reduction``.

    ``target`` holds integer class indices of shape ``(...)``, or class probabilities of the
    logits' shape (a float tensor). Cost: one ``log_softmax`` (an ``exp`` and a sum per row).

    >>> import tfgrad as tg, tfgrad.nn as nn
    >>> round(nn.cross_entropy(tg.tensor([[1e4, 0.0]]), tg.tensor([1])).item(), 3)
    10000.0
    """
    logits, target = _as_tensor(logits), _as_tensor(target)
    if not logits.dtype.is_floating or logits.ndim < 1:
        raise DtypeError(
            f"cross_entropy: logits must be a float tensor with classes on the last axis, got "
            f"{logits.dtype.name} of shape {logits.shape}."
        )
    n_classes = logits.shape[-1]
    if target.dtype.is_floating:  # probabilities
        if target.shape != logits.shape:
            raise ShapeError(
                f"cross_entropy: probability targets must have the logits' shape "
                f"{logits.shape}, got {target.shape}."
            )
        probs = target
    else:
        if target.shape != logits.shape[:-1]:
            raise ShapeError(
                f"cross_entropy: class-index targets must have shape {logits.shape[:-1]} "
                f"(logits {logits.shape} without the class axis), got {target.shape}."
            )
        labels = _labels(target)
        if labels is not None and labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ShapeError(
                f"cross_entropy: class indices must lie in [0, {n_classes}), got "
                f"{labels.min()}..{labels.max()}."
            )
        if labels is not None:  # known labels: the one-hot table is data, made in NumPy
            onehot = np.eye(n_classes, dtype=logits.dtype.numpy)[labels]
            probs = tg.tensor(onehot)
        else:  # traced labels: the same table in tfgrad ops
            classes = tg.arange(n_classes)
            probs = tg.astype(tg.equal(tg.expand_dims(target, -1), classes), logits.dtype)
    per_item = -tg.sum(probs * tg.log_softmax(logits, axis=-1), axis=-1)
    return _reduce("cross_entropy", per_item, reduction)


def accuracy(logits: Any, target: Any) -> float:
    """The fraction of items whose largest logit is at the target class (a plain float, read
    with ``.numpy()``: a metric, not something to differentiate)."""
    z, y = np.asarray(_as_tensor(logits).numpy()), np.asarray(_as_tensor(target).numpy())
    if z.shape[:-1] != y.shape:
        raise ShapeError(f"accuracy: logits {z.shape} do not fit targets {y.shape}.")
    return float(np.mean(np.argmax(z, axis=-1) == y)) if y.size else 0.0
