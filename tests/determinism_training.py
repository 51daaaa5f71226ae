"""A small training loop whose bits tests/test_determinism.py compares: in the test process and,
run as a script (``python determinism_training.py THREADS``), in a child process with THREADS
threads for Taichi (and BLAS, through the environment the test gives it)."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

import tfgrad as tg
import tfgrad.determinism as det

SEED = 11


def train(steps: int = 4) -> str:
    """A SHA-256 of the last loss, gradient and weights of a 784-128-10 tanh MLP trained on 64
    examples by plain SGD (big enough that OpenBLAS splits its matmuls between threads)."""
    data = det.generator("data")
    X = data.normal((64, 784), dtype=tg.float32)
    Y = data.normal((64, 10), dtype=tg.float32)
    W1 = det.generator("init/W1").normal((784, 128), std=0.05, dtype=tg.float32)
    W2 = det.generator("init/W2").normal((128, 10), std=0.05, dtype=tg.float32)

    def loss(W1, W2):
        return tg.mean((tg.matmul(tg.tanh(tg.matmul(X, W1)), W2) - Y) ** 2)

    step = tg.value_and_grad(loss, argnums=(0, 1))
    for _ in range(steps):
        value, (g1, g2) = step(W1, W2)
        W1, W2 = W1 - 0.1 * g1, W2 - 0.1 * g2
    arrays = (value.numpy(), g1.numpy(), W1.numpy(), W2.numpy())
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def big_kernels() -> str:
    """A SHA-256 of reductions and a matmul large enough that Taichi runs them as parallel
    loops (over 2**19 elements; the training loop's are serial), in float32."""
    rng = det.generator("big")
    x = rng.normal((1100, 1000), dtype=tg.float32)
    a = rng.normal((256, 1024), dtype=tg.float32)
    b = rng.normal((1024, 256), dtype=tg.float32)
    results = (tg.sum(x), tg.sum(x, axis=0), tg.sum(x, axis=1), tg.matmul(a, b))
    return hashlib.sha256(b"".join(r.numpy().tobytes() for r in results)).hexdigest()


def main(threads: int, deterministic: bool = True) -> dict:
    """The bits of a fresh run with ``threads`` Taichi threads: training on Taichi (auto
    dispatch) and NumPy, the big kernels on Taichi, and the operation seed of "init/W1"."""
    det.set_deterministic(deterministic, seed=SEED)
    out = {"seed": det.operation_seed("init/W1")}
    tg.init("taichi", dispatch="auto", cpu_max_num_threads=threads)
    out["taichi"] = train()
    out["kernels"] = big_kernels()
    tg.init("numpy")
    out["numpy"] = train()
    return out


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), deterministic=sys.argv[2:] != ["default"])))
