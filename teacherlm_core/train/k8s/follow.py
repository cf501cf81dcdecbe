"""Submit a rendered job and follow it to the end: state changes, events, the rank-0 pod's log.

:func:`follow` polls the job with the Kubernetes Python client and echoes state changes, events
and the rank-0 pod's log; on failure it raises :class:`JobFailed` with the reason, the warning
events and the tail of each failed pod's log; on timeout it raises too (and can delete the job).
It knows Kueue: a suspended job is "queued" (or "preempted, requeued" once it has run: it resumes
from its last checkpoint when readmitted, so it is followed, never failed), and time spent
suspended counts against an optional queue timeout, never against the run's budget (which the
job itself carries as ``spec.activeDeadlineSeconds``, reset by Trainer on every resume).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...errors import TeacherLMError
from .feeds import EventFeed, LogCursor, pod_log
from .render import PYTORCHJOB, TRAINJOB, JobKind


class JobFailed(TeacherLMError):
    """A cluster training job failed, vanished or ran past its timeout."""


class JobExists(JobFailed):
    """The job's name is taken (409 AlreadyExists): another process created it."""


@dataclass
class JobOutcome:
    """How a followed job ended."""

    name: str
    kind: str
    state: str
    seconds: float
    events: list[str] = field(default_factory=list)  # the last warning events (at most 10)
    log_tail: str = ""


def connect(api_client=None):
    """``api_client``, else a client from the pod's service account, else from ``~/.kube/config``."""
    if api_client is not None:
        return api_client
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def kind_of(body: dict[str, Any]) -> JobKind:
    """The :class:`JobKind` of a rendered manifest (``TrainJob`` or ``PyTorchJob``)."""
    for kind in (TRAINJOB, PYTORCHJOB):
        if body.get("kind") == kind.kind:
            return kind
    raise ValueError(f"not a TrainJob or PyTorchJob: kind {body.get('kind')!r}")


def submit(body: dict[str, Any], *, api_client=None) -> str:
    """Create the job; returns its name. A name already taken raises :class:`JobFailed`."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kind = kind_of(body)
    api = client.CustomObjectsApi(connect(api_client))
    ns = body["metadata"].get("namespace", "default")
    try:  # Strict: an older controller's CRD refuses a field it does not know, never drops it silently
        created = api.create_namespaced_custom_object(
            kind.group, kind.version, ns, kind.plural, body, field_validation="Strict"
        )
    except ApiException as exc:
        unknown = re.findall(r'unknown field "([^"]+)"', _api_message(exc)) if exc.status == 400 else []
        if unknown:
            need = " (Kubeflow Trainer v2.2 or newer is needed)" if kind is TRAINJOB else ""
            raise JobFailed(
                f"{kind.kind} {body['metadata']['name']}: this cluster's {kind.api_version} "
                f"{kind.kind} has no {', '.join(unknown)}{need}"
            ) from None
        error = JobExists if exc.status == 409 else JobFailed
        raise error(
            f"{kind.kind} {body['metadata']['name']}: creation refused ({exc.status} {exc.reason}): "
            f"{_api_message(exc)}"
        ) from None
    return created["metadata"]["name"]


def check_server(api_client=None, *, queue: bool = False) -> None:
    """Refuse, in one line, a cluster that does not serve what a job needs: Trainer's TrainJob API, and
    Kueue's ``v1beta2`` API when the job names a queue.

    Raises:
        JobFailed: a missing API group or version, named with what to install.
    """
    from kubernetes import client

    groups = client.ApisApi(connect(api_client)).get_api_versions().groups or []
    served = {g.name: [v.version for v in g.versions] for g in groups}
    trainer = served.get(TRAINJOB.group, [])
    if TRAINJOB.version not in trainer:
        raise JobFailed(
            f"this cluster serves {_versions(TRAINJOB.group, trainer)}, not {TRAINJOB.api_version} "
            "(TrainJob): install Kubeflow Trainer v2.2 or newer"
        )
    kueue = served.get("kueue.x-k8s.io", [])
    if queue and "v1beta2" not in kueue:
        raise JobFailed(
            f"--queue needs Kueue's kueue.x-k8s.io/v1beta2 (Kueue v0.15 or newer); this cluster "
            f"serves {_versions('kueue.x-k8s.io', kueue)}"
        )


def _versions(group: str, versions: list[str]) -> str:
    return ", ".join(f"{group}/{v}" for v in versions) if versions else f"no {group}"


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", exc.body)
    except (TypeError, ValueError):
        return str(exc.body)


SUSPENDED = "Suspended"  # the condition of a job Kueue holds (spec.suspend), on TrainJobs and PyTorchJobs


def job_state(obj: dict[str, Any], kind: JobKind) -> tuple[str, str]:
    """``(state, reason: message)`` from the job's conditions: the terminal one if any, then a suspension,
    else the latest true one."""
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"]
    for wanted in (kind.failed, kind.succeeded, SUSPENDED):
        for c in conditions:
            if c.get("type") == wanted:
                return wanted, f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
    if conditions:
        return conditions[-1]["type"], conditions[-1].get("message", "")
    return "Created", ""


def follow(
    name: str,
    kind: JobKind = TRAINJOB,
    namespace: str = "default",
    *,
    api_client=None,
    timeout_s: float = 86400,
    poll_s: float = 10,
    echo: Callable[[str], None] = print,
    delete_on_timeout: bool = True,
    tail_lines: int = 40,
    queue_timeout_s: float | None = None,
) -> JobOutcome:
    """Follow a job until it succeeds (returns), fails, vanishes or times out (raises :class:`JobFailed`).

    ``timeout_s`` counts only the time the job is not suspended; ``queue_timeout_s`` (default: none)
    bounds each stretch it waits suspended in a queue (first admission or after a preemption).

    Echoes each state change, each new event of the job and its pods, and the rank-0 pod's log.
    Each poll reads only what is new, so a job followed for days costs the same per poll and this
    process holds a bounded state: the log since the last line shown (:class:`LogCursor`:
    ``sinceTime`` + timestamps), the events since the last ``resourceVersion`` seen
    (:class:`EventFeed`: a watch that ends at once), the last 10 warning events.
    """
    from kubernetes import client

    from ...redaction import known_secrets, redact_text

    secrets, raw_echo = known_secrets(), echo

    def echo(line: str) -> None:  # pod logs and events may print URLs with credentials
        raw_echo(redact_text(line, secrets))

    api_client = connect(api_client)
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    clock = _Clock(started=time.monotonic())
    last_progress = None
    events = EventFeed(core, namespace)
    warnings: deque[str] = deque(maxlen=10)
    cursor: LogCursor | None = None
    last_state = None
    while True:
        obj, pods, state, detail = _observe(custom, core, kind, namespace, name)
        now = time.monotonic()
        state, detail = clock.judge(state, detail, now)
        if state != last_state:
            echo(f"{kind.kind} {name}: {state}" + (f" ({detail})" if detail else ""))
            last_state = state
        trainer = (obj.get("status") or {}).get("trainerStatus")  # Trainer's TrainJobStatus gate: HF progress
        if trainer and trainer.get("progressPercentage") != last_progress:
            echo(f"{kind.kind} {name}: {_progress(trainer)}")
            last_progress = trainer.get("progressPercentage")
        _echo_events(events, {name, *(p.metadata.name for p in pods)}, warnings, echo)
        cursor = _echo_log(core, cursor, pods, namespace, kind.container, echo)
        seconds = time.monotonic() - clock.started
        if state == kind.succeeded:
            return JobOutcome(name, kind.kind, state, seconds, list(warnings))
        if state == kind.failed:
            logs = {
                p.metadata.name: pod_log(core, p.metadata.name, namespace, kind.container, tail_lines)
                for p in pods
            }
            tails = [f"--- {pod} ---\n{log.rstrip()}" for pod, log in logs.items() if log.strip()]
            raise JobFailed(
                f"{kind.kind} {namespace}/{name} failed after {seconds:.0f}s: {detail or 'no reason given'}"
                + ("\nwarning events:\n" + "\n".join(warnings) if warnings else "")
                + ("\n" + "\n".join(tails) if tails else "")
            )
        why = clock.overdue(state, now, timeout_s, queue_timeout_s)
        if why:
            if delete_on_timeout:
                custom.delete_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
            raise JobFailed(
                f"{kind.kind} {namespace}/{name} {why}" + ("; deleted it" if delete_on_timeout else "")
            )
        time.sleep(poll_s)


@dataclass
class _Clock:
    """A followed job's time: since it was first seen, and in Kueue's queue (the stretches suspended)."""

    started: float  # time.monotonic() when following began
    suspended_since: float | None = None  # when the current stretch in the queue began
    queued_s: float = 0.0  # time spent suspended before that stretch
    has_run: bool = False  # pods ran (so a suspension now is a preemption)

    def judge(self, state: str, detail: str, now: float) -> tuple[str, str]:
        """``(state, detail)`` to show: a suspension read as queued or preempted, a resumed job as admitted."""
        if state == SUSPENDED:  # Kueue holds it: not admitted yet, or preempted
            if "preempt" in detail.lower() or self.has_run:
                state = "preempted, requeued"
                detail = (
                    detail + "; " if detail else ""
                ) + "it resumes from its last checkpoint when readmitted"
            else:
                state = "queued"
                detail = detail or "waiting for the queue to admit it"
            if self.suspended_since is None:
                self.suspended_since = now
        elif self.suspended_since is not None:  # admitted (again)
            self.queued_s += now - self.suspended_since
            self.suspended_since = None
            state = "admitted" if state == "Created" else state
        self.has_run = self.has_run or state == "Running"
        return state, detail

    def overdue(self, state: str, now: float, timeout_s: float, queue_timeout_s: float | None) -> str | None:
        """Why to give up at ``now``: past the run's ``timeout_s`` (time not suspended) or this stretch in
        the queue past ``queue_timeout_s``; None while within both."""
        waiting = now - self.suspended_since if self.suspended_since is not None else 0.0
        if now - self.started - self.queued_s - waiting > timeout_s:
            return f"still {state} after the {timeout_s:.0f}s timeout"
        if queue_timeout_s is not None and waiting > queue_timeout_s:
            return f"still {state} after the {queue_timeout_s:.0f}s queue timeout"
        return None


def _observe(custom, core, kind: JobKind, namespace: str, name: str) -> tuple[dict[str, Any], list, str, str]:
    """``(job, its pods by name, state, detail)``; a TrainJob without conditions is as far as its pods are.

    Raises:
        JobFailed: the job is gone (404).
    """
    from kubernetes.client.exceptions import ApiException

    try:
        obj = custom.get_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
    except ApiException as exc:
        if exc.status == 404:
            raise JobFailed(f"{kind.kind} {namespace}/{name} disappeared (deleted?)") from None
        raise
    pods = sorted(
        core.list_namespaced_pod(namespace, label_selector=f"{kind.pod_label}={name}").items,
        key=lambda p: p.metadata.name,
    )
    state, detail = job_state(obj, kind)
    if state == "Created" and pods:  # a TrainJob has no Running condition: its pods tell
        phases = {p.status.phase for p in pods}
        state = "Running" if "Running" in phases else "Pending" if "Pending" in phases else state
    return obj, pods, state, detail


def _echo_events(
    events: EventFeed, names: set[str], warnings: deque[str], echo: Callable[[str], None]
) -> None:
    """Echo the new events of the job and its pods (``names``); keep the warnings among them."""
    for ev in events.new():
        if ev.involved_object.name in names:
            line = f"event {ev.type} {ev.involved_object.kind}/{ev.involved_object.name}: {ev.reason}: {ev.message}"
            if ev.type == "Warning":
                warnings.append(line)
            echo(line)


def _echo_log(
    core, cursor: LogCursor | None, pods: list, namespace: str, container: str, echo: Callable[[str], None]
) -> LogCursor | None:
    """Echo the rank-0 pod's new log lines; returns the cursor to read from next (a new one for a new pod)."""
    if pods and pods[0].status.phase in ("Running", "Succeeded", "Failed"):
        if cursor is None or cursor.pod != pods[0].metadata.name:  # a replaced pod: a new log
            cursor = LogCursor(core, pods[0].metadata.name, namespace, container)
        for line in cursor.new_lines():
            echo(f"[{cursor.pod}] {line}")
    return cursor


def _progress(trainer: dict[str, Any]) -> str:
    """A TrainJob's ``status.trainerStatus`` as one line: ``progress 40%, about 1h05m left, loss=1.23``."""
    parts = (
        [f"progress {trainer['progressPercentage']}%"]
        if trainer.get("progressPercentage") is not None
        else []
    )
    left = trainer.get("estimatedRemainingSeconds")
    if left is not None:
        hours, minutes = divmod(round(left / 60), 60)
        parts.append(f"about {f'{hours}h{minutes:02d}m' if hours else f'{minutes}m'} left")
    parts += [f"{m['name']}={m['value']}" for m in trainer.get("metrics") or []]
    return ", ".join(parts) or "no progress reported yet"


def run_job(
    body: dict[str, Any],
    *,
    api_client=None,
    timeout_s: float = 86400,
    poll_s: float = 10,
    echo=print,
    queue_timeout_s: float | None = None,
) -> JobOutcome:
    """Submit ``body`` (a rendered TrainJob or PyTorchJob) and follow it to the end."""
    kind = kind_of(body)
    api_client = connect(api_client)
    name = submit(body, api_client=api_client)
    echo(f"submitted {kind.kind} {body['metadata'].get('namespace', 'default')}/{name}")
    return follow(
        name,
        kind,
        body["metadata"].get("namespace", "default"),
        api_client=api_client,
        timeout_s=timeout_s,
        poll_s=poll_s,
        echo=echo,
        queue_timeout_s=queue_timeout_s,
    )
