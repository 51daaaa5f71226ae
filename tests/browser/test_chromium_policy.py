"""What the browser tier does about Chromium, checked without one (these tests run everywhere):
use the system's; if it is missing, install it only under CI=true and say so; otherwise skip,
naming the command that installs it."""

from __future__ import annotations

import pytest

from conftest import INSTALL_COMMAND, chromium_or_skip


def test_an_installed_chromium_is_used_as_it_is():
    installs = []
    path = chromium_or_skip(lambda: "/usr/bin/chromium", installs.append, print, ci=True)
    assert path == "/usr/bin/chromium" and installs == []


def test_outside_ci_a_missing_chromium_skips_and_says_how_to_install_it():
    installs = []
    with pytest.raises(pytest.skip.Exception) as skipped:
        chromium_or_skip(lambda: None, installs.append, print, ci=False)
    assert installs == []  # the system is left alone
    assert "browser tests did not run" in str(skipped.value)
    assert f"`{INSTALL_COMMAND}`" in str(skipped.value)


def test_under_ci_a_missing_chromium_is_installed_and_the_log_says_so():
    found: list[str | None] = [None]
    said: list[str] = []

    def install(say):  # stands in for apt-get
        say("installing")
        found[0] = "/usr/bin/chromium"

    path = chromium_or_skip(lambda: found[0], install, said.append, ci=True)
    assert path == "/usr/bin/chromium" and said == ["installing"]
