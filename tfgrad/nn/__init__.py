"""Neural networks on tfgrad (``import tfgrad.nn as nn``): modules, losses, initialisers,
optimisers, data and a training loop.

A feature package: it uses tfgrad's public API only, and the core never imports it.

The design, for immutable tensors and a functional gradient:

- A :class:`Module` is a mutable holder of immutable tensors. Its parameters are the floating
  tensors assigned to its attributes, named by path (``"layers.0.weight"``);
  ``named_parameters()``, ``parameters()`` and ``state_dict()`` read them, in registration
  order, and ``load_state_dict()`` rebinds them (after checking every name, shape and dtype,
  so a bad dict changes nothing).
- A gradient is a value, never a field: :func:`functional_call` runs a module on a dict of
  parameters, so ``tg.value_and_grad(lambda p: loss(nn.functional_call(model, p, x), y))`` of
  ``model.state_dict()`` gives the loss and a dict of gradients in one reverse sweep (the
  tape over the parameter tensors). Nothing accumulates, so there is no ``zero_grad``.
- An optimiser turns parameters and gradients into new parameters:
  ``new = opt.step(params, grads)``, with PyTorch's update rules, keeping its own state
  (momentum, moments) per parameter name. A learning-rate schedule (:class:`StepLR`, ...)
  sets the optimiser's ``lr``; it is also a ``fit`` callback.
- A checkpoint is ``state_dict()`` of the model, the optimiser, the schedule and the
  mixed-precision policy, pickled: loaded into fresh objects, the run continues bit for bit.
- :func:`fit` is that step in a loop (``_step`` in :mod:`tfgrad.nn.train`, the one place where
  loss scaling for mixed precision will go), the model rebound after each step, with a tqdm
  progress bar, callbacks ``callback(step, info)`` and a :class:`History`.
- ``Module.train()`` and ``eval()`` set ``training``, which only ``Dropout`` reads.
- Randomness comes from explicit :class:`tfgrad.random.Generator` objects: initial weights,
  dropout masks, shuffling, synthetic data, the train/test split. Left out, a fresh
  ``Generator(0)``: the same call gives the same result.
- Parameters are float32 unless a layer is given ``dtype``.

>>> import tfgrad as tg, tfgrad.nn as nn
>>> x, y = nn.make_moons(200, noise=0.1, generator=tg.random.Generator(0))
>>> model = nn.MLP(2, [16, 16, 2], generator=tg.random.Generator(1))
>>> opt = nn.Adam(model.state_dict(), lr=0.02)
>>> history = nn.fit(model, nn.batches(x, y, 50, shuffle=True), nn.cross_entropy, opt,
...                  epochs=20, metrics={"accuracy": nn.accuracy}, progress=False)
>>> history.epochs[-1]["accuracy"] > 0.9
True
"""

from . import init
from .data import (
    Batches,
    batches,
    load_digits,
    make_moons,
    make_spirals,
    permutation,
    train_test_split,
)
from .layers import (
    GELU,
    MLP,
    Conv2d,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Softplus,
    Tanh,
    gelu,
    leaky_relu,
)
from .losses import accuracy, cross_entropy, mse_loss
from .module import Module, StateDictError, functional_call
from .optim import SGD, Adam, AdamW, Optimizer
from .schedule import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    StepLR,
)
from .train import History, StepInfo, StopTraining, evaluate, fit

__all__ = [
    # modules
    "Module", "functional_call", "StateDictError", "Linear", "Conv2d", "MLP", "Sequential",
    "Identity", "Flatten", "Dropout",
    # activations
    "ReLU", "LeakyReLU", "Tanh", "Sigmoid", "Softplus", "GELU", "gelu", "leaky_relu",
    # losses and metrics
    "mse_loss", "cross_entropy", "accuracy",
    # initialisers
    "init",
    # optimisers
    "Optimizer", "SGD", "Adam", "AdamW",
    # learning-rate schedules
    "LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "CosineAnnealingLR",
    # data
    "Batches", "batches", "permutation", "train_test_split", "make_moons", "make_spirals",
    "load_digits",
    # training
    "fit", "evaluate", "History", "StepInfo", "StopTraining",
]  # fmt: skip
