"""Multi-node training on Kubernetes: render a Kubeflow Trainer ``TrainJob`` and follow it to the end.

    job = ClusterJob(name="teacher-r1", image=IMAGE, num_nodes=4, gpus_per_node=8,
                     command=["teacherlm", "train", "teacher", "--config", "s3://teacherlm/configs/teacher.yaml"],
                     secret_env=[SecretEnv(name="AWS_ACCESS_KEY_ID", secret="minio", key="accesskey")])
    outcome = run_job(render_trainjob(job), timeout_s=86400)   # submit, stream, raise JobFailed on failure

Rooms: :mod:`.render` builds the manifests from a :class:`ClusterJob` (``TrainJob``, or a
``PyTorchJob`` for the Training Operator v1); :mod:`.follow` submits a job and follows it (state,
Kueue's queue, events, the rank-0 log, failure and timeout); :mod:`.feeds` reads only the new
events and log lines on each poll; :mod:`.attempts` runs a training task as one job per attempt
(create or follow, resume after a failure) and deletes what a stopped run left.
"""

from .attempts import (
    ATTEMPT_LABEL,
    RUN_LABEL,
    TASK_LABEL,
    attempt_name,
    create_or_follow,
    delete_unfinished,
)
from .feeds import EventFeed, LogCursor
from .follow import JobExists, JobFailed, JobOutcome, check_server, follow, run_job, submit
from .render import (
    DEADLINE_S,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    PRIORITY_CLASS_ENV,
    PYTORCHJOB,
    QUEUE_ENV,
    QUEUE_TIMEOUT_ENV,
    TEACHERLM_RUNTIME,
    TRAINJOB,
    ClusterJob,
    JobKind,
    RuntimeRef,
    SecretEnv,
    kueue_labels,
    render_pytorchjob,
    render_trainjob,
)

__all__ = [
    "ATTEMPT_LABEL",
    "DEADLINE_S",
    "KUEUE_PRIORITY_LABEL",
    "KUEUE_QUEUE_LABEL",
    "PRIORITY_CLASS_ENV",
    "PYTORCHJOB",
    "QUEUE_ENV",
    "QUEUE_TIMEOUT_ENV",
    "RUN_LABEL",
    "TASK_LABEL",
    "TEACHERLM_RUNTIME",
    "TRAINJOB",
    "ClusterJob",
    "EventFeed",
    "JobExists",
    "JobFailed",
    "JobKind",
    "JobOutcome",
    "LogCursor",
    "RuntimeRef",
    "SecretEnv",
    "attempt_name",
    "check_server",
    "create_or_follow",
    "delete_unfinished",
    "follow",
    "kueue_labels",
    "render_pytorchjob",
    "render_trainjob",
    "run_job",
    "submit",
]
