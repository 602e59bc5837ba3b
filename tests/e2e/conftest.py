"""Fixtures of the end-to-end tests: the real broker of the integration tests, and external tools.

The tests here need programs outside the virtualenv: Chromium and its WebDriver (Debian ``chromium``,
``chromium-driver``, driven by selenium) and ``promtool`` (Debian ``prometheus``). On a developer's
machine without them they are skipped and the end of the run says which tests were left out and the one
command that installs everything. When ``CI`` is set (any value but empty, ``0`` or ``false``), a
missing tool fails the test instead: CI must never silently skip them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest

from ..integration.conftest import (  # noqa: F401  (fixtures and the shared wait helpers)
    broker,
    config_for,
    produce,
    read_to_end,
    scrape_metrics,
    topics,
    total,
    wait_consumed,
    wait_until,
)

INSTALL_COMMAND = "make e2e-deps"
INSTALL_DETAIL = (
    "apt-get install -y --no-install-recommends chromium chromium-driver prometheus && .venv/bin/pip install selenium"
)
_left_out: list[tuple[str, str]] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(tools: tuple[str, ...], modules: tuple[str, ...]) -> list[str]:
    missing = [t for t in tools if shutil.which(t) is None]
    missing += [f"python module {m}" for m in modules if importlib.util.find_spec(m) is None]
    return missing


@pytest.fixture
def require(request: pytest.FixtureRequest):
    """``require(tools=(...), modules=(...))``: skip (developer) or fail (CI) when something is missing."""

    def check(tools: tuple[str, ...] = (), modules: tuple[str, ...] = ()) -> None:
        missing = _missing(tools, modules)
        if not missing:
            return
        what = ", ".join(missing)
        if in_ci():
            pytest.fail(f"CI is set and {what} is missing: .ci/run must install it ({INSTALL_DETAIL})")
        _left_out.append((request.node.nodeid, what))
        pytest.skip(f"{what} not installed; install with: {INSTALL_COMMAND}")

    return check


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _left_out:
        return
    tr = terminalreporter
    tr.section("end-to-end tests left out", sep="=", yellow=True, bold=True)
    for nodeid, what in _left_out:
        tr.write_line(f"LEFT OUT {nodeid}  (missing: {what})")
    tr.write_line(f"Install what they need with one command:  {INSTALL_COMMAND}")
    tr.write_line(f"  (it runs: {INSTALL_DETAIL}; CI runs them always, see .ci/run)")
