"""Training tasks on a cluster: one job per attempt, a retried task resumes, nothing outlives its run.

:func:`create_or_follow` runs one attempt of a task (creating ``{task}-a{n}`` or following the
attempt still running); :func:`delete_unfinished` deletes what a stopped run left behind.
"""

from __future__ import annotations

import copy
from typing import Any

from .follow import JobExists, JobFailed, JobOutcome, connect, follow, job_state, kind_of, run_job
from .render import TRAINJOB, JobKind

TASK_LABEL = "teacherlm.io/task"  # the same value on every attempt of one training task
RUN_LABEL = "teacherlm.io/kfp-run"  # the KFP run (id cut to 63 characters) a pipeline's TrainJob belongs to
ATTEMPT_LABEL = "teacherlm.io/attempt"  # 1, 2, ...: one TrainJob per attempt


def attempt_name(task: str, attempt: int) -> str:
    """``{task}-a{attempt}``, the task cut so the name stays a 63-character DNS label."""
    suffix = f"-a{attempt}"
    return task[: 63 - len(suffix)].rstrip("-") + suffix


def _attempts(custom, kind: JobKind, namespace: str, task: str) -> list[dict[str, Any]]:
    """The jobs of ``task`` in ``namespace``, oldest attempt first."""
    listed = custom.list_namespaced_custom_object(
        kind.group, kind.version, namespace, kind.plural, label_selector=f"{TASK_LABEL}={task}"
    )
    items = listed.get("items") or []
    return sorted(items, key=lambda o: int((o["metadata"].get("labels") or {}).get(ATTEMPT_LABEL, 0)))


def create_or_follow(
    body: dict[str, Any],
    *,
    api_client=None,
    timeout_s: float = 86400,
    poll_s: float = 10,
    echo=print,
    queue_timeout_s: float | None = None,
) -> JobOutcome:
    """Run one attempt of a training task (:func:`_create_or_follow`); nothing outlives the follower.

    When the follower ends before its job does (its pipeline run was stopped: SIGTERM, or an API
    error), the task's unfinished job is deleted on the way out: a KFP retry starts a new attempt,
    which resumes from the last checkpoint. Only a follower killed outright (SIGKILL, a lost node)
    leaves its job running, to be followed by the retry, and bounded by the job's own deadline.
    """
    kind, api_client = kind_of(body), connect(api_client)
    namespace = body["metadata"].get("namespace", "default")
    try:
        return _create_or_follow(
            body,
            api_client=api_client,
            timeout_s=timeout_s,
            poll_s=poll_s,
            echo=echo,
            queue_timeout_s=queue_timeout_s,
        )
    except JobFailed:
        raise  # failed, past a timeout (deleted then) or gone: nothing left running
    except BaseException:
        selector = f"{TASK_LABEL}={body['metadata']['name']}"
        delete_unfinished(selector, namespace, kind, api_client=api_client, echo=echo)
        raise


def delete_unfinished(
    selector: str, namespace: str = "default", kind: JobKind = TRAINJOB, *, api_client=None, echo=print
) -> list[str]:
    """Delete the jobs matching the label ``selector`` that have not finished; returns their names.

    ``teacherlm train cleanup --run-id R`` calls it with ``teacherlm.io/kfp-run=R``: what a stopped
    or failed pipeline run left behind. Finished jobs (complete or failed) stay, as a record.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    custom = client.CustomObjectsApi(connect(api_client))
    listed = custom.list_namespaced_custom_object(
        kind.group, kind.version, namespace, kind.plural, label_selector=selector
    )
    deleted = []
    for obj in listed.get("items") or []:
        name = obj["metadata"]["name"]
        state, _ = job_state(obj, kind)
        if state in (kind.succeeded, kind.failed):
            continue
        try:
            custom.delete_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
        except ApiException as exc:
            if exc.status != 404:  # gone meanwhile: that is the goal
                raise
        echo(f"deleted {kind.kind} {namespace}/{name} ({state}): its run ended before it did")
        deleted.append(name)
    return deleted


def _create_or_follow(
    body: dict[str, Any],
    *,
    api_client=None,
    timeout_s: float = 86400,
    poll_s: float = 10,
    echo=print,
    queue_timeout_s: float | None = None,
) -> JobOutcome:
    """Run one attempt of a training task; a retried task resumes the task, never an old failure.

    ``body``'s ``metadata.name`` names the *task* (stable across KFP retries); each attempt is its
    own job ``{task}-a{n}``, labelled :data:`TASK_LABEL` = task and :data:`ATTEMPT_LABEL` = n. Of
    the task's existing jobs the latest attempt decides:

    * none: create attempt 1;
    * still running, pending, queued or preempted (suspended by Kueue): follow it (the pod that
      followed it died, the job did not; a preempted job resumes from its checkpoint on readmission);
    * complete: return at once (the training is done; a later step of the task failed);
    * failed: create attempt n+1, which runs the same command on the same output, so the recipe
      resumes from the last complete checkpoint (:mod:`teacherlm_core.train.outputs`).

    Two retries racing for the same attempt: the second create gets 409 and follows the first.

    Raises:
        JobFailed: this attempt failed, vanished or timed out.
    """
    from kubernetes import client

    kind = kind_of(body)
    api_client = connect(api_client)
    custom = client.CustomObjectsApi(api_client)
    task, namespace = body["metadata"]["name"], body["metadata"].get("namespace", "default")
    previous = _attempts(custom, kind, namespace, task)
    watch: dict[str, Any] = {
        "api_client": api_client,
        "timeout_s": timeout_s,
        "poll_s": poll_s,
        "echo": echo,
        "queue_timeout_s": queue_timeout_s,
    }
    attempt = 1
    if previous:
        last = previous[-1]
        attempt = int(last["metadata"]["labels"][ATTEMPT_LABEL])
        name = last["metadata"]["name"]
        state, detail = job_state(last, kind)
        if state == kind.succeeded:
            echo(f"{kind.kind} {namespace}/{name} (attempt {attempt}) already complete")
            return JobOutcome(name, kind.kind, state, 0.0)
        if state != kind.failed:
            echo(f"{kind.kind} {namespace}/{name} (attempt {attempt}) is {state}: following it")
            return follow(name, kind, namespace, **watch)
        echo(
            f"{kind.kind} {namespace}/{name} (attempt {attempt}) failed ({detail or 'no reason given'}): "
            f"starting attempt {attempt + 1}, resuming from the last checkpoint"
        )
        attempt += 1
    body = copy.deepcopy(body)
    name = attempt_name(task, attempt)
    body["metadata"]["name"] = name
    body["metadata"]["labels"] = (body["metadata"].get("labels") or {}) | {
        TASK_LABEL: task,
        ATTEMPT_LABEL: str(attempt),
    }
    try:
        return run_job(body, **watch)
    except JobExists:
        pass
    echo(f"{kind.kind} {namespace}/{name} was created by a concurrent retry: following it")
    return follow(name, kind, namespace, **watch)
