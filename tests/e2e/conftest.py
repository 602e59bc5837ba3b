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

from ..conftest import INSTALL_DETAIL, left_out_reason
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


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(tools: tuple[str, ...], modules: tuple[str, ...]) -> list[str]:
    missing = [t for t in tools if shutil.which(t) is None]
    missing += [f"python module {m}" for m in modules if importlib.util.find_spec(m) is None]
    return missing


@pytest.fixture
def require():
    """``require(tools=(...), modules=(...))``: skip (developer) or fail (CI) when something is missing."""

    def check(tools: tuple[str, ...] = (), modules: tuple[str, ...] = ()) -> None:
        missing = _missing(tools, modules)
        if not missing:
            return
        what = ", ".join(missing)
        if in_ci():
            pytest.fail(f"CI is set and {what} is missing: .ci/run must install it ({INSTALL_DETAIL})")
        pytest.skip(left_out_reason(what))  # tests/conftest.py lists these at the end of the run

    return check
