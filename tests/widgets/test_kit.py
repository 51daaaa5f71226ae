"""The drawing kit's Python side: numbers as JavaScript writes them, ticks, the layout of a
figure at a given width, legibility at 700 px, and a palette that survives colour blindness.
(That the browser's kit.js draws the same markup is tests/browser/test_kit_agreement.py.)"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tfgrad_widgets.svg import (
    STATIC,
    domain,
    figure_svg,
    fmt,
    linear_ticks,
    log_ticks,
    num,
    text_width,
)
from tfgrad_widgets.theme import PALETTE, THEME

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("value", "text"), [
    (0.1 + 0.2, "0.3"), (12.0, "12"), (-0.04, "0"), (0.25, "0.3"), (-1.25, "-1.2"),
    (1e7, "10000000"), (123.45, "123.5"),
])  # fmt: skip
def test_coordinates_round_half_up_to_a_tenth(value, text):
    # floor(10 v + 0.5) / 10, as kit.js computes it; -1.25 * 10 + 0.5 = -12: rounds up.
    assert num(value) == text


@pytest.mark.parametrize(("value", "digits", "text"), [
    (1.125, 3, "1.13"),  # JavaScript's toFixed: the exact binary value, half up
    (2.675, 3, "2.67"),  # 2.675 is 2.67499999... in binary
    (-0.0, 3, "0"), (0.000123456, 3, "0.000123"), (1.23e-7, 3, "1.23e-7"),
    (123456.0, 3, "123456"), (-12345678.9, 3, "-1.23e7"), (99950.0, 3, "99950"),
    (0.5, 1, "0.5"), (None, 3, ""), (float("nan"), 3, ""),
])  # fmt: skip
def test_labels_are_written_as_javascript_writes_them(value, digits, text):
    assert fmt(value, digits) == text


def test_linear_ticks_are_round_numbers_inside_the_range():
    values, k = linear_ticks(-0.3, 10.7, 5)
    assert values == [0, 2, 4, 6, 8, 10] and k == 0
    values, k = linear_ticks(0.0012, 0.0051, 4)
    assert [f"{v:.4f}" for v in values] == ["0.0020", "0.0030", "0.0040", "0.0050"] and k == -3


def test_log_axes_span_whole_decades():
    assert domain([3, 70_000], "log") == (1, 100_000)
    assert domain([100, 100], "log") == (100, 1000)
    assert [label for _, label in log_ticks(1e-3, 1e5)] == ["10⁻³", "10⁻¹", "10", "10³", "10⁵"]
    assert [label for _, label in log_ticks(2, 80)] == ["2", "5", "10", "20", "50"]
    assert domain([0, -1, 5], "log") == (1, 10)  # values <= 0 have no place on a log axis


def _chart(width: float) -> ET.Element:
    steps = list(range(0, 1001))
    figure = {"columns": 2, "panels": [
        {"id": p, "kind": "xy", "title": p, "x": {"label": "step"}, "y": {"label": "loss"},
         "layers": [{"id": "l", "x": steps, "y": [1000 / (s + 1) for s in steps]}]}
        for p in ("a", "b")]}  # fmt: skip
    return ET.fromstring(figure_svg(figure, {}, width))


def test_panels_sit_side_by_side_only_when_both_have_room():
    wide, narrow = _chart(700), _chart(600)
    offsets = lambda root: [g.get("transform") for g in root.iter(SVG + "g")  # noqa: E731
                            if "tf-panel" in g.get("class", "")]  # fmt: skip
    assert offsets(wide) == ["translate(0,0)", "translate(358,0)"]  # (700 - 16) / 2 + 16
    assert offsets(narrow) == ["translate(0,0)", "translate(0,276)"]  # stacked: 260 + 16


def test_tick_labels_do_not_collide_at_700_px():
    # At 700 px, two panels of 342 px: each axis' labels are further apart than they are wide.
    root = _chart(700)
    panel = next(g for g in root.iter(SVG + "g") if "tf-panel" in g.get("class", ""))
    ticks = [t for t in panel.iter(SVG + "text") if t.get("class") == "tf-tick"]
    x_ticks = [t for t in ticks if t.get("text-anchor") == "middle"]
    assert len(x_ticks) >= 3
    for a, b in itertools.pairwise(x_ticks):
        gap = float(b.get("x")) - float(a.get("x"))
        assert gap > (text_width(a.text, THEME["small"]) + text_width(b.text, THEME["small"])) / 2
    y_ticks = [t for t in ticks if t.get("text-anchor") == "end"]
    assert all(abs(float(a.get("y")) - float(b.get("y"))) > THEME["small"]
               for a, b in itertools.pairwise(y_ticks))  # fmt: skip


def test_text_is_never_smaller_than_12_px():
    css = (STATIC / "kit.css").read_text(encoding="utf-8")
    assert not re.search(r"font-size:\s*\d", css)  # every size is a THEME variable
    assert min(THEME["font"], THEME["small"], THEME["title"]) >= 12


# Machado, Oliveira & Fernandes (2009): full protanopia, deuteranopia and tritanopia, applied
# in linear RGB; distances are CIE76 delta E in CIELAB.
SIMULATIONS = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}  # fmt: skip


def _lab(hex_color: str, simulation) -> np.ndarray:
    c = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    rgb = np.clip(np.array(simulation) @ np.where(c <= 0.04045, c / 12.92,
                                                  ((c + 0.055) / 1.055) ** 2.4), 0, 1)  # fmt: skip
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                       [0.0193, 0.1192, 0.9505]])  # fmt: skip
    xyz = to_xyz @ rgb / np.array([0.95047, 1.0, 1.08883])  # relative to white (D65)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize("vision", ["normal", *SIMULATIONS])
def test_the_palette_stays_apart_under_colour_blindness(vision):
    simulation = np.eye(3) if vision == "normal" else SIMULATIONS[vision]
    distance = lambda a, b: np.linalg.norm(_lab(a, simulation) - _lab(b, simulation))  # noqa: E731
    # the six colours series take first, pairwise; and the sweep's two directions
    assert min(distance(a, b) for a, b in itertools.combinations(PALETTE[:6], 2)) > 15
    assert distance(THEME["reverse"], THEME["forward"]) > 80
