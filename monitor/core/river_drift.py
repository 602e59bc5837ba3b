"""river's ADWIN, imported without the example data sets that ``river.drift`` loads with it.

``river.drift`` imports ``river.drift.datasets``, and through it pandas (and scikit-learn where it is installed):
about 100 MB of resident memory and a second of start-up in every monitor process, for code the monitor never runs.
Here that one module is held out while ``river.drift`` loads; importing it later still gives the real one.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

_DATASETS = "river.drift.datasets"


def _drift_without_datasets() -> types.ModuleType:
    """``river.drift``, its data sets left unimported (all of it, as usual, if it was imported already or a
    river release needs more of the data sets' module than its name)."""
    if "river.drift" in sys.modules or _DATASETS in sys.modules:
        return importlib.import_module("river.drift")
    # Imported when the monitor's modules load, before any thread of its own starts: another thread importing
    # the data sets during these lines would get the placeholder.
    placeholder = types.ModuleType(_DATASETS)
    sys.modules[_DATASETS] = placeholder
    try:
        drift = importlib.import_module("river.drift")
    except Exception:  # a release that reads more of its data sets while it loads: all of it, as usual
        for name in [m for m in sys.modules if m == "river.drift" or m.startswith("river.drift.")]:
            del sys.modules[name]
        sys.modules.pop(_DATASETS, None)
        return importlib.import_module("river.drift")
    finally:
        if sys.modules.get(_DATASETS) is placeholder:
            del sys.modules[_DATASETS]
    if getattr(drift, "datasets", None) is placeholder:
        delattr(drift, "datasets")  # `from river.drift import datasets` then imports the real module
    return drift


if TYPE_CHECKING:
    from river.drift import ADWIN
else:
    ADWIN = _drift_without_datasets().ADWIN

__all__ = ["ADWIN"]
