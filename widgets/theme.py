"""The drawing kit's look, in one place: the palette, the text sizes, the grid of a tape graph.

The same numbers reach both drawing sides: :mod:`tfgrad_widgets.svg` (Python, the snapshots)
reads them from here, and the front end (``static/kit.js``) gets them as the constant ``THEME``,
written into its source by :func:`tfgrad_widgets.base.esm_source`. Change a size here and both
pictures change together.

The palette is Okabe and Ito's eight colours, chosen to stay apart under the common forms of
colour blindness (deuteranopia, protanopia, tritanopia); series take them in the order below,
which puts blue and vermillion, the pair that stays apart best, first.

>>> from tfgrad_widgets.theme import PALETTE, THEME
>>> PALETTE[0], THEME["font"]
('#0072B2', 13)
"""

from __future__ import annotations

__all__ = ["PALETTE", "THEME"]

# Okabe & Ito (2008), "Color Universal Design": blue, vermillion, bluish green, reddish purple,
# orange, sky blue, yellow, black. Yellow is last: it is hard to see as a thin line on white.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

THEME: dict = {
    "palette": PALETTE,
    "ink": "#1f2328",  # text
    "muted": "#57606a",  # ticks, secondary text
    "grid": "#d8dee4",
    "frame": "#8c959f",
    "edge": "#9aa4ae",  # the tape graph's edges
    "scope_ink": "#8a4a75",  # a name scope's outline and name: a dark reddish purple
    # Fills of the tape graph: watched inputs, constants, ops, the node of the current step,
    # a name scope's box. Light tints of the palette, so dark text on them stays legible.
    "fill": {
        "input": "#d4e6f4",  # a tint of blue
        "const": "#eef0f2",
        "op": "#ffffff",
        "active": "#fbf3b0",  # a tint of yellow
        "scope": "#f6eaf2",  # a tint of reddish purple
        "box": "#efdbe8",
    },
    "reverse": "#D55E00",  # adjoints travel back in vermillion
    "forward": "#0072B2",  # tangents travel forward in blue
    # The two ends of the heat map scales: diverging blue - white - vermillion (signed values,
    # white at zero), sequential white - blue.
    "diverging": ["#0072B2", "#ffffff", "#D55E00"],
    "sequential": ["#ffffff", "#0072B2"],
    "font": 13,  # px: labels and node text; legible when a 700 px figure is shown at full size
    "small": 12,  # px: tick labels
    "title": 14,  # px: panel titles
    "char": 0.56,  # the width of a character as a fraction of the font size (to fit labels)
    "font_family": "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    "width": 700,  # px: the width a figure is drawn at until the front end reports its own
    "min_panel": 330,  # px: panels sit side by side only when each gets at least this much
    "gap": 16,  # px between panels
    "panel_height": 260,
    # The tape graph: node boxes on a grid of columns (longest path from an input) and rows.
    "node_w": 140,
    "node_h": 58,
    "col_gap": 36,
    "row_gap": 28,
    "pad": 12,
    "min_zoom": 0.75,  # the live view never shrinks a graph below this: 13 px text stays >= 9.75
    "max_view_height": 440,  # px: taller graphs scroll (and pan) inside the view; with the caption
    # and the controls the widget then fits the notebook area of a 720 px high window
    "throttle_ms": 50,  # front end -> kernel: at most one sync per interval while dragging
}
