"""The C allocator as a monitor process runs it: freed memory is kept for the next batch, not given back to the
system after each one.

A batch's numeric work allocates arrays of a few MB each (the 300,000 stream values of 5,000 reference events, their
cells, codes and masks), tens of MB in all, and frees them at the batch's end. glibc's malloc serves arrays above a
threshold by mapping fresh pages, and trims the top of its heap once more than twice that threshold lies free there
(both thresholds move with the largest block freed so far). With a batch's many sizes the heap top was trimmed after
nearly every batch, so the next one took a page fault for every 4 KB it wrote again. With the thresholds below, on the
reference workload (2026-12-07, alternating runs): half the page faults (about 72,000 against 134,000 in an engine
phase of 150,000 events), one kernel that writes each value's window bin 0.10 against 0.36 us a row, and end to end
(broker to alerts) 46,100-50,500 against 41,000-45,000 events/s in three pairs, for the same peak RSS.
"""

from __future__ import annotations

import ctypes
import os

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this size come from the heap (glibc's own dynamic threshold stops at this value on 64-bit systems);
# larger ones are still mapped and given back when freed.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# Free memory at the heap's top kept for later batches: about what a few batches of the widest workloads use.
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024
# glibc's own environment variables for the same settings: an operator who set any of them keeps theirs, and so does
# one who set glibc's malloc tunables (GLIBC_TUNABLES=glibc.malloc.trim_threshold=...:...)
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
TUNABLES = "GLIBC_TUNABLES"


def settle_allocator() -> bool:
    """Set the thresholds above for the whole process (:meth:`monitor.app.Monitor.run`, so ``monitor run`` and
    ``monitor demo``, and ``monitor replay`` call it at start; the benchmarks time the engine under it). True when
    both were set. False where the environment sets glibc's own malloc variables or tunables, or the C library has
    no ``mallopt`` (musl, macOS): then nothing changes; or where it refuses one (the first may then be set)."""
    if any(name in os.environ for name in ENVIRONMENT) or "glibc.malloc." in os.environ.get(TUNABLES, ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
