"""Widgets without a browser: ipywidgets' dummy comm records every message a widget sends, so
tests count them and measure their size (as ipywidgets' own tests do)."""

from __future__ import annotations

import pytest
from ipywidgets import Widget
from ipywidgets.widgets.tests.utils import setup_test_comm, teardown_test_comm


@pytest.fixture
def comm():
    setup_test_comm()
    yield
    teardown_test_comm()


@pytest.fixture(autouse=True)
def _close_widgets():
    # Widgets left to the garbage collector at interpreter exit make ipywidgets complain.
    yield
    Widget.close_all()
