"""The command line refuses a bad config at start, naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_bad_config_file_fails_naming_the_field(tmp_path):
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[kafka]\nbootstrap_servers = "b:9092"\n[alerts]\ncooldown_s = -5\n')
    res = _run("check-config", "--config", str(cfg))
    assert res.returncode == 2
    assert "alerts.cooldown_s" in res.stderr


def test_bad_environment_override_fails_naming_the_field():
    res = _run("check-config", env={"MONITOR_HTTP__PORT": "not-a-port"})
    assert res.returncode == 2 and "http.port" in res.stderr


def test_run_without_bootstrap_servers_says_what_to_set():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    res = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 2 and "MONITOR_KAFKA__BOOTSTRAP_SERVERS" in res.stderr


def test_good_config_passes():
    res = _run("check-config", "--config", str(ROOT / "deploy" / "monitor.toml"))
    assert res.returncode == 0, res.stderr
