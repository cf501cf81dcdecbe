"""A stall watchdog: end this process when the engine returns nothing for too long.

A generation engine can hang without an error (a wedged NCCL collective, a remote endpoint that
keeps the socket open and answers nothing): the call never returns, and the pod would hold its
GPU until the task's timeout, days later. :func:`stall_guard` arms a timer around one call; if
the call is still running at the limit, the timer writes one clear line to stderr and ends the
process with :data:`STALL_EXIT_CODE`. It has to end the process: the hung call may sit in native
code, where no Python exception can reach it. A shard's work is committed part by part (markers),
so the KFP retry resumes where it stopped and every record is written exactly once.

    with stall_guard(1800, "augment shard 3"):
        results = stream.poll()
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["STALL_EXIT_CODE", "stall_guard"]

STALL_EXIT_CODE = 75  # EX_TEMPFAIL: try again (the retry resumes from the markers)


def _stalled(limit_s: float, what: str) -> None:
    sys.stderr.write(
        f"teacherlm: {what}: the engine returned nothing for {limit_s:g}s (the stall limit): ending with exit "
        f"code {STALL_EXIT_CODE}, so that the task's retry resumes from the last finished part\n"
    )
    sys.stderr.flush()
    os._exit(STALL_EXIT_CODE)


@contextmanager
def stall_guard(limit_s: float, what: str) -> Iterator[None]:
    """End the process (exit code :data:`STALL_EXIT_CODE`) if the block runs longer than ``limit_s`` seconds."""
    timer = threading.Timer(limit_s, _stalled, (limit_s, what))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
