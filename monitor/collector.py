"""The cyclic garbage collector as a monitor process runs it: ``monitor run`` and ``monitor replay`` settle it
at start, and the benchmarks time the engine under the same settings."""

from __future__ import annotations

import gc

# The cyclic collector's thresholds while a monitor runs (Python's are 700, 10, 10). A batch allocates
# containers by the hundred thousand (decoded rows, summaries, join entries, snapshot records) that reference
# counting frees, yet at the defaults they set off a full collection every 70,000 allocations, and each walks
# the join store and whatever a checkpoint holds at that moment: on the reference workload end to end, 23 full
# collections of up to 240 ms took 2.8-3.1 s of a 15 s run. With these, one full collection (80-115 ms) and
# 0.4-0.55 s of collection in all, and 1.26-1.48x the events per second in alternating runs. Cycles are rare
# in the monitor's own data; the young generation still collects them every 50,000 allocations.
COLLECTOR_THRESHOLDS = (50_000, 20, 100)


def settle_collector() -> None:
    """Take what start-up loaded out of the collector's sight, and collect less often (see above). Both are
    settings of the whole process, left as they are when the monitor stops: a process that runs a monitor is
    there for it (the demo and in-process tests keep them too, to no harm). Measured on Python 3.11, whose
    collector is generational; a release whose collector works otherwise may want other numbers.

    What start-up loaded (modules, numpy, scipy, river: about 125,000 objects) never becomes garbage; frozen,
    a full collection scans only the monitor's own state (on the reference workload, about 120-250 ms less
    each, and full collections landing inside checkpoints had decided the longest stall of the consume loop)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
