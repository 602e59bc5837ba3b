"""A bounded CPU hog for `make test-stress`: one busy process per core, for at most ``--seconds``.

The make target starts it and kills it by its process id (a shell trap) when the target ends. It also
stops by itself at the deadline, and each worker stops once its parent is gone, so a hog can never
outlive the run that started it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from types import FrameType


def spin(deadline: float, parent: int) -> None:
    """Busy-loop until ``deadline`` (CLOCK_MONOTONIC, shared by all processes) or until ``parent`` is gone."""
    x = 0
    while time.monotonic() < deadline and os.getppid() == parent:
        for _ in range(100_000):
            x += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600.0, help="stop after this long at the latest")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)")
    args = ap.parse_args(argv)
    deadline = time.monotonic() + args.seconds
    workers = [mp.Process(target=spin, args=(deadline, os.getpid()), daemon=True) for _ in range(args.procs)]
    for w in workers:
        w.start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        for w in workers:
            w.terminate()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"cpu hog: {args.procs} busy processes for at most {args.seconds:.0f} s (pid {os.getpid()})", flush=True)
    for w in workers:
        w.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
