"""A running monitor keeps the memory a batch freed for the next batch instead of faulting it in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from monitor.allocator import ENVIRONMENT, TUNABLES, settle_allocator

# A fresh process allocates and frees a batch's worth of arrays of a few MB (as the numeric work of 5,000 reference
# events does), once to warm up and then ten times, and prints the minor page faults of those ten rounds (in pages
# of 4 KB: transparent huge pages off for the process, so the count does not depend on the host's setting).
_ROUNDS = """
import ctypes, resource, sys
ctypes.CDLL(None).prctl(41, 1, 0, 0, 0)  # PR_SET_THP_DISABLE: 4 KB pages whatever the host's huge-page setting
import numpy as np
from monitor.allocator import settle_allocator
settled = settle_allocator() if sys.argv[1] == "settled" else False
def batch():
    arrays = [np.ones(n) for n in (300_000, 450_000, 200_000, 600_000, 350_000)]
    del arrays
batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    batch()
print(settled, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k not in (*ENVIRONMENT, TUNABLES)}
    out = subprocess.run(
        [sys.executable, "-c", _ROUNDS, mode], capture_output=True, text=True, check=True, env=env, timeout=120
    ).stdout.split()
    return out[0] == "True", int(out[1])


def test_a_settled_process_reuses_what_a_batch_freed_without_page_faults() -> None:
    settled, faults = _faults("settled")
    glibc = platform.libc_ver()[0] == "glibc"
    assert settled == glibc  # set wherever the C library is glibc (the image, this machine, CI)
    if not glibc:
        return
    _, default = _faults("default")
    assert default > 5_000  # glibc's own thresholds give the pages back and fault them in again each round
    assert faults <= default // 100


def test_an_operators_own_malloc_settings_are_left_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(TUNABLES, raising=False)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    assert settle_allocator() is False
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.setenv(TUNABLES, "glibc.malloc.trim_threshold=1048576")
    assert settle_allocator() is False
