"""First run and errors (issue 15) that need a process, a broker or the HTTP server: Ctrl-C in ``monitor
demo``, ``monitor run --wait-for-broker``, ``monitor generate --drift-after``, HEAD and bad ``limit``."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from monitor.app import Monitor
from monitor.config import load_config
from monitor.io.broker import EmbeddedBroker, free_port
from monitor.io.kafka_clients import ensure_topics

from .conftest import read_to_end, wait_until


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}, **extra}


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as res:
            return int(res.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as res:
            text = res.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def _children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux). A thread may end between listing and reading: its children,
    if any, then belong to a thread still listed (the kernel reparents them within the process)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))  # a zombie is gone


def test_ctrl_c_stops_the_demo_in_seconds_without_traceback(tmp_path: Path) -> None:
    """As a terminal does: SIGINT to the demo's whole process group. The monitor flushes and checkpoints to the
    broker, which the signal did not reach, and only then does the demo stop the broker."""
    port = free_port()
    out = tmp_path / "demo.log"
    log = open(out, "wb")  # closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "demo", "--http-port", str(port), "--drift-after", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        cwd=tmp_path,
        start_new_session=True,  # its own process group, like a shell job
    )
    broker_pids: list[int] = []
    try:
        wait_until(
            lambda: _status(f"http://127.0.0.1:{port}/readyz") == 200 and _metric(port, "monitor_events_total") > 2000,
            what=lambda: f"the demo monitor is ready and processed 2,000 events; output: {out.read_text()[-2000:]}",
        )
        # a thread ending mid-read can hide a child for a moment: read again until the broker shows
        broker_pids = wait_until(lambda: _children(proc.pid), what="the embedded broker listed as a child of the demo")
        assert _status(f"http://127.0.0.1:{port}/") == 200
        os.killpg(proc.pid, signal.SIGINT)
        started = time.monotonic()
        code = proc.wait(timeout=120)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in broker_pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
    text = out.read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "not acknowledged" not in text and "failed" not in text, text[-3000:]
    assert f"dashboard: http://127.0.0.1:{port}/ " in text, text[:2000]
    assert text.index("stopping: the monitor flushes") < text.index("] stopped"), text[-2000:]
    assert not any(_alive(pid) for pid in broker_pids), "the demo left its broker running"
    # issue 15: 5 s or less (32 s before); the bound here is wide for a loaded machine
    assert elapsed < 20, f"the demo took {elapsed:.1f} s to stop after Ctrl-C (target: 5 s); output: {text[-2000:]}"


def test_run_waits_for_a_broker_that_starts_later_when_told_to(tmp_path: Path) -> None:
    """``kafka.broker_wait_s`` is 1 s here, so the second retry line (5 s later) shows --wait-for-broker won."""
    kafka_port, http_port = free_port(), free_port()
    out = tmp_path / "run.log"
    log = open(out, "wb")  # closed in finally
    env = _env(
        MONITOR_KAFKA__BOOTSTRAP_SERVERS=f"127.0.0.1:{kafka_port}",
        MONITOR_KAFKA__BROKER_WAIT_S="1",
        MONITOR_KAFKA__SESSION_TIMEOUT_MS="2000",
        MONITOR_HTTP__HOST="127.0.0.1",
        MONITOR_HTTP__PORT=str(http_port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--wait-for-broker"], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        wait_until(
            lambda: out.read_text().count("does not answer") >= 2 or proc.poll() is not None,
            what=lambda: f"two retry lines; output: {out.read_text()[-2000:]}",
        )
        assert proc.poll() is None, out.read_text()[-2000:]
        assert "retrying, waiting until it does" in out.read_text()
        with EmbeddedBroker(port=kafka_port, log_path=str(tmp_path / "tansu.log")) as broker:
            ensure_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), {"predictions": 1, "labels": 1})
            wait_until(
                lambda: _status(f"http://127.0.0.1:{http_port}/readyz") == 200,
                what=lambda: f"the monitor is ready once the broker answers; output: {out.read_text()[-2000:]}",
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, out.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    assert "Traceback" not in out.read_text()


def test_generate_injects_the_drift_it_documents(broker: EmbeddedBroker, topics: Callable[..., dict[str, str]]) -> None:
    names = topics(partitions=1)
    args = ["--predictions-topic", names["predictions"], "--labels-topic", names["labels"], "--seed", "4"]
    common = ["generate", "--bootstrap-servers", broker.bootstrap, "--rate", "400", "--duration", "2", *args]
    res = subprocess.run(
        [sys.executable, "-m", "monitor", *common, "--drift-after", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "injected drift: income x1.6 in country=SG" in res.stdout, res.stdout
    sent = int(res.stdout.split("produced ")[1].split()[0])
    events = [orjson.loads(m.value() or b"{}") for m in read_to_end(broker.bootstrap, names["predictions"])]
    assert len(events) == sent > 0

    def relative_income(country: str, base: float) -> float:
        """Mean income over the country's base income in the generator (monitor/simulate.py): about 1.03."""
        values = [e["features"]["income"] / base for e in events if e["segments"]["country"] == country]
        return sum(values) / len(values)

    sg, us = relative_income("SG", 4100.0), relative_income("US", 5200.0)
    assert sg > 1.3 * us and 0.85 < us < 1.2, (sg, us)  # x1.6 in SG only


def _request(port: int, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


@pytest.fixture
def served() -> Iterator[Monitor]:
    config = load_config(
        environ={}, overrides={"kafka": {"bootstrap_servers": "127.0.0.1:1"}, "http": {"host": "127.0.0.1", "port": 0}}
    )
    mon = Monitor(config, recent_alerts=50)
    mon.http.start()
    yield mon
    mon.http.stop()


@pytest.mark.parametrize(
    "path", ["/", "/app.js", "/healthz", "/readyz", "/metrics", "/api/overview", "/api/alerts?limit=5", "/nope"]
)
def test_head_answers_like_get_without_a_body(served: Monitor, path: str) -> None:
    port = served.http.port
    get_status, get_headers, get_body = _request(port, "GET", path)
    head_status, head_headers, head_body = _request(port, "HEAD", path)
    assert head_status == get_status
    assert head_body == b""
    assert head_headers["content-type"] == get_headers["content-type"]
    if path.startswith(("/api/overview", "/metrics")):  # generated anew: same headers, possibly another length
        assert int(head_headers["content-length"]) > 0
    else:
        assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))


def test_alerts_limit_outside_1_to_the_cap_is_a_400(served: Monitor) -> None:
    port = served.http.port
    served.recent.extend({"key": f"m/v/data_drift/x{i}/all", "status": "firing"} for i in range(60))
    for limit, expected in (("0", 400), ("-3", 400), ("51", 400), ("1", 200), ("50", 200), ("many", 400)):
        status, headers, body = _request(port, "GET", f"/api/alerts?limit={limit}")
        assert status == expected, (limit, status, body)
        if expected == 400:
            assert headers["content-type"] == "application/json" and b"limit" in orjson.loads(body)["error"].encode()
            assert _request(port, "HEAD", f"/api/alerts?limit={limit}")[0] == 400
        else:
            assert len(orjson.loads(body)["alerts"]) == int(limit)


def test_a_missing_predictions_topic_fails_naming_it(broker: EmbeddedBroker) -> None:
    from monitor.errors import SourceError
    from monitor.io.kafka import MonitorService

    config = load_config(
        environ={}, overrides={"kafka": {"bootstrap_servers": broker.bootstrap, "predictions_topic": "no-such-topic"}}
    )
    with pytest.raises(SourceError, match="'no-such-topic' does not exist on the broker") as info:
        MonitorService(config).check_topics(AdminClient({"bootstrap.servers": broker.bootstrap}), wait_s=1)
    assert info.value.fatal


def _clock(line: str) -> float:
    """Seconds since midnight of a demo line's ``[HH:MM:SS]`` stamp."""
    h, m, s = (int(x) for x in line[1:9].split(":"))
    return 3600 * h + 60 * m + s


def test_the_demo_at_its_defaults_fires_and_resolves_its_alert(tmp_path: Path) -> None:
    """``make demo`` as the README shows it: the drift after 15 s, its alert, the drift removed after 45 s, and
    ALERT RESOLVED within 60 s of that. Three input partitions: the segment's detectors see all of them."""
    port = free_port()
    out = tmp_path / "demo.log"
    with open(out, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "demo", "--http-port", str(port), "--duration", "170"],
            stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
        )  # fmt: skip
        try:
            key = "churn/v1/data_drift/income/country=SG"

            def resolved() -> bool:
                return f"ALERT RESOLVED [info] {key}" in out.read_text()

            wait_until(resolved, 160, lambda: f"the demo resolved its alert; output: {out.read_text()[-2000:]}", 1.0)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0, out.read_text()[-2000:]
    lines = out.read_text().splitlines()
    stamped = [line for line in lines if line.startswith("[")]
    injected = next(i for i, line in enumerate(stamped) if "injected drift" in line)
    fired = next(i for i, line in enumerate(stamped) if f"ALERT FIRING   [critical] {key}" in line)
    removed = next(i for i, line in enumerate(stamped) if "drift removed" in line)
    back = next(i for i, line in enumerate(stamped) if f"ALERT RESOLVED [info] {key}" in line)
    assert injected < fired < removed < back, stamped
    assert _clock(stamped[back]) - _clock(stamped[removed]) <= 60, stamped
    assert sum("ALERT FIRING" in line for line in lines) == 1, "one change, one alert"
    assert "Traceback" not in out.read_text()
