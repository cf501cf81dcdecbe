"""CPU threads for processes that share one machine.

Each torch (OpenMP/MKL) process starts as many math threads as the machine has cores. Two such
processes at once on 2 cores run 4 threads that spin against each other: the demo's two
augmentation shards once took 256 s together with default threads and 106 s with one thread
each (issue 25). So wherever teacherlm starts processes that run at once on one machine (KFP's
local runner for a fan-out's tasks, ``torchrun`` for CPU ranks) it gives each an equal share of
the CPUs through the environment: :func:`thread_env`.

The budget is the CPUs this process may use (affinity mask, capped by the cgroup CPU quota), or
``OMP_NUM_THREADS`` when set: a caller that limits this process limits its children too.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["THREAD_VARS", "cpu_budget", "share", "thread_env", "usable_cpus"]

# OpenMP (torch's intra-op pool), MKL, and the vLLM engine's own setting (engines/vllm.py).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TEACHERLM_CPU_THREADS")


def _cgroup_quota() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by its cgroup CPU quota
    (a pod limited to 2 CPUs on a 64-core node gets 2, not 64)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        count = min(count, int(quota))
    return max(1, count)


def cpu_budget(env: dict[str, str] | None = None) -> int:
    """Threads this process may spend: ``OMP_NUM_THREADS`` if set to a positive number, else
    :func:`usable_cpus`."""
    value = (os.environ if env is None else env).get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else usable_cpus()


def share(budget: int, processes: int) -> int:
    """Threads for each of ``processes`` that run at once within ``budget`` (at least one)."""
    return max(1, budget // max(1, processes))


def thread_env(threads: int) -> dict[str, str]:
    """The variables that set a child process's math threads (torch, MKL, the vLLM engine)."""
    return dict.fromkeys(THREAD_VARS, str(threads))
