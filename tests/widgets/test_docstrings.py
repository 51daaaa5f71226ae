"""Every ``>>>`` example in tfgrad_widgets' docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tfgrad
import tfgrad_widgets

MODULES = sorted(m.name for m in pkgutil.walk_packages(tfgrad_widgets.__path__, "tfgrad_widgets."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    with tfgrad.use_backend("numpy"):  # the examples draw; the numbers come from the core
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_examples_exist():
    found = sum(len(doctest.DocTestFinder().find(importlib.import_module(n))) for n in MODULES)
    assert found >= 6
