"""Where a recipe runs: on this machine (``torchrun``, gloo ranks on CPU) or as a Kubeflow Trainer ``TrainJob``.

``launcher`` ``auto`` means a ``TrainJob`` inside Kubernetes (a KFP task's pod: N nodes x G GPUs,
followed to the end by this process) and ``torchrun`` elsewhere (KFP's local runner, a laptop).
A ``TrainJob``'s pods cannot see this pod's files, so its config, data and output are on shared
storage (``s3://``); every node runs ``teacherlm train KIND --config URI`` and takes its launch
flags from the runtime's ``PET_*`` variables.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..signals import sigterm_as_exit
from .config import StudentConfig, TeacherConfig

__all__ = [
    "LAUNCHERS",
    "TRAIN_TIMEOUT_S",
    "pod_namespace",
    "recipe_trainjob",
    "resolve_launcher",
    "run_recipe",
]

LAUNCHERS = ("auto", "torchrun", "trainjob")
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
MLFLOW_AUTH_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
TRAIN_TIMEOUT_S = 7 * 86400  # a TrainJob's budget (its activeDeadlineSeconds): at most a week admitted
FOLLOW_GRACE_S = 3600  # the follower gives up this long after the job's own deadline should have ended it


def resolve_launcher(launcher: str, nnodes: int) -> str:
    """``torchrun`` or ``trainjob`` for ``launcher`` (``auto``: a TrainJob inside Kubernetes).

    Raises:
        ConfigError: an unknown launcher, or several nodes without a TrainJob.
    """
    if launcher not in LAUNCHERS:
        raise ConfigError("launcher", [f"{launcher!r}: choose {', '.join(LAUNCHERS)}"])
    if launcher == "auto":
        launcher = "trainjob" if os.environ.get("KUBERNETES_SERVICE_HOST") else "torchrun"
    if launcher == "torchrun" and nnodes > 1:
        raise ConfigError("nnodes", [f"{nnodes} nodes need launcher=trainjob (torchrun here runs one node)"])
    return launcher


def run_recipe(
    kind: str, cfg: StudentConfig | TeacherConfig, launcher: str, *, image: str = "", run_id: str = ""
) -> None:
    """Run recipe ``kind`` (student or teacher) here, or as a TrainJob of ``image`` that this process follows."""
    if launcher == "trainjob":
        recipe_trainjob(kind, cfg, image=image, run_id=run_id)
        return
    from . import train_student, train_teacher

    (train_student if kind == "student" else train_teacher)(cfg)


def pod_namespace() -> str:
    """The namespace this pod runs in (``TEACHERLM_NAMESPACE`` overrides; outside a pod: ``default``)."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return os.environ.get("TEACHERLM_NAMESPACE") or (
        path.read_text().strip() if path.is_file() else "default"
    )


def recipe_trainjob(
    kind: str,
    cfg: StudentConfig | TeacherConfig,
    *,
    image: str,
    run_id: str = "",
    api_client=None,
    poll_s: float = 10,
) -> None:
    """Run a recipe as a ``TrainJob`` and follow it to the end.

    A retried KFP task (same ``run_id`` and output) follows its TrainJob if that is still running,
    returns if it completed, and starts a new attempt if it failed; the new attempt resumes from
    the output's last complete checkpoint (:func:`~teacherlm_core.train.k8s.create_or_follow`).

    The config goes next to the output on shared storage; every node runs ``teacherlm train KIND
    --config URI`` on the GPU pool (``TEACHERLM_GPU_POOL``), with this pod's tracking and S3
    settings (the keys from the Secret ``TEACHERLM_S3_SECRET``, never in the spec), the Kueue
    queue and priority the pipeline was compiled with (``TEACHERLM_QUEUE``,
    ``TEACHERLM_PRIORITY_CLASS``), and CPU and memory per node from ``TEACHERLM_TRAIN_CPU`` /
    ``TEACHERLM_TRAIN_MEMORY`` (default: per GPU, :meth:`~teacherlm_core.train.k8s.ClusterJob.resources`).

    Raises:
        JobFailed: the job failed (past its deadline, :data:`TRAIN_TIMEOUT_S` of admitted time, included),
            vanished, or waited in the queue past ``TEACHERLM_QUEUE_TIMEOUT_S`` (when set).
    """
    import yaml

    from .. import storage
    from ..tracking import PARENT_ENV
    from .k8s import (
        PRIORITY_CLASS_ENV,
        QUEUE_ENV,
        QUEUE_TIMEOUT_ENV,
        RUN_LABEL,
        ClusterJob,
        SecretEnv,
        check_server,
        create_or_follow,
        kueue_labels,
        render_trainjob,
    )

    config_uri = cfg.output.rstrip("/") + ".config.yaml"
    storage.write_text(config_uri, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    tag = Path(cfg.output.rstrip("/")).name.replace("_", "-").lower()
    task = f"tlm-{kind}-{run_id[:8]}-{tag}"[:63].rstrip("-")  # each attempt is a TrainJob {task}-a{n}
    env = {
        k: os.environ[k]
        for k in ("MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3", PARENT_ENV)
        if os.environ.get(k)
    }
    from ..redaction import strip_url_credentials

    leaking = [k for k, v in env.items() if strip_url_credentials(v) != v]
    if leaking:  # a TrainJob's env is readable by anyone who may get TrainJobs
        raise ConfigError(
            ", ".join(leaking),
            [
                "carries credentials in its URL, which would be written into the TrainJob: use "
                "MLFLOW_TRACKING_USERNAME/PASSWORD from the Secret teacherlm-mlflow-auth instead"
            ],
        )
    secret = os.environ.get("TEACHERLM_S3_SECRET", "teacherlm-pipelines-s3")  # MinIO's scoped user, not root
    secret_env = (
        [SecretEnv(name=k, secret=secret, key=k) for k in S3_KEYS]
        if "AWS_ACCESS_KEY_ID" in os.environ
        else []
    )
    if os.environ.get("MLFLOW_TRACKING_PASSWORD"):  # MLflow's basic auth is on: the nodes log in too
        auth = os.environ.get("TEACHERLM_MLFLOW_SECRET", "teacherlm-mlflow-auth")
        secret_env += [SecretEnv(name=k, secret=auth, key=k) for k in MLFLOW_AUTH_KEYS]
    key, _, value = os.environ.get("TEACHERLM_GPU_POOL", "nvidia.com/gpu.present=true").partition("=")
    job = ClusterJob(
        name=task,
        namespace=pod_namespace(),
        image=image,
        num_nodes=cfg.launch.nnodes,
        gpus_per_node=cfg.launch.nproc_per_node,
        command=["teacherlm", "train", kind, "--config", config_uri],
        env=env,
        secret_env=secret_env,
        node_selector={key: value} if key else {},
        active_deadline_seconds=TRAIN_TIMEOUT_S,
        labels={RUN_LABEL: run_id[:63]}
        | kueue_labels(os.environ.get(QUEUE_ENV, ""), os.environ.get(PRIORITY_CLASS_ENV, "")),
        # CPU and memory per node, as the environment sizes them (default: per GPU, ClusterJob.resources)
        cpu=os.environ.get("TEACHERLM_TRAIN_CPU") or None,
        memory=os.environ.get("TEACHERLM_TRAIN_MEMORY") or None,
    )
    queue_timeout = float(os.environ.get(QUEUE_TIMEOUT_ENV) or 0) or None
    check_server(api_client, queue=bool(os.environ.get(QUEUE_ENV)))  # one line on a cluster that lacks an API
    with sigterm_as_exit():  # a stopped pipeline run: the follower deletes its TrainJob on the way out
        create_or_follow(
            render_trainjob(job),
            api_client=api_client,
            timeout_s=TRAIN_TIMEOUT_S + FOLLOW_GRACE_S,
            poll_s=poll_s,
            queue_timeout_s=queue_timeout,
        )
