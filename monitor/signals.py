"""SIGINT / SIGTERM handling shared by the long-running commands (``monitor run``, ``generate``, ``demo``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("monitor")


def install_signals(stop: threading.Event, on_force_exit: Callable[[], None] | None = None) -> None:
    """First SIGINT/SIGTERM stops cleanly (flush, commit, close); a second one runs ``on_force_exit`` (the
    demo stops its broker) and exits at once."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            if on_force_exit is not None:
                on_force_exit()
            os._exit(130)
        log.info("stopping (signal %d); press Ctrl-C again to exit at once", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
