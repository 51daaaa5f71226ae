"""tfgrad's systems for the vendored peer benchmark (``peers.py``), registered by ``run.py``.

Each workload function takes the case inputs (a dict of NumPy arrays, see "Systems" in
``peers.py``), does its set-up (tensors made once, outside the timed step) and returns
``step``: a zero-argument callable that runs one forward+backward with tfgrad's public API and
returns the outputs in the reference order. ``peers.py`` checks them against its float64
references after timing (``np.asarray`` fetches a tfgrad Tensor).

The workload maths is written the way a tfgrad user would write it, and is the same maths as
``peers.py`` (``chain``, ``mlp_loss``, ``rosen``, ``big`` there):

- tiny_chain: ``tg.value_and_grad`` of a 100-step Python loop of ``sin(y) * 1.01 + 0.1 * y``.
- mlp_step: ``tg.value_and_grad`` over the four weights (``argnums=(0, 1, 2, 3)``) of a tanh
  MLP with mean softmax cross-entropy written with ``tg.log_softmax`` and one-hot labels
  (tfgrad has no fused cross-entropy; PyTorch uses ``F.cross_entropy``).
- hessian_rosen: ``tg.hessian`` (forward over reverse, one forward pass per input element).
- hvp_ratio: the MLP in float64 on one flat weight vector, sliced and reshaped inside the loss
  (``peers.unflatten``); ``tg.grad`` against ``tg.hvp`` (reverse over forward, its default).
- elementwise_big: ``tg.value_and_grad`` of ``sum(tanh(x) * exp(-x * x))`` on 4e6 float32.

Systems:

- ``tfgrad-taichi``: eager tfgrad on the Taichi backend (the default, ``tfgrad.init("taichi")``,
  CPU).
- ``tfgrad-numpy``: eager tfgrad on the NumPy reference backend (``tfgrad.init("numpy")``).
- ``tfgrad-jit``: the same transformed functions wrapped in ``tg.jit`` (e.g.
  ``tg.jit(tg.value_and_grad(_chain))``) on the Taichi backend; the first call traces and
  compiles (peers.py reports it as ``first_s``).
"""

from __future__ import annotations

import peers as P  # the vendored harness: sizes (CHAIN_STEPS, MLP_SHAPES) and unflatten

__all__ = ["SYSTEMS", "WORKLOADS", "JIT_WORKLOADS"]


# ---------------------------------------------------------------------------
# The workload functions, in tfgrad (``tg`` is imported inside the worker only).
# ---------------------------------------------------------------------------
def _chain(x):
    import tfgrad as tg

    y = x
    for _ in range(P.CHAIN_STEPS):
        y = tg.sin(y) * 1.01 + 0.1 * y
    return tg.sum(y)


def _mlp_loss(W1, b1, W2, b2, X, Y):
    """Mean softmax cross-entropy of a tanh MLP; Y is one-hot."""
    import tfgrad as tg

    z = tg.tanh(X @ W1 + b1) @ W2 + b2
    return -tg.sum(Y * tg.log_softmax(z, axis=1)) / X.shape[0]


def _mlp_loss_flat(theta, X, Y):
    return _mlp_loss(*P.unflatten(theta), X, Y)  # slices and reshapes of one flat tensor


def _rosen(x):
    import tfgrad as tg

    return tg.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def _big(x):
    import tfgrad as tg

    return tg.sum(tg.tanh(x) * tg.exp(-x * x))


# ---------------------------------------------------------------------------
# Workloads: inputs -> step (see peers.py, "Systems"). ``compiled`` wraps each transformed
# function: identity for eager tfgrad, ``tg.jit`` for tfgrad-jit.
# ---------------------------------------------------------------------------
def _eager(fn):
    return fn


def _jit(fn):
    import tfgrad as tg

    return tg.jit(fn)


def _workloads(compiled):
    def tiny_chain(d):
        import tfgrad as tg

        value_and_grad = compiled(tg.value_and_grad(_chain))
        x = tg.tensor(d["x"])
        return lambda: value_and_grad(x)  # (loss, dloss/dx)

    def mlp_step(d):
        import tfgrad as tg

        value_and_grad = compiled(tg.value_and_grad(_mlp_loss, argnums=(0, 1, 2, 3)))
        weights = [tg.tensor(d[k]) for k in P.MLP_NAMES]  # float32, as given
        X, Y = tg.tensor(d["X"]), tg.tensor(d["Y"])

        def step():
            loss, grads = value_and_grad(*weights, X, Y)
            return (loss, *grads)

        return step

    def hessian_rosen(d):
        import tfgrad as tg

        hessian = compiled(tg.hessian(_rosen))
        x = tg.tensor(d["x"])
        return lambda: (hessian(x),)

    def hvp_ratio(d):
        import tfgrad as tg

        theta, v, X, Y = (tg.tensor(d[k]) for k in ("theta", "v", "X", "Y"))
        grad = compiled(tg.grad(_mlp_loss_flat))

        def hvp_of(t, v, X, Y):
            return tg.hvp(lambda t: _mlp_loss_flat(t, X, Y), t, v)  # reverse over forward

        hvp = compiled(hvp_of)
        return (lambda: (grad(theta, X, Y),), lambda: (hvp(theta, v, X, Y),))

    def elementwise_big(d):
        import tfgrad as tg

        value_and_grad = compiled(tg.value_and_grad(_big))
        x = tg.tensor(d["x"])  # float32, as given
        return lambda: value_and_grad(x)

    return dict(
        tiny_chain=tiny_chain,
        mlp_step=mlp_step,
        hessian_rosen=hessian_rosen,
        hvp_ratio=hvp_ratio,
        elementwise_big=elementwise_big,
    )


WORKLOADS = _workloads(_eager)
JIT_WORKLOADS = _workloads(_jit)


def _setup(backend):
    def setup():
        import tfgrad as tg

        b = tg.init(backend)
        return f"tfgrad.init({backend!r}): {b!r}"

    return setup


# ---------------------------------------------------------------------------
# The entries for peers.SYSTEMS (its PLUG-IN POINT). ``planned`` marks a system that is
# listed but not run (run.py shows it as "not built yet").
# ---------------------------------------------------------------------------
SYSTEMS = {
    "tfgrad-taichi": dict(
        modules=["tfgrad", "taichi"],
        setup=_setup("taichi"),
        note="tfgrad eager on the Taichi backend (the default; CPU): tg.value_and_grad "
        "(chain, MLP, elementwise), tg.hessian, tg.grad vs tg.hvp on one flat weight vector",
        workloads=WORKLOADS,
    ),
    "tfgrad-jit": dict(
        modules=["tfgrad", "taichi"],
        setup=_setup("taichi"),
        note="tg.jit of the same transformed functions on the Taichi backend: traced once per "
        "shapes, elementwise groups fused into generated Taichi kernels, the rest as dispatched",
        workloads=JIT_WORKLOADS,
    ),
    "tfgrad-numpy": dict(
        modules=["tfgrad"],
        setup=_setup("numpy"),
        note="tfgrad eager on the NumPy reference backend: the same code as tfgrad-taichi",
        workloads=WORKLOADS,
    ),
}
