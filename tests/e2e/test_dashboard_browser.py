"""The dashboard in a real headless Chromium: broker + monitor in-process, traffic with an injected drift.

Shows the firing alert with its recommended action, the model's health in words, the drifting stream,
sparklines from the in-memory history; saves a screenshot to ``artifacts/e2e/dashboard.png`` (and to
``docs/dashboard.png`` when that file is missing or ``MONITOR_UPDATE_SCREENSHOT=1``).

The history comes from traffic in chunks, each processed and sampled (read back from /api/history) before
the next: the sparklines depend on what the monitor did, not on how long the test slept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from monitor.app import Monitor
from monitor.simulate import Drift, TrafficGenerator

from .conftest import config_for, produce, scrape_metrics, total, wait_consumed, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _chromium(user_data_dir: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument("--window-size=1400,1000")
    # An explicit driver path: selenium-manager never downloads anything.
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


CHUNK = 2_000
MAX_DRIFT_CHUNKS = 30  # the drift is found within a few chunks; this bounds the loop by input, not by time


def _traffic(broker, names, gen: TrafficGenerator, n: int, start: float) -> None:
    preds, labels = [], []
    for ev in gen.predictions(n, start_time=start, rate=200.0):
        ev["timestamp"] = start + (gen.produced - 1) / 200.0
        preds.append((ev["prediction_id"].encode(), orjson.dumps(ev)))
        label = gen.label_for(ev)
        if label is not None:
            labels.append((ev["prediction_id"].encode(), orjson.dumps(label)))
    produce(broker.bootstrap, names["predictions"], preds)
    produce(broker.bootstrap, names["labels"], labels)


def _api(base: str, path: str) -> Any:
    return json.loads(urllib.request.urlopen(f"{base}{path}", timeout=5).read())


def _sample_times(base: str) -> list[float]:
    """Times of the churn/v1 history samples the dashboard draws its sparklines from (/api/history)."""
    series = _api(base, "/api/history")["series"].get("churn/v1", {})
    return [p[0] for p in series.get("max_drift_effect", [])]


def _sampled_after(base: str, since: float, n: int = 1) -> None:
    """Wait until the history holds ``n`` samples taken after ``since`` (the same wall clock as the sampler)."""
    wait_until(
        lambda: sum(1 for t in _sample_times(base) if t > since) >= n,
        what=f"{n} history sample(s) after t={since:.3f}",
    )


def _firing(base: str) -> list[dict]:
    """The firing income/SG alert events, from /api/alerts as the dashboard reads them."""
    return [
        a
        for a in _api(base, "/api/alerts?limit=200")["alerts"]
        if a["status"] == "firing" and a["subject"] == "income" and a["segment"] == {"country": "SG"}
    ]


def test_dashboard_shows_the_firing_alert_in_chromium(broker, topics, require):
    require(tools=("chromium", "chromedriver"), modules=("selenium",))
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    names = topics(partitions=3)
    mon = Monitor(
        config_for(broker, names),
        consumer_overrides={"fetch.wait.max.ms": 10},
        history_interval_s=0.5,
        history_points=240,
    ).start()
    driver = None
    user_data = tempfile.mkdtemp(prefix="chromium-e2e-")
    try:
        assert mon.wait_ready(30), "monitor did not get partitions"
        base = f"http://127.0.0.1:{mon.http.port}"
        gen = TrafficGenerator(seed=11)
        t0 = 1_767_225_600.0
        produced = 0

        def chunk(start: float) -> None:
            """One chunk of traffic, processed (its alerts published) and sampled into the history."""
            nonlocal produced
            _traffic(broker, names, gen, CHUNK, start)
            produced += CHUNK
            wait_until(
                lambda: total(scrape_metrics(mon.http.port), "monitor_events_total") >= produced,
                what=f"the monitor processed {produced:,} predictions",
            )
            _sampled_after(base, time.time())

        for _ in range(6):  # baseline in chunks, so the sparklines have a history
            chunk(t0)
        gen.drifts.append(Drift("income", {"country": "SG"}, scale=1.6))
        for _ in range(MAX_DRIFT_CHUNKS):
            chunk(t0 + 60.0)
            if _firing(base):
                break
        alert = _firing(base)
        assert alert, f"no firing income/SG alert; recent: {[a['key'] for a in _api(base, '/api/alerts')['alerts']]}"
        assert alert[0]["recommendation"] == "investigate"
        _sampled_after(base, time.time(), 3)  # a few more history points after the alert
        wait_consumed(broker.bootstrap, mon.config.kafka.group_id, [names["predictions"], names["labels"]])
        assert total(scrape_metrics(mon.http.port), "monitor_events_total") == produced

        overview = json.loads(urllib.request.urlopen(f"{base}/api/overview", timeout=5).read())
        churn = next(m for m in overview["models"] if m["model"] == "churn")
        assert churn["health"] in ("watch", "act")

        driver = _chromium(user_data)
        driver.get(base + "/")
        wait = WebDriverWait(driver, 60)  # a condition, so a generous bound costs nothing when things go well
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") == "true")

        badge = driver.find_element(By.CSS_SELECTOR, 'article[data-model="churn/v1"] .badge[data-health]')
        assert badge.text.strip().lower() in ("watch", "act")
        rows = driver.find_elements(By.CSS_SELECTOR, "#alerts tbody tr.firing")
        texts = [r.text for r in rows]
        assert any("income" in t.lower() and "country=SG" in t for t in texts), texts
        assert any("Investigate" in t for t in texts), texts
        drift_rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#drift tr.firing")]
        assert any(t.startswith("income country=SG") for t in drift_rows), drift_rows
        assert "No fairness attributes configured." in driver.find_element(By.ID, "fairness").text
        kpis = [k.text for k in driver.find_elements(By.CSS_SELECTOR, 'article[data-model="churn/v1"] .kpi')]
        shown = next(k for k in kpis if k.startswith("Estimated accuracy"))
        low, high = churn["estimated_accuracy_band"]  # nothing arrives after wait_consumed: the same numbers
        assert f"{100 * churn['estimated_accuracy']:.1f}% ({100 * low:.1f}%–{100 * high:.1f}%)" in shown, shown
        lines = driver.find_elements(By.CSS_SELECTOR, 'article[data-model="churn/v1"] svg.spark polyline')
        assert len(lines) >= 3, "expected sparklines drawn from the history"

        height = driver.execute_script("return document.documentElement.scrollHeight")
        target = min(max(int(height) + 40, 1000), 4000)
        driver.set_window_size(1400, target)
        wait.until(lambda d: d.get_window_size()["height"] == target)
        # Two animation frames: the page has been laid out and painted at the new size.
        driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        docs = ROOT / "docs" / "dashboard.png"
        if not docs.exists() or os.environ.get("MONITOR_UPDATE_SCREENSHOT") == "1":
            docs.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, docs)
    finally:
        if driver is not None:
            driver.quit()
        mon.stop()
        shutil.rmtree(user_data, ignore_errors=True)
