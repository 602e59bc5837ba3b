"""The docs stay true: every setting and every exported metric is documented, and nothing extra; every relative
link in README.md and docs/*.md points to a file that exists, and every ``#anchor`` to a heading it has."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.config import DetectorSettings, MonitorConfig, load_config
from monitor.io.exporter import register
from monitor.io.kafka import MonitorService

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"
METRICS = ROOT / "docs" / "metrics.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Every section of the config, from the config itself (a new section cannot be left out of the docs check);
# ``detectors`` documents its defaults, whose fields per-feature overrides repeat.
SECTIONS = tuple(
    (f.name, DetectorSettings if f.name == "detectors" else type(f.default_factory()))  # type: ignore[misc]  # factories are set
    for f in dataclasses.fields(MonitorConfig)
)
# A row of the settings table that is not one field: per-feature detector overrides.
PATTERN_ROWS = frozenset({"detectors.features.<name>.*"})


def _settings() -> set[str]:
    return {f"{section}.{f.name}" for section, cls in SECTIONS for f in dataclasses.fields(cls)}


def _settings_table() -> str:
    text = CONFIGURATION.read_text(encoding="utf-8")
    start = text.index("| setting | default | meaning |")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    return "\n".join(lines)


def test_every_setting_is_in_the_config_reference():
    table = _settings_table()
    for name in sorted(_settings()):
        assert f"`{name}`" in table, f"{name} is not documented in docs/configuration.md"


def test_the_config_reference_documents_no_other_setting():
    documented = set()
    for row in _settings_table().splitlines()[2:]:
        first_cell = row.split("|")[1]
        documented.update(re.findall(r"`([^`]+)`", first_cell))
    assert documented - PATTERN_ROWS == _settings()


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    register(MonitorService(load_config(environ={})), registry)
    names = set()
    for family in registry.collect():
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    return names


def test_metrics_reference_matches_the_exporter():
    text = METRICS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(monitor_[a-z_]+)` \|", text, flags=re.M))
    assert documented == _exported_names()


def test_readme_links_every_reference_page():
    text = README.read_text(encoding="utf-8")
    for page in ("configuration", "contracts", "alerts", "metrics", "operations", "development"):
        assert f"](docs/{page}.md" in text, f"README does not link docs/{page}.md"
    assert len(text.splitlines()) < 250, "README.md is a short introduction; the reference lives in docs/"


# ------------------------------------------------------------------------------------------- links

_FENCE = re.compile(r"^```.*?^```", flags=re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _links() -> list[tuple[Path, str]]:
    links = []
    for page in PAGES:
        text = _FENCE.sub("", page.read_text(encoding="utf-8"))
        links += [(page, target) for target in _LINK.findall(text)]
    return links


def test_the_slug_is_githubs():
    assert _slug("Event contract (version 1)") == "event-contract-version-1"
    assert _slug("Metrics, HTTP API and dashboard") == "metrics-http-api-and-dashboard"
    assert _slug("`monitor report` and the audit topic") == "monitor-report-and-the-audit-topic"


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda v: v.name if isinstance(v, Path) else v)
def test_relative_links_resolve(page: Path, target: str):
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
        return
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path).resolve() if path else page
    where = f"{page.relative_to(ROOT)}: {target}"
    assert resolved.exists(), f"{where} points to a missing file"
    if anchor:
        assert resolved.suffix == ".md", f"{where} has an anchor into a file that is not Markdown"
        assert anchor in _anchors(resolved), f"{where} names no heading of {resolved.name}"


def test_the_pages_have_relative_links():
    assert len([target for _, target in _links() if "#" in target]) >= 5
