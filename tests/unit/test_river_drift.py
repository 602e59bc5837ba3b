"""The monitor loads river's ADWIN without the example data sets river.drift imports (pandas, scikit-learn)."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_monitor_process_does_not_import_pandas_or_scikit_learn() -> None:
    loaded = _run(
        "import sys, monitor.app, monitor.replay\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'sklearn'}))"
    )
    assert loaded == "[]"


def test_river_drifts_data_sets_still_import_afterwards() -> None:
    out = _run(
        "from monitor.core import river_drift\n"
        "from river.drift import datasets\n"
        "import river.drift\n"
        "print(type(river_drift.ADWIN()).__name__, hasattr(datasets, 'AirlinePassengers'),\n"
        "      river.drift.datasets is datasets)"
    )
    assert out == "ADWIN True True"
