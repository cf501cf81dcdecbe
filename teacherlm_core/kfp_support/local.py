"""Running a compiled pipeline on this machine with KFP's local runner.

    teacherlm pipeline run augment --local --param teacher_model=runs/teacher --param data=runs/data

The runner executes each task as a subprocess in this environment (lightweight components only;
the images' settings, node pools and GPUs mean nothing here and are ignored with one warning).
Its output goes to a log file; the terminal shows one line per task start and end. Retry
policies are dropped (a local failure is not transient). One MLflow parent run holds the stages'
nested runs, and every task sees one KFP-like run id (``TEACHERLM_KFP_RUN_ID``).

Tasks that run at once (a ``ParallelFor``'s iterations, two at a time in KFP's local runner) share
the CPUs: each gets ``budget // tasks at once`` math threads through its environment
(:mod:`teacherlm_core.cpus`); a task that runs alone gets them all. With default threads each
task started one thread per core and they spun against each other (the demo's two augmentation
shards: 256 s together with default threads, 106 s with one thread each on 2 cores).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .. import __version__
from ..cpus import cpu_budget, share, thread_env
from ..errors import TeacherLMError
from ..run_context import RUN_ID_ENV
from .specs import coerce_params, find_spec, load_spec

__all__ = ["run_local"]

log = logging.getLogger(__name__)

_NOOP_WARNING = r"Task .* settings .* have no effect in the current local runner"


class _TaskClock:
    """Task durations from the executors' own log lines (the runner's status lines get lost when
    tasks run in parallel: its logger is not thread-safe). Same-named parallel tasks pair first in,
    first out, which is exact enough for a summary."""

    _START = re.compile(r"\[KFP Executor (\S+ \S+) \w+\]: Looking for component `(\w+)`")
    _END = re.compile(
        r"\[KFP Executor (\S+ \S+) \w+\]: Wrote executor output file to (\S+)/executor_output\.json"
    )
    _FAILED = re.compile(r"Task '([^']+)' finished with status FAILURE")

    def __init__(self) -> None:
        self.started: dict[str, list[float]] = {}
        self.tasks: list[dict[str, Any]] = []

    @staticmethod
    def _time(stamp: str) -> float:
        from datetime import datetime

        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()

    def feed(self, line: str) -> bool:
        """Record a start, an end or a failure; True when ``line`` is a task status line."""
        if m := self._START.search(line):
            self.started.setdefault(m.group(2), []).append(self._time(m.group(1)))
        elif m := self._END.search(line):
            task_dir = Path(m.group(2))
            component = re.sub(r"-\d+$", "", task_dir.name).replace("-", "_")
            loop = re.search(r"iteration-(\d+)$", task_dir.parent.name)
            if self.started.get(component):
                self.tasks.append(
                    {
                        "task": task_dir.name + (f" [{loop.group(1)}]" if loop else ""),
                        "status": "SUCCESS",
                        "seconds": round(self._time(m.group(1)) - self.started[component].pop(0), 1),
                    }
                )
        elif m := self._FAILED.search(line):
            self.tasks.append({"task": m.group(1), "status": "FAILURE", "seconds": None})
        return "Executing task" in line or "finished with status" in line


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextmanager
def _logs_to(path: Path, clock: _TaskClock, show_all: bool) -> Iterator[None]:
    """Send the runner's output (it prints the tasks' output through ``sys.stdout``) and anything
    written to fds 1 and 2 to ``path``; show task status lines (or everything) on the terminal."""
    import builtins
    import threading

    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(2)
    saved_fds = os.dup(1), os.dup(2)
    saved_streams = sys.stdout, sys.stderr, builtins.print
    log_file = open(path, "a", buffering=1, errors="replace")  # noqa: SIM115 (closed below)
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    sys.stdout = sys.stderr = log_file
    stop = threading.Event()

    def tail() -> None:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            while True:
                line = f.readline()
                if not line:
                    if stop.is_set():
                        return
                    time.sleep(0.2)
                    continue
                text = _ANSI.sub("", line.decode(errors="replace")).rstrip()
                if clock.feed(text) or show_all:
                    os.write(terminal, (text + "\n").encode())

    thread = threading.Thread(target=tail, daemon=True)
    thread.start()
    try:
        yield
    finally:
        log_file.flush()
        # The runner patches print() per task, not thread-safely: put back the real one.
        sys.stdout, sys.stderr, builtins.print = saved_streams
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        stop.set()
        thread.join(timeout=5)
        log_file.close()
        for fd in (*saved_fds, terminal):
            os.close(fd)


def run_local(
    name: str,
    params: Mapping[str, str] | None = None,
    *,
    workdir: str | Path | None = None,
    specs: str | Path | None = None,
    cache: bool = False,
    quiet: bool = True,
    typed: Mapping[str, Any] | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Run a compiled pipeline with KFP's local runner (subprocesses in this environment).

    Outputs go under ``<workdir>/kfp/<pipeline>-<time>/``; one MLflow parent run (``run_name``)
    holds a nested run per stage, in the caller's store (``MLFLOW_TRACKING_URI``, else the one
    under ``$TEACHERLM_WORKDIR``, else under ``workdir``). The runner's log goes to ``<workdir>/logs/``; only task status lines are shown
    unless ``quiet`` is false. Retry policies are dropped here: a local failure is not transient.
    ``typed`` are parameters already of the right type (the demo).

    Returns ``{"run_dir", "outputs", "mlflow_run_id", "seconds", "tasks", "log"}``; ``tasks`` has
    one ``{"task", "seconds", "status"}`` per task run.
    """
    import warnings

    from kfp import components, local

    from ..tracking import PARENT_ENV, Tracker, default_tracking_uri
    from ..tracking import workdir as default_workdir

    spec_file = find_spec(name, specs)
    spec = load_spec(spec_file)
    arguments = coerce_params(spec, params or {}) | dict(typed or {})
    root = Path(workdir).resolve() if workdir else default_workdir()
    pipeline_root = root / "kfp"
    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = set(pipeline_root.iterdir())
    env_before = {
        k: os.environ.get(k) for k in ("TEACHERLM_WORKDIR", "MLFLOW_TRACKING_URI", PARENT_ENV, RUN_ID_ENV)
    }
    os.environ[RUN_ID_ENV] = f"local-{uuid.uuid4().hex[:12]}"  # on a cluster: the pod's pipeline/runid label
    # The tasks (subprocesses) share the caller's MLflow store and work dir (default: this one).
    os.environ.setdefault("TEACHERLM_WORKDIR", str(root))
    os.environ["MLFLOW_TRACKING_URI"] = default_tracking_uri()
    log_path = root / "logs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    clock = _TaskClock()
    t0 = time.perf_counter()
    try:
        # The parent run first: it also creates the MLflow store before tasks race to.
        with (
            _tasks_end_with_the_run(),
            Tracker(run_name=run_name or f"pipeline {name}", tags={"teacherlm.pipeline": name}) as tracker,
        ):
            tracker.log_params({"pipeline": name, "version": __version__, **arguments})
            if tracker.run_id:
                os.environ[PARENT_ENV] = tracker.run_id
            local.init(
                runner=local.SubprocessRunner(use_venv=False),
                pipeline_root=str(pipeline_root),
                enable_caching=cache,
                raise_on_error=True,
            )
            component = components.load_component_from_file(str(_without_retries(spec_file, root / "logs")))
            with warnings.catch_warnings():
                # Node pools, accelerators and display names mean nothing on this machine.
                warnings.filterwarnings("ignore", message=_NOOP_WARNING)
                warnings.filterwarnings("ignore", message=".*non-Python base image")  # ours hold this env
                log.warning("local run: node pools, GPUs and resources of the spec are ignored")
                with _logs_to(log_path, clock, show_all=not quiet), _fan_outs_share_the_cpus(cpu_budget()):
                    task = component(**arguments)
            outputs = dict(task.outputs) if hasattr(task, "outputs") else {}
    except RuntimeError as exc:
        said = _task_error(log_path)
        raise TeacherLMError(
            f"{_plain(str(exc))}{f'; it said: {said}' if said else ''} (full log: {log_path})"
        ) from None
    finally:
        for key, value in env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    new = sorted(set(pipeline_root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    return {
        "run_dir": str(new[-1]) if new else None,
        "outputs": outputs,
        "mlflow_run_id": tracker.run_id,
        "seconds": time.perf_counter() - t0,
        "tasks": clock.tasks,
        "log": str(log_path),
    }


@contextmanager
def _fan_outs_share_the_cpus(budget: int) -> Iterator[None]:
    """While a fan-out's tasks run at once, start each with ``share(budget, at once)`` threads.

    KFP's local runner (kfp 2.17) runs a ``ParallelFor`` through ``ParallelExecutor`` (at most
    ``conservative_max`` iterations at once, fewer with a parallelism limit or fewer items) and
    starts every task with ``run_local_subprocess(command, env_vars)``: both are wrapped here, for
    this run only. The task's own environment variables win over the share. Without these hooks
    (another kfp) tasks run with default threads, as before, and a warning says so.
    """
    try:
        from kfp.local import subprocess_task_handler as handler
        from kfp.local.orchestrator.enhanced_dag_orchestrator import ParallelExecutor
    except ImportError:
        handler = ParallelExecutor = None
    if (
        handler is None
        or not hasattr(handler, "run_local_subprocess")
        or not hasattr(ParallelExecutor, "execute_parallel_tasks")
    ):
        log.warning(
            "this kfp's local runner has no hooks for thread shares: parallel tasks use default threads"
        )
        yield
        return
    shares: list[int] = []  # threads per task of the fan-outs running now, innermost last
    real_run, real_fan_out = handler.run_local_subprocess, ParallelExecutor.execute_parallel_tasks

    def fan_out(self, tasks, *args, **kwargs):
        limit = kwargs.get("parallelism_limit", 0)
        at_once = min(limit if limit > 0 else self.max_workers, self.conservative_max, len(tasks))
        shares.append(share(shares[-1] if shares else budget, at_once))
        try:
            return real_fan_out(self, tasks, *args, **kwargs)
        finally:
            shares.pop()

    def run(full_command, env_vars=None):
        if shares:
            env_vars = thread_env(shares[-1]) | dict(env_vars or {})
        return real_run(full_command, env_vars)

    handler.run_local_subprocess, ParallelExecutor.execute_parallel_tasks = run, fan_out
    try:
        yield
    finally:
        handler.run_local_subprocess, ParallelExecutor.execute_parallel_tasks = real_run, real_fan_out


@contextmanager
def _tasks_end_with_the_run() -> Iterator[None]:
    """A local run that is killed (SIGTERM) or interrupted takes its running task with it.

    The local runner starts each task as a subprocess; without this, stopping ``teacherlm demo``
    left the task running as an orphan, holding the CPU and writing into the stopped run.
    """
    import signal
    import threading

    import psutil

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_term) if in_main else None
    before = {c.pid for c in psutil.Process().children(recursive=True)}  # not ours to end (servers...)
    try:
        yield
    except BaseException:
        children = [c for c in psutil.Process().children(recursive=True) if c.pid not in before]
        for child in children:
            with suppress(psutil.Error):
                child.terminate()
        _, alive = psutil.wait_procs(children, timeout=10)
        for child in alive:
            with suppress(psutil.Error):
                child.kill()
        raise
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _without_retries(spec_file: Path, tmp_dir: Path) -> Path:
    """The spec without retry policies: here a failure is not transient, and backoff only delays it."""
    import yaml

    docs = list(yaml.safe_load_all(spec_file.read_text()))

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("retryPolicy", None)
            for value in node.values():
                strip(value)
        elif isinstance(node, list):
            for value in node:
                strip(value)

    strip(docs[0])
    out = tmp_dir / f"{spec_file.stem}.local.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


_TASK_ERROR = re.compile(r"(?:teacherlm_core\.errors\.\w+|^error): (.+)$")


def _task_error(log_path: Path) -> str:
    """The last teacherlm error a failed task logged (why it failed, in its own words), or ``""``."""
    try:
        lines = _plain(log_path.read_text(errors="replace")).splitlines()
    except OSError:
        return ""
    found = [m.group(1).strip() for line in lines if (m := _TASK_ERROR.search(line.strip()))]
    return found[-1][:500] if found else ""


def _plain(text: str) -> str:
    return _ANSI.sub("", text)
