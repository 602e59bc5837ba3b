"""Hooks for the whole suite: the end of a run names the end-to-end tests left out for a missing tool.

The list comes from the skip reports themselves (tests/e2e/conftest.py skips with a reason that names
what is missing), so it also works when the run is spread over pytest-xdist workers.
"""

from __future__ import annotations

import pytest

INSTALL_COMMAND = "make e2e-deps"
INSTALL_DETAIL = (
    "apt-get install -y --no-install-recommends chromium chromium-driver prometheus && .venv/bin/pip install selenium"
)
NOT_INSTALLED = " not installed; install with: "  # in the skip reason, after what is missing


def left_out_reason(what: str) -> str:
    """The skip reason of a test left out because ``what`` is missing."""
    return f"{what}{NOT_INSTALLED}{INSTALL_COMMAND}"


def _left_out(terminalreporter: pytest.TerminalReporter) -> list[tuple[str, str]]:
    out = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        if NOT_INSTALLED in reason:
            out.append((report.nodeid, reason.removeprefix("Skipped: ").split(NOT_INSTALLED)[0]))
    return out


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    left_out = _left_out(terminalreporter)
    if not left_out:
        return
    tr = terminalreporter
    tr.section("end-to-end tests left out", sep="=", yellow=True, bold=True)
    for nodeid, what in left_out:
        tr.write_line(f"LEFT OUT {nodeid}  (missing: {what})")
    tr.write_line(f"Install what they need with one command:  {INSTALL_COMMAND}")
    tr.write_line(f"  (it runs: {INSTALL_DETAIL}; CI runs them always, see .ci/run)")
