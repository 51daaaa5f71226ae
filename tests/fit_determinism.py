"""``nn.fit`` in deterministic mode, whose bits tests/test_nn_amp.py compares: in the test process
and, run as a script (``python fit_determinism.py THREADS``), in a child process with THREADS
threads for Taichi (and BLAS, through the environment the test gives it)."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

import tfgrad as tg
import tfgrad.determinism as det
import tfgrad.nn as nn
from tfgrad.amp import AMPConfig, AMPPolicy

SEED = 5


def fit_bits(amp: bool, epochs: int = 1) -> str:
    """A SHA-256 of the losses, the trained weights and the scales of a 64-256-10 MLP fitted by
    Adam to 512 digits in batches of 128, in float32 or under float16 autocast with dynamic
    loss scaling (growing every 2 steps).

    At these shapes the default mode, too, gave the same bits with 1 and 2 threads (measured;
    also with a 1024-128-10 MLP): the test guards fit's own path (batch order, the policy, the
    optimiser) in deterministic mode; the BLAS shapes that do change bits with the thread
    count are test_determinism.py's."""
    x, y = nn.load_digits()
    model = nn.MLP(64, [256, 10], generator=det.generator("init"))
    policy = AMPPolicy(AMPConfig(enabled=True, growth_interval=2)) if amp else None
    history = nn.fit(
        model,
        nn.batches(x[:512], y[:512], 128, shuffle=True, generator=det.generator("batches")),
        nn.cross_entropy,
        nn.Adam(model.state_dict(), lr=3e-3),
        epochs=epochs,
        progress=False,
        amp=policy,
    )
    arrays = [np.array(history.loss)] + [v.numpy() for v in model.state_dict().values()]
    if policy is not None:
        arrays.append(np.array([r.scale for r in policy.stability_metrics().scale_history]))
    return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


def main(threads: int) -> dict:
    det.set_deterministic(True, seed=SEED)
    tg.init("taichi", dispatch="auto", cpu_max_num_threads=threads)
    return {"float32": fit_bits(False), "float16": fit_bits(True)}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
