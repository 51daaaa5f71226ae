"""Every ``>>>`` example in tfgrad's docstrings runs and prints what it shows."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tfgrad

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(tfgrad.__path__, "tfgrad.")
    if ".backends.taichi" not in m.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(backend, name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_examples_exist():
    found = sum(
        len(doctest.DocTestFinder().find(importlib.import_module(name))) for name in MODULES
    )
    assert found >= 10
