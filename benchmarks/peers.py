#!/usr/bin/env python
# ruff: noqa: E501, E741  [tfgrad] vendored: kept as written upstream
"""peers.py -- side-by-side benchmark of existing Python autodiff systems.

[tfgrad] Vendored from the project's shared/bench/peers.py (2026-11-24) so that the
repository is self-contained. tfgrad's own systems plug in from benchmarks/tfgrad_systems.py;
run everything with benchmarks/run.py. Edits to this copy are few and marked "[tfgrad]".

Anchors for tfgrad: the same five workloads run on every installed peer, each
result checked against a float64 NumPy reference computed in this file.

    python bench/peers.py --json out.json              # every installed system
    python bench/peers.py --only torch,jax-jit         # a subset (see --list)
    python bench/peers.py --cases tiny_chain,mlp_step  # a subset of workloads
    python bench/peers.py --compare run1.json run2.json  # run-to-run spread

Workloads (unit in brackets):
  tiny_chain         x: (4,) f64; 100 x [y = sin(y)*1.01 + 0.1*y]; grad of sum(y)  [us]
  mlp_step           MLP 784-256-10, tanh, batch 128, softmax-CE, f32; grads of W1 b1 W2 b2  [ms]
  hessian_rosen_N    exact Hessian of Rosenbrock at a random point, N = 32 and 128, f64  [ms]
  hvp_ratio          the MLP in f64, batch 32, weights as one flat vector:
                     time(one Hessian-vector product) / time(one gradient)  [x]
  elementwise_big    sum(tanh(x) * exp(-x*x)), 4e6 f32, forward+backward  [ms]

Method: every system runs in its own subprocess (own imports and thread pools;
one that is missing or crashes is skipped with a note). Per cell: one first
call (tracing/compilation, reported as first_s), warm-up calls, then the
median of repeated time.perf_counter() timings of one forward+backward; the
repeat count adapts so that the repeats take ~--budget seconds (default 1 s;
at least 10 repeats, fewer only for cells slower than 0.3 s, at most ~3 s).
Results are fetched after timing and checked: max|out - ref| / scale <= tol
(scale = max|ref| unless noted). NumPy is required (references); every other
library is optional.

To benchmark a new system, see "PLUG-IN POINT" below.
"""
import argparse
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SEED = 0
CHAIN_STEPS = 100
MLP_SHAPES = [(784, 256), (256,), (256, 10), (10,)]  # W1, b1, W2, b2
MLP_NAMES = ("W1", "b1", "W2", "b2")
MLP_BATCH, HVP_BATCH = 128, 32  # [tfgrad] were literals in make_case
BIG_N = 4_000_000
TOL = {np.float64: 1e-9, np.float32: 2e-4}  # on max|err| / scale


# ---------------------------------------------------------------------------
# Workload math written once for NumPy-like modules (numpy, jax.numpy,
# autograd.numpy): `xp` is the module.
# ---------------------------------------------------------------------------
def chain(xp, x):
    y = x
    for _ in range(CHAIN_STEPS):
        y = xp.sin(y) * 1.01 + 0.1 * y
    return xp.sum(y)


def mlp_loss(xp, W1, b1, W2, b2, X, Y):
    """Mean softmax cross-entropy; Y is one-hot."""
    h = xp.tanh(xp.dot(X, W1) + b1)
    z = xp.dot(h, W2) + b2
    m = xp.max(z, axis=1, keepdims=True)
    logp = z - m - xp.log(xp.sum(xp.exp(z - m), axis=1, keepdims=True))
    return -xp.sum(Y * logp) / X.shape[0]


def unflatten(theta):
    """Flat parameter vector -> (W1, b1, W2, b2); works on any array type."""
    out, o = [], 0
    for shp in MLP_SHAPES:
        n = math.prod(shp)
        out.append(theta[o:o + n].reshape(shp))
        o += n
    return out


def mlp_loss_flat(xp, theta, X, Y):
    return mlp_loss(xp, *unflatten(theta), X, Y)


def rosen(xp, x):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def big(xp, x):
    return xp.sum(xp.tanh(x) * xp.exp(-x * x))


# ---------------------------------------------------------------------------
# Hand-written derivatives in NumPy: the float64 references (validated against
# central differences by reference_selfcheck) and the numpy_floor system.
# ---------------------------------------------------------------------------
def np_chain_fwd_bwd(x):
    ys, y = [], x
    for _ in range(CHAIN_STEPS):
        ys.append(y)
        y = np.sin(y) * 1.01 + 0.1 * y
    g = np.ones_like(x)
    for y_k in reversed(ys):
        g = g * (np.cos(y_k) * 1.01 + 0.1)
    return np.sum(y), g


def np_mlp_fwd_bwd(W1, b1, W2, b2, X, Y):
    B = X.shape[0]
    h = np.tanh(X @ W1 + b1)
    z = h @ W2 + b2
    zm = z - z.max(axis=1, keepdims=True)
    e = np.exp(zm)
    s = e.sum(axis=1, keepdims=True)
    loss = -np.sum(Y * (zm - np.log(s))) / B
    dz = (e / s - Y) / B
    dh = dz @ W2.T
    dz1 = dh * (1 - h * h)
    return loss, X.T @ dz1, dz1.sum(0), h.T @ dz, dz.sum(0)


def np_mlp_grad_flat(theta, X, Y):
    return np.concatenate([g.ravel() for g in np_mlp_fwd_bwd(*unflatten(theta), X, Y)[1:]])


def np_mlp_hvp_flat(theta, v, X, Y):
    """Exact Hessian-vector product by hand (Pearlmutter's R-operator)."""
    W1, b1, W2, b2 = unflatten(theta)
    V1, c1, V2, c2 = unflatten(v)
    B = X.shape[0]
    h = np.tanh(X @ W1 + b1)
    a = 1 - h * h
    z = h @ W2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - Y) / B
    dh = dz @ W2.T
    Rh = a * (X @ V1 + c1)
    Rz = Rh @ W2 + h @ V2 + c2
    Rdz = p * (Rz - np.sum(p * Rz, axis=1, keepdims=True)) / B
    Rdh = Rdz @ W2.T + dz @ V2.T
    Rdz1 = Rdh * a - 2 * h * Rh * dh
    parts = (X.T @ Rdz1, Rdz1.sum(0), Rh.T @ dz + h.T @ Rdz, Rdz.sum(0))
    return np.concatenate([q.ravel() for q in parts])


def np_rosen_grad(x):
    g = np.zeros_like(x)
    r = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * r
    return g


def np_rosen_hess(x):
    n = x.shape[0]
    H = np.zeros((n, n), dtype=x.dtype)
    i = np.arange(n - 1)
    H[i, i] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    H[i + 1, i + 1] += 200.0
    H[i, i + 1] = H[i + 1, i] = -400.0 * x[:-1]
    return H


def np_big_fwd_bwd(x):
    t = np.tanh(x)
    e = np.exp(-x * x)
    return np.sum(t * e), e * ((1 - t * t) - 2 * x * t)


# ---------------------------------------------------------------------------
# Inputs (seeded, identical in every subprocess) and float64 references.
# ---------------------------------------------------------------------------
def _mlp_inputs(rng, batch, dtype):
    (n_in, n_hid), _, (_, n_out), _ = MLP_SHAPES  # [tfgrad] was 784, 256, 10 literally
    X = rng.standard_normal((batch, n_in))
    labels = rng.integers(0, n_out, batch)
    d = dict(X=X, Y=np.eye(n_out)[labels],  # scales as before: 28 = sqrt(784), 16 = sqrt(256)
             W1=rng.standard_normal((n_in, n_hid)) / math.sqrt(n_in),
             b1=0.1 * rng.standard_normal(n_hid),
             W2=rng.standard_normal((n_hid, n_out)) / math.sqrt(n_hid),
             b2=0.1 * rng.standard_normal(n_out))
    d = {k: v.astype(dtype) for k, v in d.items()}
    d["labels"] = labels.astype(np.int64)
    return d


def make_case(name):
    """-> (workload key, inputs, reference outputs, scales, dtype)."""
    rng = np.random.default_rng([SEED, sum(map(ord, name))])
    if name == "tiny_chain":
        x = rng.uniform(-1.0, 1.0, 4)
        ref = np_chain_fwd_bwd(x)
        return "tiny_chain", dict(x=x), ref, None, np.float64
    if name == "mlp_step":
        d = _mlp_inputs(rng, MLP_BATCH, np.float32)
        d64 = {k: v.astype(np.float64) for k, v in d.items() if k != "labels"}
        ref = np_mlp_fwd_bwd(*(d64[k] for k in (*MLP_NAMES, "X", "Y")))
        return "mlp_step", d, ref, None, np.float32
    if name.startswith("hessian_rosen_"):
        x = rng.uniform(-2.0, 2.0, int(name.rsplit("_", 1)[1]))
        return "hessian_rosen", dict(x=x), (np_rosen_hess(x),), None, np.float64
    if name == "hvp_ratio":
        d = _mlp_inputs(rng, HVP_BATCH, np.float64)
        theta = np.concatenate([d.pop(k).ravel() for k in MLP_NAMES])
        d.update(theta=theta, v=rng.standard_normal(theta.size))
        ref = dict(grad=(np_mlp_grad_flat(theta, d["X"], d["Y"]),),
                   hvp=(np_mlp_hvp_flat(theta, d["v"], d["X"], d["Y"]),))
        return "hvp_ratio", d, ref, None, np.float64
    if name == "elementwise_big":
        x = rng.standard_normal(BIG_N).astype(np.float32)
        x64 = x.astype(np.float64)
        ref = np_big_fwd_bwd(x64)
        # the loss is a sum with heavy cancellation: scale its error by sum|terms|
        scales = (np.sum(np.abs(np.tanh(x64) * np.exp(-x64 * x64))), None)
        return "elementwise_big", dict(x=x), ref, scales, np.float32
    raise KeyError(name)


CASES = ["tiny_chain", "mlp_step", "hessian_rosen_32", "hessian_rosen_128",
         "hvp_ratio", "elementwise_big"]
UNIT = {"tiny_chain": ("us", 1e6)}  # others: ms, hvp_ratio: x


def reference_selfcheck():
    """Check the hand-written references by complex-step differentiation,
    Im f(x + ih v) / h: exact to rounding, unlike finite differences."""
    rng = np.random.default_rng(1)

    def dd(f, x, v, h=1e-30):  # directional derivative of f at x along v
        return np.imag(f(x + 1j * h * v)) / h

    def rel(a, b):
        return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

    out = {}
    x, v = rng.uniform(-1, 1, 4), rng.standard_normal(4)
    out["tiny_chain"] = rel(dd(lambda t: chain(np, t), x, v), np_chain_fwd_bwd(x)[1] @ v)
    d = _mlp_inputs(rng, 8, np.float64)
    th = np.concatenate([d[k].ravel() for k in MLP_NAMES])
    v = rng.standard_normal(th.size)
    g = np_mlp_grad_flat(th, d["X"], d["Y"])
    out["mlp_grad"] = rel(dd(lambda t: mlp_loss_flat(np, t, d["X"], d["Y"]), th, v), g @ v)
    out["mlp_hvp"] = rel(dd(lambda t: np_mlp_grad_flat(t, d["X"], d["Y"]), th, v),
                         np_mlp_hvp_flat(th, v, d["X"], d["Y"]))
    x, E = rng.uniform(-2, 2, 16), np.eye(16)
    out["rosen_grad"] = rel(np.array([dd(lambda t: rosen(np, t), x, e) for e in E]),
                            np_rosen_grad(x))
    out["rosen_hess"] = rel(np.stack([dd(np_rosen_grad, x, e) for e in E]), np_rosen_hess(x))
    x, v = rng.standard_normal(64), rng.standard_normal(64)
    out["elementwise"] = rel(dd(lambda t: big(np, t), x, v), np_big_fwd_bwd(x)[1] @ v)
    bad = {k: e for k, e in out.items() if not e < 1e-10}
    if bad:
        raise RuntimeError(f"reference self-check failed: {bad}")
    return out


# ---------------------------------------------------------------------------
# Systems. A workload function takes the case inputs (dict of NumPy arrays),
# does its set-up, and returns step: a zero-argument callable that runs one
# forward+backward to completion (synchronised) and returns the outputs in
# reference order. hvp_ratio returns (grad_step, hvp_step), each returning a
# 1-tuple (flat gradient / flat HVP). Outputs may be any array type with
# .detach(), .to_numpy() or np.asarray support; they are fetched after timing,
# so conversion costs are not timed.
#   workload         inputs                              outputs
#   tiny_chain       x (4,) f64                          loss, dloss/dx
#   mlp_step         X (128,784) Y one-hot (128,10)      loss, dW1, db1, dW2, db2 (f32)
#                    labels int64, W1 b1 W2 b2 (f32)
#   hessian_rosen    x (n,) f64                          H (n, n)
#   hvp_ratio        theta (203530,) v X Y labels (f64)  grad_step: (g,), hvp_step: (Hv,)
#   elementwise_big  x (4e6,) f32                        loss, dloss/dx
# ---------------------------------------------------------------------------

# --- numpy_floor: hand-written forward+backward, no autodiff ----------------
def numpy_tiny_chain(d):
    return lambda: np_chain_fwd_bwd(d["x"])


def numpy_mlp_step(d):
    args = [d[k] for k in (*MLP_NAMES, "X", "Y")]
    return lambda: np_mlp_fwd_bwd(*args)


def numpy_hessian(d):
    return lambda: (np_rosen_hess(d["x"]),)


def numpy_hvp(d):
    th, v, X, Y = d["theta"], d["v"], d["X"], d["Y"]
    return (lambda: (np_mlp_grad_flat(th, X, Y),), lambda: (np_mlp_hvp_flat(th, v, X, Y),))


def numpy_big(d):
    return lambda: np_big_fwd_bwd(d["x"])


# --- PyTorch: eager autograd for first order, torch.func for second order ---
def torch_setup(threads):
    def setup():
        import torch
        if threads:
            torch.set_num_threads(threads)
        return f"torch threads={torch.get_num_threads()}"
    return setup


def torch_tiny_chain(d):
    import torch
    x = torch.tensor(d["x"], requires_grad=True)

    def step():
        loss = chain(torch, x)
        return (loss, *torch.autograd.grad(loss, x))
    return step


def torch_mlp_step(d):
    import torch
    import torch.nn.functional as F
    W = [torch.tensor(d[k], requires_grad=True) for k in MLP_NAMES]
    X, labels = torch.from_numpy(d["X"]), torch.from_numpy(d["labels"])

    def step():
        z = torch.tanh(X @ W[0] + W[1]) @ W[2] + W[3]
        loss = F.cross_entropy(z, labels)
        return (loss, *torch.autograd.grad(loss, W))
    return step


def torch_hessian(d):
    import torch
    x = torch.from_numpy(d["x"])
    hess = torch.func.hessian(lambda t: rosen(torch, t))  # jacfwd(jacrev)
    return lambda: (hess(x),)


def torch_hvp(d):
    import torch
    import torch.nn.functional as F
    th, v = torch.from_numpy(d["theta"]), torch.from_numpy(d["v"])
    X, labels = torch.from_numpy(d["X"]), torch.from_numpy(d["labels"])

    def loss(t):
        W1, b1, W2, b2 = unflatten(t)
        return F.cross_entropy(torch.tanh(X @ W1 + b1) @ W2 + b2, labels)
    grad = torch.func.grad(loss)
    return (lambda: (grad(th),),
            lambda: (torch.func.jvp(grad, (th,), (v,))[1],))  # forward-over-reverse


def torch_big(d):
    import torch
    x = torch.from_numpy(d["x"]).requires_grad_()

    def step():
        loss = big(torch, x)
        return (loss, *torch.autograd.grad(loss, x))
    return step


# --- JAX: the same functions, eager (op by op) or jax.jit-compiled ----------
def jax_setup():
    import jax
    jax.config.update("jax_enable_x64", True)  # f64 cases; f32 inputs stay f32
    return f"jax devices={jax.devices()}"


def _jax_impls(jit):
    def wrap(f):
        import jax
        return jax.jit(f) if jit else f

    def run(f, *args):
        import jax
        return jax.block_until_ready(f(*args))

    def tiny_chain(d):
        import jax
        import jax.numpy as jnp
        vg = wrap(jax.value_and_grad(lambda x: chain(jnp, x)))
        x = jnp.asarray(d["x"])
        return lambda: tuple(run(vg, x))

    def mlp_step(d):
        import jax
        import jax.numpy as jnp
        vg = wrap(jax.value_and_grad(lambda p, X, Y: mlp_loss(jnp, *p, X, Y)))
        p = tuple(jnp.asarray(d[k]) for k in MLP_NAMES)
        X, Y = jnp.asarray(d["X"]), jnp.asarray(d["Y"])

        def step():
            loss, g = run(vg, p, X, Y)
            return (loss, *g)
        return step

    def hessian(d):
        import jax
        import jax.numpy as jnp
        h = wrap(jax.hessian(lambda x: rosen(jnp, x)))  # jacfwd(jacrev)
        x = jnp.asarray(d["x"])
        return lambda: (run(h, x),)

    def hvp(d):
        import jax
        import jax.numpy as jnp
        g = jax.grad(lambda t, X, Y: mlp_loss_flat(jnp, t, X, Y))
        gj = wrap(g)
        hv = wrap(lambda t, v, X, Y: jax.jvp(lambda s: g(s, X, Y), (t,), (v,))[1])
        th, v, X, Y = (jnp.asarray(d[k]) for k in ("theta", "v", "X", "Y"))
        return (lambda: (run(gj, th, X, Y),), lambda: (run(hv, th, v, X, Y),))

    def elementwise(d):
        import jax
        import jax.numpy as jnp
        vg = wrap(jax.value_and_grad(lambda x: big(jnp, x)))
        x = jnp.asarray(d["x"])
        return lambda: tuple(run(vg, x))

    return dict(tiny_chain=tiny_chain, mlp_step=mlp_step, hessian_rosen=hessian,
                hvp_ratio=hvp, elementwise_big=elementwise)


# --- HIPS autograd: NumPy tracing, reverse mode ------------------------------
def autograd_tiny_chain(d):
    import autograd
    import autograd.numpy as anp
    vg = autograd.value_and_grad(lambda x: chain(anp, x))
    return lambda: vg(d["x"])


def autograd_mlp_step(d):
    import autograd
    import autograd.numpy as anp
    vg = autograd.value_and_grad(lambda p: mlp_loss(anp, *p, d["X"], d["Y"]))
    p = tuple(d[k] for k in MLP_NAMES)

    def step():
        loss, g = vg(p)
        return (loss, *g)
    return step


def autograd_hessian(d):
    import autograd
    import autograd.numpy as anp
    h = autograd.hessian(lambda x: rosen(anp, x))
    return lambda: (h(d["x"]),)


def autograd_hvp(d):
    import autograd
    import autograd.numpy as anp
    f = lambda t: mlp_loss_flat(anp, t, d["X"], d["Y"])
    g, hvp = autograd.grad(f), autograd.hessian_vector_product(f)  # reverse-over-reverse
    return (lambda: (g(d["theta"]),), lambda: (hvp(d["theta"], d["v"]),))


def autograd_big(d):
    import autograd
    import autograd.numpy as anp
    vg = autograd.value_and_grad(lambda x: big(anp, x))
    return lambda: vg(d["x"])


# --- micrograd: scalar-only engine -------------------------------------------
def micrograd_tiny_chain(d):
    from micrograd.engine import Value

    def vsin(v):  # micrograd has no sin: added the way its own ops are written
        out = Value(math.sin(v.data), (v,), "sin")

        def _backward():
            v.grad += math.cos(v.data) * out.grad
        out._backward = _backward
        return out

    def step():  # 4 independent scalar chains, one backward over their sum
        xs = [Value(float(a)) for a in d["x"]]
        ys = list(xs)
        for _ in range(CHAIN_STEPS):
            ys = [vsin(y) * 1.01 + 0.1 * y for y in ys]
        loss = sum(ys)
        loss.backward()
        return loss.data, np.array([v.grad for v in xs])
    return step


# --- Taichi autodiff ---------------------------------------------------------
# taichi-ops:   one @ti.kernel per primitive op, kept on a tape and replayed
#               backwards with kernel.grad(): what an op-by-op library on Taichi does.
# taichi-fused: the whole function in one kernel; reverse mode by kernel.grad().
# Both zero the gradient buffers they use on every step (Taichi accumulates).
def taichi_setup():
    import taichi as ti
    ti.init(arch=ti.cpu, offline_cache=False, log_level=ti.WARN, unrolling_limit=0)
    return f"taichi arch=cpu, threads={os.cpu_count()}"


class _TiTape:
    """Minimal tape over Taichi kernels: record launches, replay .grad reversed."""

    def __init__(self, loss, fields, serialize):
        import taichi as ti
        self.loss, self.fields, self.ops = loss, fields, []

        @ti.kernel
        def zero(f: ti.template()):
            ti.loop_config(serialize=serialize)
            for I in ti.grouped(f):
                f[I] = 0

        @ti.kernel
        def seed(loss: ti.template()):  # loss = 0 before forward, dloss/dloss = 1
            loss[None] = 0
            loss.grad[None] = 1
        self.zero, self.seed = zero, seed

    def start(self):
        self.seed(self.loss)

    def __call__(self, kernel, *args):
        self.ops.append((kernel, args))
        kernel(*args)

    def backward(self):
        for f in self.fields:
            self.zero(f.grad)
        for kernel, args in reversed(self.ops):
            kernel.grad(*args)
        self.ops.clear()


class _TiRow:
    """Lazy view of one row of a Taichi field, fetched after timing."""

    def __init__(self, field, row):
        self.field, self.row = field, row

    def to_numpy(self):
        return self.field.to_numpy()[self.row]


def taichi_ops_tiny_chain(d):
    import taichi as ti
    T = ti.field(ti.f64, shape=(4 * CHAIN_STEPS + 1, 4), needs_grad=True)  # a row per op
    L = ti.field(ti.f64, shape=(), needs_grad=True)
    T.from_numpy(np.vstack([d["x"][None], np.zeros((4 * CHAIN_STEPS, 4))]))

    @ti.kernel
    def sin(s: ti.i32, o: ti.i32):
        ti.loop_config(serialize=True)  # 4 elements: skip the thread-pool dispatch
        for i in range(4):
            T[o, i] = ti.sin(T[s, i])

    @ti.kernel
    def scale(s: ti.i32, o: ti.i32, c: ti.f64):
        ti.loop_config(serialize=True)
        for i in range(4):
            T[o, i] = c * T[s, i]

    @ti.kernel
    def add(a: ti.i32, b: ti.i32, o: ti.i32):
        ti.loop_config(serialize=True)
        for i in range(4):
            T[o, i] = T[a, i] + T[b, i]

    @ti.kernel
    def total(s: ti.i32):
        ti.loop_config(serialize=True)
        for i in range(4):
            L[None] += T[s, i]

    tape = _TiTape(L, [T], serialize=True)

    def step():
        tape.start()
        y = 0
        for k in range(CHAIN_STEPS):
            r = 4 * k
            tape(sin, y, r + 1)
            tape(scale, r + 1, r + 2, 1.01)
            tape(scale, y, r + 3, 0.1)
            tape(add, r + 2, r + 3, r + 4)
            y = r + 4
        tape(total, y)
        tape.backward()
        ti.sync()
        return L, _TiRow(T.grad, 0)
    return step


def taichi_ops_big(d):
    import taichi as ti
    n = d["x"].size
    x, t, sq, e, p = (ti.field(ti.f32, shape=n, needs_grad=True) for _ in range(5))
    L = ti.field(ti.f32, shape=(), needs_grad=True)
    x.from_numpy(d["x"])

    @ti.kernel
    def tanh(a: ti.template(), o: ti.template()):
        for i in a:
            o[i] = ti.tanh(a[i])

    @ti.kernel
    def mul(a: ti.template(), b: ti.template(), o: ti.template()):
        for i in a:
            o[i] = a[i] * b[i]

    @ti.kernel
    def negexp(a: ti.template(), o: ti.template()):
        for i in a:
            o[i] = ti.exp(-a[i])

    @ti.kernel
    def total(a: ti.template()):
        for i in a:
            L[None] += a[i]

    tape = _TiTape(L, [x, t, sq, e, p], serialize=False)

    def step():
        tape.start()
        tape(tanh, x, t)
        tape(mul, x, x, sq)
        tape(negexp, sq, e)
        tape(mul, t, e, p)
        tape(total, p)
        tape.backward()
        ti.sync()
        return L, x.grad
    return step


def taichi_ops_mlp_step(d):
    import taichi as ti
    B = d["X"].shape[0]
    n_hid, n_out = d["W1"].shape[1], d["Y"].shape[1]  # [tfgrad] were 256, 10 literally
    f32 = dict(dtype=ti.f32, needs_grad=True)
    X = ti.field(ti.f32, shape=d["X"].shape)  # data: no gradient buffer
    W1, b1, W2, b2 = (ti.field(shape=d[k].shape, **f32) for k in MLP_NAMES)
    Z1, H, Z2 = (ti.field(shape=s, **f32) for s in ((B, n_hid), (B, n_hid), (B, n_out)))
    lab = ti.field(ti.i32, shape=B)
    L = ti.field(ti.f32, shape=(), needs_grad=True)
    for f, k in ((X, "X"), (W1, "W1"), (b1, "b1"), (W2, "W2"), (b2, "b2")):
        f.from_numpy(d[k])
    lab.from_numpy(d["labels"].astype(np.int32))

    @ti.kernel
    def matmul_bias(A: ti.template(), W: ti.template(), b: ti.template(), O: ti.template()):
        # O must be zero on entry. The usual local-accumulator form (s += A*W in a
        # dynamic loop, or O[i,j] += ... in a k loop) segfaults in kernel.grad with
        # Taichi 1.7.4's default ad_stack_size; so: atomic accumulation over (i,j,k).
        for i, j in O:
            O[i, j] += b[j]
        for i, j, k in ti.ndrange(O.shape[0], O.shape[1], A.shape[1]):
            O[i, j] += A[i, k] * W[k, j]

    @ti.kernel
    def tanh(a: ti.template(), o: ti.template()):
        for I in ti.grouped(a):
            o[I] = ti.tanh(a[I])

    @ti.kernel
    def xent(z: ti.template()):  # mean softmax cross-entropy, 10 classes unrolled
        for i in range(z.shape[0]):
            m = z[i, 0]
            for j in ti.static(range(1, n_out)):
                m = ti.max(m, z[i, j])
            s = 0.0
            for j in ti.static(range(n_out)):
                s += ti.exp(z[i, j] - m)
            L[None] += -(z[i, lab[i]] - m - ti.log(s)) / z.shape[0]

    tape = _TiTape(L, [W1, b1, W2, b2, Z1, H, Z2], serialize=False)

    def step():
        tape.start()
        tape.zero(Z1)
        tape.zero(Z2)
        tape(matmul_bias, X, W1, b1, Z1)
        tape(tanh, Z1, H)
        tape(matmul_bias, H, W2, b2, Z2)
        tape(xent, Z2)
        tape.backward()
        ti.sync()
        return L, W1.grad, b1.grad, W2.grad, b2.grad
    return step


def taichi_fused_tiny_chain(d):
    import taichi as ti
    X = ti.field(ti.f64, shape=4, needs_grad=True)
    L = ti.field(ti.f64, shape=(), needs_grad=True)
    X.from_numpy(d["x"])

    @ti.kernel
    def prepare():  # loss = 0, dloss/dloss = 1, zero the gradient (Taichi accumulates)
        L[None], L.grad[None] = 0.0, 1.0
        ti.loop_config(serialize=True)
        for i in range(4):
            X.grad[i] = 0.0

    @ti.kernel
    def f():
        ti.loop_config(serialize=True)
        for i in range(4):
            y = X[i]
            for _ in ti.static(range(CHAIN_STEPS)):  # unrolled: no adstack needed
                y = ti.sin(y) * ti.f64(1.01) + ti.f64(0.1) * y
            L[None] += y

    def step():
        prepare()
        f()
        f.grad()
        ti.sync()
        return L, X.grad
    return step


def taichi_fused_big(d):
    import taichi as ti
    x = ti.field(ti.f32, shape=d["x"].size, needs_grad=True)
    L = ti.field(ti.f32, shape=(), needs_grad=True)
    x.from_numpy(d["x"])

    @ti.kernel
    def prepare():
        L[None], L.grad[None] = 0.0, 1.0
        for i in x:
            x.grad[i] = 0.0

    @ti.kernel
    def f():
        for i in x:
            L[None] += ti.tanh(x[i]) * ti.exp(-x[i] * x[i])

    def step():
        prepare()
        f()
        f.grad()
        ti.sync()
        return L, x.grad
    return step


# ===========================================================================
# PLUG-IN POINT: system name -> entry. To add a system (e.g. tfgrad), write one
# function per workload it supports (signature above) and add an entry:
#   "tfgrad": dict(modules=["tfgrad"],          # importable => available
#                  setup=None,                  # or () -> str, run once in the worker
#                  note="...",                  # footnote under the table
#                  workloads=dict(tiny_chain=..., mlp_step=..., hessian_rosen=...,
#                                 hvp_ratio=..., elementwise_big=...)),
# Workloads left out are shown as "—" (not supported).
# ===========================================================================
SYSTEMS = {
    "numpy_floor": dict(
        modules=["numpy"], setup=None,
        note="hand-written forward+backward in NumPy, no autodiff; default BLAS threads",
        workloads=dict(tiny_chain=numpy_tiny_chain, mlp_step=numpy_mlp_step,
                       hessian_rosen=numpy_hessian, hvp_ratio=numpy_hvp,
                       elementwise_big=numpy_big)),
    "torch": dict(
        modules=["torch"], setup=torch_setup(None),
        note="default threads; torch.autograd.grad (1st order), torch.func.hessian, "
             "torch.func.jvp(grad) for HVP",
        workloads=dict(tiny_chain=torch_tiny_chain, mlp_step=torch_mlp_step,
                       hessian_rosen=torch_hessian, hvp_ratio=torch_hvp,
                       elementwise_big=torch_big)),
    "torch-1t": dict(
        modules=["torch"], setup=torch_setup(1),
        note="as torch, with torch.set_num_threads(1)",
        workloads=dict(tiny_chain=torch_tiny_chain, mlp_step=torch_mlp_step,
                       hessian_rosen=torch_hessian, hvp_ratio=torch_hvp,
                       elementwise_big=torch_big)),
    "jax-eager": dict(
        modules=["jax", "jaxlib"], setup=jax_setup,
        note="no jit (op-by-op dispatch); jax.hessian, jax.jvp(grad) for HVP",
        workloads=_jax_impls(jit=False)),
    "jax-jit": dict(
        modules=["jax", "jaxlib"], setup=jax_setup,
        note="jax.jit of the same transformed functions; compile time is in first_s",
        workloads=_jax_impls(jit=True)),
    "autograd": dict(
        modules=["autograd"], setup=None,
        note="HIPS autograd; autograd.hessian, autograd.hessian_vector_product "
             "(reverse-over-reverse)",
        workloads=dict(tiny_chain=autograd_tiny_chain, mlp_step=autograd_mlp_step,
                       hessian_rosen=autograd_hessian, hvp_ratio=autograd_hvp,
                       elementwise_big=autograd_big)),
    "micrograd": dict(
        modules=["micrograd"], setup=None,
        note="scalar-only engine (tiny_chain as 4 scalar chains; sin added in the "
             "micrograd style, it ships none); no tensors, so nothing else",
        workloads=dict(tiny_chain=micrograd_tiny_chain)),
    "taichi-ops": dict(
        modules=["taichi"], setup=taichi_setup,
        note="Taichi, one kernel per primitive op on a tape replayed with kernel.grad; "
             "mlp_step with naive matmul kernels (atomic accumulation), no BLAS",
        workloads=dict(tiny_chain=taichi_ops_tiny_chain, mlp_step=taichi_ops_mlp_step,
                       elementwise_big=taichi_ops_big)),
    "taichi-fused": dict(
        modules=["taichi"], setup=taichi_setup,
        note="Taichi, whole function in one kernel, kernel.grad; no second order in Taichi",
        workloads=dict(tiny_chain=taichi_fused_tiny_chain, elementwise_big=taichi_fused_big)),
}


# ---------------------------------------------------------------------------
# Harness: timing, checking (runs inside the per-system worker).
# ---------------------------------------------------------------------------
def time_step(step, budget):
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    n, w0 = 0, time.perf_counter()
    while n < 2 or (time.perf_counter() - w0 < 0.25 * budget and n < 50):
        step()
        n += 1
    per = (time.perf_counter() - w0) / n
    # ~budget seconds of repeats, at least 10, at most 2000, and no more than
    # ~3 s for slow cells (but at least 3 repeats)
    reps = int(min(max(budget / per, 10), 2000, max(3, 3.0 / per)))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    q1, med, q3 = statistics.quantiles(ts, n=4, method="inclusive")
    return dict(median_s=med, q1_s=q1, q3_s=q3, min_s=min(ts), reps=reps, first_s=first)


def as_numpy(v):
    if hasattr(v, "detach"):
        v = v.detach()
    if hasattr(v, "to_numpy"):
        return np.asarray(v.to_numpy())
    return np.asarray(v)


def check(outputs, refs, scales, dtype):
    """-> (ok, max scaled error, dtypes seen)."""
    outs = [as_numpy(o) for o in outputs]
    if len(outs) != len(refs):
        return False, float("inf"), []
    worst = 0.0
    for o, r, s in zip(outs, refs, scales or [None] * len(refs)):
        r = np.asarray(r)
        if o.shape != r.shape:
            return False, float("inf"), [str(o.dtype)]
        s = s if s is not None else max(np.max(np.abs(r)), 1e-300)
        worst = max(worst, float(np.max(np.abs(o.astype(np.float64) - r)) / s))
    dtypes = sorted({str(o.dtype) for o in outs})
    return worst <= TOL[dtype], worst, dtypes


def run_worker(name, cases, budget):
    spec = SYSTEMS[name]
    res = dict(system=name, versions={}, cases={}, setup_note=None)
    for m in spec["modules"]:
        try:
            res["versions"][m] = importlib.metadata.version(m)
        except importlib.metadata.PackageNotFoundError:
            res["versions"][m] = None
    res["versions"]["numpy"] = np.__version__
    if spec.get("setup"):
        res["setup_note"] = spec["setup"]()
    for case in cases:
        key, inp, ref, scales, dtype = make_case(case)
        fn = spec["workloads"].get(key)
        if fn is None:
            res["cases"][case] = dict(status="unsupported")
            continue
        r = dict(status="error")
        res["cases"][case] = r
        try:
            built = fn({k: v.copy() for k, v in inp.items()})
            if key == "hvp_ratio":
                grad_step, hvp_step = built
                r["grad"], r["hvp"] = time_step(grad_step, budget), time_step(hvp_step, budget)
                r["ratio"] = r["hvp"]["median_s"] / r["grad"]["median_s"]
                ok1, e1, t1 = check(grad_step(), ref["grad"], None, dtype)
                ok2, e2, t2 = check(hvp_step(), ref["hvp"], None, dtype)
                ok, err, dts = ok1 and ok2, max(e1, e2), sorted(set(t1 + t2))
            else:
                r.update(time_step(built, budget))
                ok, err, dts = check(built(), ref, scales, dtype)
            r.update(status="ok" if ok else "fail", err=err, tol=TOL[dtype],
                     dtypes=dts, expected_dtype=np.dtype(dtype).name)
            if dts and dts != [np.dtype(dtype).name]:
                r["note"] = f"outputs are {dts}, expected {np.dtype(dtype).name}"
        except Exception as exc:  # one failing cell must not sink the rest
            r["error"] = f"{type(exc).__name__}: {exc}"[:500]
        print(f"  {name:13s} {case:18s} {r['status']}", file=sys.stderr, flush=True)
    return res


# ---------------------------------------------------------------------------
# Driver: subprocess per system, markdown table, JSON, comparison.
# ---------------------------------------------------------------------------
def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = None
    try:
        with open("/proc/meminfo") as fh:
            mem = round(int(fh.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return dict(nproc=os.cpu_count(), affinity=len(os.sched_getaffinity(0)), cpu_model=cpu,
                mem_gib=mem, platform=platform.platform(), python=platform.python_version(),
                threads_env={k: os.environ[k] for k in os.environ
                             if k.endswith("NUM_THREADS") or k == "XLA_FLAGS"})


# [tfgrad] the script (and options) a worker subprocess runs; run.py points it at itself.
WORKER_ARGV = [os.path.abspath(__file__)]


def run_system(name, cases, budget, timeout):
    missing = [m for m in SYSTEMS[name]["modules"] if importlib.util.find_spec(m) is None]
    if missing:
        return dict(system=name, skipped=f"not installed: {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        cmd = [sys.executable, *WORKER_ARGV, "--worker", name, "--worker-out", out,
               "--cases", ",".join(cases), "--budget", str(budget)]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return dict(system=name, skipped=f"timed out after {timeout} s")
        sys.stderr.write("".join(l + "\n" for l in p.stderr.splitlines() if l.startswith("  ")))
        if p.returncode != 0 or not os.path.exists(out):
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            return dict(system=name, skipped=f"worker failed (rc={p.returncode}): " + " | ".join(tail))
        with open(out) as fh:
            return json.load(fh)


def fmt_num(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3g}"


def fmt_cell(case, r):
    st = r.get("status")
    if st is None or st == "unsupported":
        return "—"
    if st == "error":
        return "error"
    if st == "not built":  # [tfgrad] a planned system, listed but not run
        return "not built yet"
    mark = "✓" if st == "ok" else "✗"
    if case == "hvp_ratio":
        g, h = r["grad"]["median_s"] * 1e3, r["hvp"]["median_s"] * 1e3
        return f"{r['ratio']:.2f}× {mark} ({fmt_num(g)} / {fmt_num(h)} ms)"
    unit, mult = UNIT.get(case, ("ms", 1e3))
    return f"{fmt_num(r['median_s'] * mult)} {mark}"


def row_label(case):
    if case == "hvp_ratio":
        return "hvp_ratio (× : grad / hvp ms)"
    return f"{case} ({UNIT.get(case, ('ms',))[0]})"


def markdown(results, cases):
    names = [r["system"] for r in results if "cases" in r]
    lines = ["| workload | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names)]
    for case in cases:
        cells = [fmt_cell(case, r["cases"].get(case, {})) for r in results if "cases" in r]
        lines.append(f"| {row_label(case)} | " + " | ".join(cells) + " |")
    lines += ["", "First call (tracing/compilation included), same units:", "",
              "| workload | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for case in cases:
        cells = []
        for r in results:
            if "cases" not in r:
                continue
            c = r["cases"].get(case, {})
            if c.get("status") not in ("ok", "fail"):
                cells.append("—")
            elif case == "hvp_ratio":
                cells.append(f"{fmt_num(c['grad']['first_s'] * 1e3)} / "
                             f"{fmt_num(c['hvp']['first_s'] * 1e3)}")
            else:
                cells.append(fmt_num(c["first_s"] * UNIT.get(case, ("ms", 1e3))[1]))
        lines.append(f"| {row_label(case)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("✓: matches the float64 NumPy reference (max|err|/scale ≤ 1e-9 f64, 2e-4 f32); "
                 "✗: does not; —: not supported.")
    for r in results:
        if "skipped" in r:
            lines.append(f"- **{r['system']}** skipped: {r['skipped']}")
            continue
        extra = [f"{c}: {v.get('error') or v.get('note')}" for c, v in r["cases"].items()
                 if v.get("error") or v.get("note")]
        errs = [f"{c} FAILED err={v['err']:.1e} > tol {v['tol']:.0e}"
                for c, v in r["cases"].items() if v.get("status") == "fail"]
        vers = ", ".join(f"{k} {v}" for k, v in r["versions"].items())
        lines.append(f"- **{r['system']}** ({vers}; {r.get('setup_note') or 'no setup'}): "
                     f"{SYSTEMS.get(r['system'], {}).get('note', '')}"
                     + ("; " + "; ".join(extra + errs) if extra or errs else ""))
    return "\n".join(lines)


def compare(paths):
    """Spread (max/min) of each cell's median across several runs' JSON files."""
    runs = []
    for p in paths:
        with open(p) as fh:
            runs.append({r["system"]: r for r in json.load(fh)["results"] if "cases" in r})
    names = [n for n in runs[0] if all(n in r for r in runs)]
    cases = [c for c in CASES if any(c in r[n]["cases"] for r in runs for n in names)]

    def med(c, case):
        if c.get("status") not in ("ok", "fail"):
            return None
        return c["ratio"] if case == "hvp_ratio" else c["median_s"]

    lines = [f"Spread of medians over {len(paths)} runs (max/min; 1.00 = identical): "
             + ", ".join(paths), "",
             "| workload | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    spreads = []
    for case in cases:
        cells = []
        for n in names:
            v = [med(r[n]["cases"].get(case, {}), case) for r in runs]
            if all(v):
                spreads.append(max(v) / min(v))
                cells.append(f"{spreads[-1]:.2f}")
            else:
                cells.append("—")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    if spreads:
        spreads.sort()
        lines += ["", f"cells: {len(spreads)}; median spread {statistics.median(spreads):.2f}, "
                      f"max {spreads[-1]:.2f}; within 5%: {sum(x <= 1.05 for x in spreads)}, "
                      f"10%: {sum(x <= 1.10 for x in spreads)}, 15%: {sum(x <= 1.15 for x in spreads)}"]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write all results to this JSON file")
    ap.add_argument("--only", help="comma-separated systems (default: all); see --list")
    ap.add_argument("--cases", help="comma-separated workloads (default: all)")
    ap.add_argument("--budget", type=float, default=1.0,
                    help="seconds of timed repeats per cell (default 1.0)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per system")
    ap.add_argument("--list", action="store_true", help="list systems and workloads")
    ap.add_argument("--compare", nargs="+", metavar="RUN.json",
                    help="print the run-to-run spread of two or more --json outputs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    cases = args.cases.split(",") if args.cases else CASES
    if args.worker:
        with open(args.worker_out, "w") as fh:
            json.dump(run_worker(args.worker, cases, args.budget), fh)
        return
    if args.compare:
        if len(args.compare) < 2:
            ap.error("--compare needs at least two JSON files")
        print(compare(args.compare))
        return
    if args.list:
        for n, s in SYSTEMS.items():
            print(f"{n:13s} {', '.join(s['workloads'])}")
        print("workloads:", ", ".join(CASES))
        return
    names = args.only.split(",") if args.only else list(SYSTEMS)
    unknown = [n for n in names if n not in SYSTEMS] + [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"unknown system or workload: {unknown}; see --list")

    info = machine_info()
    info["reference_selfcheck"] = reference_selfcheck()
    print(f"machine: {info['nproc']} cpus, {info['cpu_model']}, python {info['python']}",
          file=sys.stderr)
    results = []
    for n in names:
        t0 = time.perf_counter()
        results.append(run_system(n, cases, args.budget, args.timeout))
        print(f"{n}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(markdown(results, cases))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), machine=info, cases=cases,
                           budget_s=args.budget, results=results), fh, indent=1)


if __name__ == "__main__":
    main()
