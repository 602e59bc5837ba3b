"""The mark for tests that need the compiled loops (monitor/core/_kernels.pyx): skipped where the module was not
built, never in CI, where a missing build fails the run (tests/unit/test_kernels.py)."""

from __future__ import annotations

import os

import pytest

from monitor.core import kernels

compiled = pytest.mark.skipif(not kernels.COMPILED and not os.environ.get("CI"), reason="not built: pip install -e .")
