"""The notebooks are committed with their widgets' state, which carries each widget's front end
(JupyterLab draws a trusted notebook's widgets from it when no kernel runs): it must be the
front end the package ships now, so a change to widgets/static/ means executing them again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tfgrad_widgets import ChartWidget, TapeWidget

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
STATE = "application/vnd.jupyter.widget-state+json"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_widgets_carry_the_current_front_end(path):
    metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
    models = metadata.get("widgets", {}).get(STATE, {}).get("state", {}).values()
    ours = [m["state"] for m in models if m["model_name"] == "AnyModel"]
    current = {TapeWidget._esm: TapeWidget._css, ChartWidget._esm: ChartWidget._css}
    for state in ours:
        assert state["_esm"] in current and state["_css"] == current[state["_esm"]], (
            f"{path.name} was saved with another version of the widgets' front end: execute it "
            "again (the front end in widgets/static/ changed)"
        )
