"""Compile-time placement: where each kind of stage runs, how it retries, how wide it fans out.

Kubeflow Pipelines bakes these into the compiled spec (KFP 2.17 takes node selectors,
tolerations, pod labels and ``ParallelFor`` parallelism only as constants), so they are flags of
``teacherlm pipeline compile``; the committed specs use the defaults below. The local runner
ignores all of them (with a warning).

On a shared cluster (``compile --queue Q [--priority-class P]``) every GPU pod and every
TrainJob carries Kueue's queue and priority labels, and the shard fan-out is no longer capped by
a constant: Kueue admits shards as the queue's quota allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from kfp import dsl, kubernetes

from ..metrics import PORT_ENV, PUSHGATEWAY_ENV
from ..run_context import RUN_ID_ENV
from ..train.k8s import PRIORITY_CLASS_ENV, QUEUE_ENV, QUEUE_TIMEOUT_ENV, kueue_labels

__all__ = [
    "DEFAULT_PARALLELISM",
    "METRICS_LABEL",
    "MLFLOW_CLIENT_LABEL",
    "PIPELINE_STEP_LABEL",
    "Placement",
    "active_placement",
    "fan_out",
    "on_cpu",
    "on_gpu",
    "on_trainer",
    "placed",
]

MLFLOW_CLIENT_LABEL = "teacherlm.io/mlflow-client"  # the pods manifests/ lets reach MLflow
PIPELINE_STEP_LABEL = "teacherlm.io/pipeline-step"  # NetworkPolicy teacherlm-pipeline-steps selects them
METRICS_LABEL = "teacherlm.io/metrics"  # pods that serve Prometheus metrics (compile --metrics-port)
DEFAULT_PARALLELISM = 4  # without a queue: augmentation shards (and students) running at once
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class Placement:
    """Placement and policies of the pipelines' tasks."""

    gpu_pool: str = "nvidia.com/gpu.present=true"  # node label of the GPU pool (NVIDIA GPU feature discovery)
    # Node label KEY=VALUE of a CPU pool; "" (the default): any node without a taint, which keeps CPU
    # stages off the tainted GPU nodes without a label nobody sets (`compile --cpu-pool` to pin them).
    cpu_pool: str = ""
    accelerator: str = "nvidia.com/gpu"  # the extended resource a GPU stage asks for
    gpu_taint: str = "nvidia.com/gpu"  # GPU nodes are tainted with this key; GPU stages tolerate it
    # Augmentation shards (and students) running at once; None: DEFAULT_PARALLELISM, or no cap with a queue.
    parallelism: int | None = None
    retries: int = 2  # retries of a transient (GPU, preemptible) stage, with exponential backoff
    env_config_map: str = "teacherlm-env"  # optional ConfigMap: MLFLOW_TRACKING_URI, AWS_ENDPOINT_URL_S3
    # optional Secret: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY of MinIO's scoped pipeline user (never root)
    s3_secret: str = "teacherlm-pipelines-s3"
    # optional Secret: MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD (MLflow's basic auth, when enabled)
    mlflow_secret: str = "teacherlm-mlflow-auth"
    queue: str = ""  # Kueue LocalQueue of GPU pods and TrainJobs; "": no Kueue labels
    priority_class: str = ""  # Kueue WorkloadPriorityClass of the same; "": the queue's default
    queue_timeout_s: int = 0  # a training task gives up on a TrainJob queued this long; 0: it waits
    # A GPU task's pod ends after this long (its activeDeadlineSeconds; the retry resumes from its markers),
    # so no hung pod holds a GPU forever; the stall watchdog usually ends a hung shard much sooner.
    gpu_timeout_s: int = 3 * 86400
    metrics_port: int = 0  # GPU tasks serve Prometheus metrics on this port (a PodMonitor scrapes it); 0: off
    pushgateway: str = ""  # Prometheus Pushgateway URL shards push their final metrics to; "": none
    shm_size: str = "16Gi"  # memory-backed /dev/shm of a GPU task (NCCL between vLLM's tensor-parallel ranks)

    @property
    def fan_out(self) -> int:
        """``ParallelFor``'s parallelism: the setting, else the default; 0 (no cap) when a queue admits the work."""
        if self.parallelism is not None:
            return self.parallelism
        return 0 if self.queue else DEFAULT_PARALLELISM

    def __post_init__(self) -> None:
        problems = [
            f"{name}: expected KEY=VALUE, got {value!r}"
            for name, value in (("gpu_pool", self.gpu_pool), ("cpu_pool", self.cpu_pool))
            if value and "=" not in value
        ]
        if self.parallelism is not None and self.parallelism < 1:
            problems.append(f"parallelism: must be at least 1, got {self.parallelism}")
        problems += [
            f"{name}: {value!r} is not a Kubernetes label value"
            for name, value in (("queue", self.queue), ("priority_class", self.priority_class))
            if not _LABEL_VALUE.match(value)
        ]
        if self.priority_class and not self.queue:
            problems.append("priority_class: Kueue reads it only with a queue (set queue too)")
        if self.gpu_timeout_s < 1:
            problems.append(f"gpu_timeout_s: must be at least 1, got {self.gpu_timeout_s}")
        if self.queue_timeout_s < 0:
            problems.append(f"queue_timeout_s: must be >= 0, got {self.queue_timeout_s}")
        if self.retries < 0:
            problems.append(f"retries: must be >= 0, got {self.retries}")
        if problems:
            raise ValueError("; ".join(problems))


_ACTIVE: ContextVar[Placement | None] = ContextVar("teacherlm_placement", default=None)


def active_placement() -> Placement:
    """The placement :func:`placed` made active (the defaults outside it)."""
    return _ACTIVE.get() or Placement()


def fan_out() -> int:
    """``ParallelFor``'s parallelism under the active placement (:attr:`Placement.fan_out`)."""
    return active_placement().fan_out


@contextmanager
def placed(placement: Placement) -> Iterator[Placement]:
    """Build pipelines with ``placement``: :func:`on_cpu`, :func:`on_gpu` and :func:`on_trainer` read it."""
    token = _ACTIVE.set(placement)
    try:
        yield placement
    finally:
        _ACTIVE.reset(token)


def _common(task: dsl.PipelineTask, s: Placement, name: str) -> dsl.PipelineTask:
    """Display name, the KFP run id, and the run's tracking/storage settings from the namespace (never in
    the spec: a ConfigMap and a Secret, both optional)."""
    task.set_display_name(name)
    # The run id as an environment variable, not an input: an input would change every cache key.
    kubernetes.use_field_path_as_env(task, RUN_ID_ENV, "metadata.labels['pipeline/runid']")
    env = {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3": "AWS_ENDPOINT_URL_S3"}
    kubernetes.use_config_map_as_env(task, s.env_config_map, env, optional=True)
    keys = {"AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"}
    kubernetes.use_secret_as_env(task, s.s3_secret, keys, optional=True)
    auth = {
        "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
    }
    kubernetes.use_secret_as_env(task, s.mlflow_secret, auth, optional=True)
    kubernetes.add_pod_label(task, MLFLOW_CLIENT_LABEL, "true")  # NetworkPolicy teacherlm-mlflow lets it in
    kubernetes.add_pod_label(
        task, PIPELINE_STEP_LABEL, "true"
    )  # its egress: NetworkPolicy teacherlm-pipeline-steps
    if s.pushgateway:
        task.set_env_variable(PUSHGATEWAY_ENV, s.pushgateway)
    return task


def _retry(task: dsl.PipelineTask, s: Placement) -> dsl.PipelineTask:
    return task.set_retry(
        num_retries=s.retries, backoff_duration="60s", backoff_factor=2.0, backoff_max_duration="600s"
    )


def on_cpu(task: dsl.PipelineTask, name: str, *, cache: bool = True, retry: bool = False) -> dsl.PipelineTask:
    """A CPU stage: the CPU pool, modest resources; retried only when ``retry`` (a transient stage)."""
    s = active_placement()
    _common(task, s, name).set_caching_options(cache)
    if retry:
        _retry(task, s)
    task.set_cpu_request("1").set_memory_request("2Gi").set_cpu_limit("4").set_memory_limit("16Gi")
    if s.cpu_pool:
        kubernetes.add_node_selector(task, *s.cpu_pool.split("=", 1))
    return task


def on_gpu(task: dsl.PipelineTask, name: str, gpus: int | dsl.PipelineChannel = 1) -> dsl.PipelineTask:
    """A GPU stage: accelerators, the GPU pool and its taint, retries with backoff, a timeout, a
    memory-backed ``/dev/shm``; cached."""
    s = active_placement()
    _common(task, s, name).set_caching_options(True)
    task.set_accelerator_type(s.accelerator).set_accelerator_limit(gpus)
    task.set_cpu_request("4").set_memory_request("32Gi").set_memory_limit("64Gi")
    _retry(task, s)
    kubernetes.set_timeout(task, s.gpu_timeout_s)
    # A container's default /dev/shm is 64 MiB, which NCCL between tensor-parallel ranks outgrows;
    # a memory-backed emptyDir counts against the memory limit.
    kubernetes.empty_dir_mount(task, "dshm", "/dev/shm", medium="Memory", size_limit=s.shm_size)
    kubernetes.add_node_selector(task, *s.gpu_pool.split("=", 1))
    kubernetes.add_toleration(task, key=s.gpu_taint, operator="Exists", effect="NoSchedule")
    if s.metrics_port:  # the PodMonitor of manifests/components/monitoring selects on the label
        task.set_env_variable(PORT_ENV, str(s.metrics_port))
        kubernetes.add_pod_label(task, METRICS_LABEL, "true")
    # Kueue's pod integration admits the pod by quota (and gates it until then).
    for key, value in kueue_labels(s.queue, s.priority_class).items():
        kubernetes.add_pod_label(task, key, value)
    return task


def on_trainer(task: dsl.PipelineTask, name: str) -> dsl.PipelineTask:
    """A training stage: a CPU pod that submits a TrainJob (the GPUs) and follows it; retried.

    With a queue, the pod passes the queue and priority to the TrainJob it submits (the pod itself
    holds no GPU, so it is not queued).
    """
    on_cpu(task, name, retry=True)
    s = active_placement()
    if s.queue:
        task.set_env_variable(QUEUE_ENV, s.queue)
        if s.priority_class:
            task.set_env_variable(PRIORITY_CLASS_ENV, s.priority_class)
        if s.queue_timeout_s:
            task.set_env_variable(QUEUE_TIMEOUT_ENV, str(s.queue_timeout_s))
    return task
