"""The shipped Prometheus files through the real ``promtool`` (Debian package ``prometheus``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"


def _promtool(*args: str, cwd: Path) -> str:
    promtool = shutil.which("promtool")
    assert promtool
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    return out


def test_promtool_check_rules(require):
    require(tools=("promtool",))
    out = _promtool("check", "rules", "rules/monitor.rules.yml", cwd=PROM)
    assert "SUCCESS" in out


def test_promtool_unit_tests_of_the_rules(require):
    require(tools=("promtool",))
    out = _promtool("test", "rules", "tests/monitor.rules.test.yml", cwd=PROM)
    assert "SUCCESS" in out


def test_promtool_check_config(require):
    require(tools=("promtool",))
    out = _promtool("check", "config", "--syntax-only", "prometheus.yml", cwd=PROM)
    assert "SUCCESS" in out
