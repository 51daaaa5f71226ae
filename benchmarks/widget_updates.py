"""What a TapeWidget sends, and how fast it updates, for a 500-node tape.

    python benchmarks/widget_updates.py

Kernel side (ipywidgets' dummy comm, no browser): the bytes the widget sends once (its state:
the graph and every frame), the bytes each step sends, and how many steps a second Python can
push unthrottled; then a 2-second burst through the throttle (the default 50 ms).

Browser side (only where the system Chromium is found, as the browser tests find it): the
widget's front end in a blank page with a stand-in model (tests/browser/kit_page.py), stepped
through every frame; each step is the view's update plus a forced layout, so steps per second
is what the drawing itself sustains.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from ipywidgets.widgets.tests.utils import setup_test_comm, teardown_test_comm

import tfgrad as tg
from tfgrad_widgets import TapeWidget

BROWSER_TESTS = Path(__file__).resolve().parents[1] / "tests" / "browser"


def long_chain(x):
    y = x
    for _ in range(166):  # 2 op nodes + 1 constant node a step: 1 + 3 * 166 = 499 nodes
        y = tg.sin(y) * 1.01
    return y


def wire_bytes(message) -> int:
    return len(json.dumps(message, separators=(",", ":")).encode())


def kernel_side() -> TapeWidget:
    setup_test_comm()
    try:
        widget = TapeWidget(long_chain, 0.5, min_interval=0.0)
        state = widget.get_state()
        print(f"nodes: {len(widget.graph.nodes)}, steps: {widget.n_steps}")
        print(f"sent once: {wire_bytes(state):,} bytes of state, of which data "
              f"{wire_bytes(state['data']):,} (graph and frames), front end "
              f"{wire_bytes(state['_esm']) + wire_bytes(state['_css']):,}")  # fmt: skip
        messages = widget.comm.messages
        messages.clear()
        start = time.perf_counter()
        for step in range(1, widget.n_steps):
            widget.step = step
        elapsed = time.perf_counter() - start
        sizes = [wire_bytes(kwargs["data"]) for _, kwargs in messages]
        print(f"unthrottled: {len(messages) / elapsed:,.0f} updates/s "
              f"({elapsed / len(messages) * 1e6:.0f} µs each), bytes per update: median "
              f"{statistics.median(sizes):.0f}, max {max(sizes)}")  # fmt: skip
        throttled = TapeWidget(long_chain, 0.5)  # min_interval 0.05 s
        messages = throttled.comm.messages
        messages.clear()
        start, step = time.perf_counter(), 0
        while time.perf_counter() - start < 2.0:  # a 2-second burst, as fast as Python goes
            throttled.step = step % throttled.n_steps
            step += 1
        elapsed = time.perf_counter() - start
        print(f"throttled burst: {step:,} step changes in {elapsed:.1f} s -> {len(messages)} "
              f"messages ({len(messages) / elapsed:.1f}/s; the last one waits for the event "
              f"loop, which a script does not run)")  # fmt: skip
        return widget
    finally:
        teardown_test_comm()


def browser_side(widget: TapeWidget) -> None:
    sys.path.insert(0, str(BROWSER_TESTS))
    from kit_page import load_front_end, render_view
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM_ARGS, find_chromium

    chromium = find_chromium()
    if chromium is None:
        print("browser: no Chromium found (sudo apt-get install -y chromium), not measured")
        return
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        load_front_end(page, TapeWidget, width=840)
        start = time.perf_counter()
        render_view(page, widget.get_state())
        page.evaluate("() => document.querySelector('svg.tf-graph').getBoundingClientRect()")
        first = time.perf_counter() - start
        runs = []
        for _ in range(3):
            runs.append(page.evaluate("""(n) => {
                const svg = document.querySelector('svg.tf-graph');
                const t0 = performance.now();
                for (let step = 0; step < n; step++) {
                    model.set('step', step);
                    svg.getBoundingClientRect();  // force the layout each step would get
                }
                return (performance.now() - t0) / n;
            }""", widget.n_steps))  # fmt: skip
        print(f"browser: first drawing of the 499-node graph {first * 1e3:.0f} ms; a step "
              f"{statistics.median(runs):.2f} ms (median of 3 passes over {widget.n_steps} "
              f"steps) -> {1e3 / statistics.median(runs):,.0f} steps/s")  # fmt: skip
        browser.close()


def main() -> None:
    tg.init("numpy")  # the widget's cost, not the kernels'
    widget = kernel_side()
    browser_side(widget)


if __name__ == "__main__":
    main()
