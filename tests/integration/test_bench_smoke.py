"""A small run of the benchmark code, so `make bench` cannot rot; the real figures come from `make bench`."""

from __future__ import annotations

import pytest

from benchmarks.run import main


@pytest.mark.timeout(600)  # mostly waiting: phases in their own processes, real-time traffic, replicas joining
def test_quick_benchmark_run_writes_the_report_and_the_plot(tmp_path):
    out, png = tmp_path / "BENCHMARKS.md", tmp_path / "scaling.png"
    assert main(["--quick", "--out", str(out), "--png", str(png)]) == 0
    text = out.read_text()
    for section in ("| limit: consume + orjson decode |", "| naive river loop |", "| engine on decoded batches |",
                    "| end to end", "## Targets", "## Scaling", "Alert latency", "## Keyed detection",
                    "## Off the reference shape", "| 30% of the feature values null |"):  # fmt: skip
        assert section in text, section
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
