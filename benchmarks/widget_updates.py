"""How fast the TapeWidget can redraw, and how much each redraw sends, for a 500-node tape.

    python benchmarks/widget_updates.py

Uses ipywidgets' dummy comm (no browser), so it measures the kernel side: building the SVG and
serialising the update message. Unthrottled, every step is drawn; throttled (the default 50 ms),
a fast burst of step changes sends at most one message per interval.
"""

from __future__ import annotations

import json
import time

from ipywidgets.widgets.tests.utils import setup_test_comm, teardown_test_comm

import tfgrad as tg
from tfgrad_widgets import TapeWidget


def long_chain(x):
    y = x
    for _ in range(166):  # 2 op nodes + 1 constant node a step: 1 + 3 * 166 = 499 nodes
        y = tg.sin(y) * 1.01
    return y


def main() -> None:
    tg.init("numpy")  # the widget's cost, not the kernels'
    setup_test_comm()
    try:
        widget = TapeWidget(long_chain, 0.5, min_interval=0.0)
        n_nodes = len(widget.graph.nodes)
        messages = widget.view.comm.messages
        messages.clear()
        start = time.perf_counter()
        for step in range(widget.n_steps):
            widget.step = step
        elapsed = time.perf_counter() - start
        sizes = [len(json.dumps(kwargs.get("data", args))) for args, kwargs in messages]
        print(f"nodes: {n_nodes}, steps: {widget.n_steps}")
        print(
            f"unthrottled: {len(messages) / elapsed:.0f} updates/s "
            f"({elapsed / len(messages) * 1e3:.1f} ms each), "
            f"bytes per update: median {sorted(sizes)[len(sizes) // 2]:,}, max {max(sizes):,}"
        )
        throttled = TapeWidget(long_chain, 0.5)  # min_interval 0.05 s
        messages = throttled.view.comm.messages
        messages.clear()
        start = time.perf_counter()
        step = 0
        while time.perf_counter() - start < 2.0:  # a 2-second burst, as fast as Python goes
            throttled.step = step % throttled.n_steps
            step += 1
        elapsed = time.perf_counter() - start
        print(
            f"throttled burst: {step} step changes in {elapsed:.1f} s -> "
            f"{len(messages)} messages ({len(messages) / elapsed:.1f}/s)"
        )
    finally:
        teardown_test_comm()


if __name__ == "__main__":
    main()
