"""SIGTERM as an exception, so that ``finally`` blocks run when Kubernetes or a user stops a process.

Python's default for SIGTERM ends the process at once: no ``finally``, no ``with`` exit. A task
that holds something outside the process (a TrainJob, a lock object on S3, temp files) turns it
into ``SystemExit(143)`` while it holds it; Ctrl-C (SIGINT) already raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["sigterm_as_exit"]


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(128 + 15)`` inside this block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
