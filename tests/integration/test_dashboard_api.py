"""The dashboard's files and JSON API over a real socket (no broker needed: the views read empty engines)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from monitor.app import Monitor
from monitor.config import load_config


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.headers["Content-Type"], res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), b""


def _monitor(**http) -> Monitor:
    config = load_config(
        environ={},
        overrides={"kafka": {"bootstrap_servers": "127.0.0.1:1"}, "http": {"host": "127.0.0.1", "port": 0, **http}},
    )
    mon = Monitor(config, history_interval_s=1.0, history_points=3)
    mon.http.start()
    return mon


def test_static_page_and_api_documents():
    mon = _monitor()
    base = f"http://127.0.0.1:{mon.http.port}"
    try:
        code, ctype, body = _get(base + "/")
        assert code == 200 and ctype.startswith("text/html") and b'src="app.js"' in body
        assert _get(base + "/app.js")[1].startswith("text/javascript")
        assert _get(base + "/app.css")[1].startswith("text/css")
        assert _get(base + "/nope.js")[0] == 404

        overview = json.loads(_get(base + "/api/overview")[2])
        assert overview["models"] == [] and overview["fairness"] == [] and overview["alerts"] == []
        assert overview["thresholds"]["numeric_effect"] == 0.5

        mon.recent.extend({"key": f"m/v/data_drift/x{i}/all", "status": "firing"} for i in range(5))
        alerts = json.loads(_get(base + "/api/alerts?limit=2")[2])
        assert [a["key"] for a in alerts["alerts"]] == ["m/v/data_drift/x4/all", "m/v/data_drift/x3/all"]
        assert _get(base + "/api/alerts?limit=many")[0] == 400

        for t in range(10):  # the history keeps history_points per series, no more
            mon.history.record(float(t), {"m/v": {"events": 10.0 * t, "accuracy": 0.9}})
        history = json.loads(_get(base + "/api/history")[2])
        assert history["points"] == 3 and history["interval_s"] == 1.0
        assert [p[0] for p in history["series"]["m/v"]["accuracy"]] == [7.0, 8.0, 9.0]
        assert [p[1] for p in history["series"]["m/v"]["events_per_s"]] == [10.0, 10.0, 10.0]
    finally:
        mon.http.stop()


def test_basic_auth_protects_the_dashboard_and_api(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("pw\n")
    mon = _monitor(basic_auth_user="pm", basic_auth_password_file=str(secret))
    base = f"http://127.0.0.1:{mon.http.port}"
    try:
        for path in ("/", "/app.js", "/api/overview", "/api/history", "/api/alerts"):
            assert _get(base + path)[0] == 401, path
            assert _get(base + path, auth=("pm", "pw"))[0] == 200, path
    finally:
        mon.http.stop()


def test_health_follows_the_legend():
    """Severity alone never makes Act; result kinds and retrain / rollback recommendations do."""
    from monitor.dashboard import health

    drift = {"kind": "data_drift", "severity": "critical", "recommendation": "investigate", "subject": "income"}
    assert health([drift])[0] == "watch"
    assert "accuracy not measured yet" in health([drift])[1]
    assert "accuracy 91.0%" in health([drift], accuracy=0.91)[1]
    regression = health([drift], mae=2.3125)[1]  # a regression model has labels and no accuracy
    assert "mean absolute error 2.312 (labelled, recent)" in regression and "no labels" not in regression
    for kind in ("concept_drift", "performance", "business", "fairness", "retrain_recommended"):
        assert health([drift, {"kind": kind, "severity": "warning", "subject": "x"}])[0] == "act", kind
    assert (
        health([{"kind": "latency", "severity": "warning", "recommendation": "rollback", "subject": "x"}])[0] == "act"
    )
    assert health([{"kind": "schema", "severity": "critical", "subject": "x"}])[0] == "watch"
    assert health([]) == ("healthy", "No open alerts.")


def test_predictions_since_the_change_are_interpolated_in_event_time():
    from monitor.dashboard import count_since

    points = [(100.0, {}), (110.0, {"country=SG": 50}), (130.0, {"country=SG": 250})]
    assert count_since(points, "country=SG", 120.0, 400) == 250  # 150 at t=120
    assert count_since(points, "country=SG", 105.0, 400) == 375  # 25 at t=105 (every count is 0 at the first event)
    assert count_since(points, "country=SG", 90.0, 400) is None  # before anything was counted: not claimed
    assert count_since(points, "country=SG", 140.0, 400) == 150  # after the last point: counted from it
