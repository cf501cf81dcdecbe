"""A :class:`ClusterJob` (N nodes x G GPUs running one command) rendered as a Kubeflow Trainer ``TrainJob``.

The ``TrainJob`` is built with the typed models of ``kubeflow-trainer-api`` (``trainer.kubeflow.org/v1alpha1``):
N nodes x G GPUs on teacherlm's ``TrainingRuntime`` (:data:`TEACHERLM_RUNTIME`), the image and command, plain env and env
from Secrets, and a runtime patch that puts the ``node`` pods on the GPU pool (node selector,
``nvidia.com/gpu`` toleration). The runtime's torch plugin sets ``PET_NNODES``, ``PET_NODE_RANK``,
``PET_NPROC_PER_NODE``, ``PET_MASTER_ADDR``/``PORT``, which ``teacherlm train`` reads as its launch
flags. Clusters still on the Training Operator v1 get a ``PyTorchJob`` from :func:`render_pytorchjob`.
:class:`JobKind` names each kind's API group, conditions, pod label and container, for the follower.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

GPU = "nvidia.com/gpu"
MANAGER = "teacherlm.io/launcher"  # owner of our runtime patch
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # the LocalQueue a job (or pod) is admitted through
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"  # its Kueue WorkloadPriorityClass
DEADLINE_S = 7 * 86400  # a job's default activeDeadlineSeconds: nothing holds GPUs past a week
# How a pipeline's training task tells the TrainJob it submits which queue and priority to carry.
QUEUE_ENV, PRIORITY_CLASS_ENV = "TEACHERLM_QUEUE", "TEACHERLM_PRIORITY_CLASS"
QUEUE_TIMEOUT_ENV = "TEACHERLM_QUEUE_TIMEOUT_S"  # optional: give up on a TrainJob queued this long


def kueue_labels(queue: str = "", priority_class: str = "") -> dict[str, str]:
    """Kueue's labels for a job in ``queue`` at ``priority_class`` (none without a queue: Kueue reads neither)."""
    if not queue:
        return {}
    return {KUEUE_QUEUE_LABEL: queue} | ({KUEUE_PRIORITY_LABEL: priority_class} if priority_class else {})


@dataclass(frozen=True)
class RuntimeRef:
    """Which Kubeflow Trainer runtime a TrainJob runs on (``spec.runtimeRef``)."""

    name: str
    kind: str = "TrainingRuntime"  # namespaced; "ClusterTrainingRuntime" for a cluster-wide one
    api_group: str = "trainer.kubeflow.org"

    def to_dict(self) -> dict[str, str]:
        return {"apiGroup": self.api_group, "kind": self.kind, "name": self.name}


# The runtime manifests/base/trainingruntime.yaml ships (larger /dev/shm, non-root, GPU priority):
# the one definition the launcher uses; tests/deploy checks the rendered manifests define it.
TEACHERLM_RUNTIME = RuntimeRef(name="teacherlm-deepspeed")


@dataclass(frozen=True)
class JobKind:
    """How to find, judge and read one kind of training job."""

    group: str
    version: str
    plural: str
    kind: str
    succeeded: str  # the condition type that means success
    failed: str
    pod_label: str  # label whose value is the job name on every pod
    container: str  # the training container's name

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


TRAINJOB = JobKind(
    group="trainer.kubeflow.org",
    version="v1alpha1",
    plural="trainjobs",
    kind="TrainJob",
    succeeded="Complete",
    failed="Failed",
    pod_label="jobset.sigs.k8s.io/jobset-name",
    container="node",
)
PYTORCHJOB = JobKind(
    group="kubeflow.org",
    version="v1",
    plural="pytorchjobs",
    kind="PyTorchJob",
    succeeded="Succeeded",
    failed="Failed",
    pod_label="training.kubeflow.org/job-name",
    container="pytorch",
)


CPU_PER_GPU = 8  # a GPU node's default CPU, per GPU (data loaders, NCCL proxies, tokenisation)
MEMORY_GI_PER_GPU = 64  # its default memory, per GPU; /dev/shm (16 GiB in the runtime) counts in it


class SecretEnv(BaseModel):
    """An environment variable read from a Secret (credentials never appear in the spec)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    secret: str
    key: str


class ClusterJob(BaseModel):
    """A multi-node training job: N nodes x G GPUs running one command (typically ``teacherlm train``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str = "default"
    image: str
    command: list[str] = Field(min_length=1)
    num_nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(1, ge=0, description="0: a CPU job (one rank per node).")
    cpu: str | None = Field(None, description="CPU request and limit per node, e.g. '16'.")
    memory: str | None = Field(None, description="Memory request and limit per node, e.g. '128Gi'.")
    runtime: RuntimeRef = Field(
        TEACHERLM_RUNTIME, description="The Trainer runtime to run on (kind and name)."
    )
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: list[SecretEnv] = Field(default_factory=list)
    node_selector: dict[str, str] = Field(default_factory=dict, description="e.g. the GPU pool's label.")
    tolerations: list[dict[str, Any]] | None = Field(
        None, description="Default: tolerate nvidia.com/gpu taints when the job asks for GPUs."
    )
    service_account: str | None = Field(
        None,
        description="The nodes' ServiceAccount (a runtime patch): teacherlm's namespace admits none "
        "(manifests/base/admission.yaml); for other namespaces and PyTorchJobs.",
    )
    labels: dict[str, str] = Field(default_factory=dict)
    active_deadline_seconds: int | None = Field(
        DEADLINE_S,
        ge=1,
        description="The run's budget: Trainer fails the job past it (time suspended in a queue not counted).",
    )

    @field_validator("env")
    @classmethod
    def _env_holds_no_secret(cls, env: dict[str, str]) -> dict[str, str]:
        """A plain env value is written into the job's spec, readable by anyone who may read jobs:
        a secret-named variable, a URL with credentials or a known secret value goes by Secret."""
        from ...redaction import is_secret_name, known_secrets, url_credentials

        secrets = set(known_secrets())
        bad = sorted(
            k for k, v in env.items() if is_secret_name(k) or url_credentials(v) or v.strip() in secrets
        )
        if bad:
            raise ValueError(
                f"{', '.join(bad)}: looks like a secret, and a plain value is written into the job's spec; "
                "pass it from a Kubernetes Secret instead (--secret-env NAME=SECRET:KEY)"
            )
        return env

    @property
    def nproc_per_node(self) -> int:
        """Ranks per node (torchrun's ``--nproc-per-node``): one per GPU, one on a CPU job."""
        return max(1, self.gpus_per_node)

    def resolved_tolerations(self) -> list[dict[str, Any]]:
        if self.tolerations is not None:
            return self.tolerations
        return [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}] if self.gpus_per_node else []

    def resources(self) -> dict[str, dict[str, Any]]:
        """Per-node requests and limits. Kubeflow Trainer replaces the runtime's resources with
        ``resourcesPerNode``, so GPUs always go with CPU and memory (default :data:`CPU_PER_GPU`
        cores and :data:`MEMORY_GI_PER_GPU` GiB a GPU): never a node without requests or limits."""
        amounts: dict[str, Any] = {}
        if self.gpus_per_node:
            amounts[GPU] = str(self.gpus_per_node)
        cpu = self.cpu or (str(CPU_PER_GPU * self.gpus_per_node) if self.gpus_per_node else None)
        memory = self.memory or (
            f"{MEMORY_GI_PER_GPU * self.gpus_per_node}Gi" if self.gpus_per_node else None
        )
        if cpu:
            amounts["cpu"] = cpu
        if memory:
            amounts["memory"] = memory
        return {"limits": dict(amounts), "requests": dict(amounts)}

    def env_list(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        out += [
            {"name": s.name, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
            for s in self.secret_env
        ]
        return out


def render_trainjob(job: ClusterJob) -> dict[str, Any]:
    """The ``TrainJob`` manifest, built and validated with ``kubeflow-trainer-api``'s models."""
    from kubeflow_trainer_api import models as m

    pod_patch: dict[str, Any] = {}
    if job.node_selector:
        pod_patch["nodeSelector"] = dict(job.node_selector)
    if job.resolved_tolerations():
        pod_patch["tolerations"] = job.resolved_tolerations()
    if job.service_account:
        pod_patch["serviceAccountName"] = job.service_account
    patches = None
    if pod_patch:
        patches = [
            m.TrainerV1alpha1RuntimePatch.from_dict(
                {
                    "manager": MANAGER,
                    "trainingRuntimeSpec": {
                        "template": {
                            "spec": {
                                "replicatedJobs": [
                                    {"name": "node", "template": {"spec": {"template": {"spec": pod_patch}}}}
                                ]
                            }
                        }
                    },
                }
            )
        ]
    resources = job.resources()
    trainjob = m.TrainerV1alpha1TrainJob(
        api_version=TRAINJOB.api_version,
        kind=TRAINJOB.kind,
        metadata=m.IoK8sApimachineryPkgApisMetaV1ObjectMeta(
            name=job.name,
            namespace=job.namespace,
            labels={"app.kubernetes.io/part-of": "teacherlm"} | job.labels,
        ),
        spec=m.TrainerV1alpha1TrainJobSpec(
            runtime_ref=m.TrainerV1alpha1RuntimeRef(
                api_group=job.runtime.api_group, kind=job.runtime.kind, name=job.runtime.name
            ),
            trainer=m.TrainerV1alpha1Trainer(
                image=job.image,
                command=list(job.command),
                env=[m.IoK8sApiCoreV1EnvVar.from_dict(e) for e in job.env_list()] or None,
                num_nodes=job.num_nodes,
                num_proc_per_node=job.nproc_per_node,
                resources_per_node=m.IoK8sApiCoreV1ResourceRequirements.from_dict(resources)
                if resources["limits"]
                else None,
            ),
            runtime_patches=patches,
            active_deadline_seconds=job.active_deadline_seconds,
        ),
    )
    return trainjob.to_dict()


def render_pytorchjob(job: ClusterJob) -> dict[str, Any]:
    """A Training Operator v1 ``PyTorchJob`` (one Master + N-1 Workers) for clusters without Trainer v2.

    The operator sets ``PET_NNODES``, ``PET_NODE_RANK``, ``PET_NPROC_PER_NODE``, ``MASTER_ADDR`` and
    ``MASTER_PORT`` in every pod, which ``teacherlm train`` reads as its launch flags.
    """
    container: dict[str, Any] = {
        "name": PYTORCHJOB.container,
        "image": job.image,
        "command": list(job.command),
    }
    if job.env_list():
        container["env"] = job.env_list()
    if job.resources()["limits"]:
        container["resources"] = job.resources()
    pod_spec: dict[str, Any] = {"containers": [container]}
    if job.node_selector:
        pod_spec["nodeSelector"] = dict(job.node_selector)
    if job.resolved_tolerations():
        pod_spec["tolerations"] = job.resolved_tolerations()
    if job.service_account:
        pod_spec["serviceAccountName"] = job.service_account
    labels = {"app.kubernetes.io/part-of": "teacherlm"} | job.labels

    def replica(count: int) -> dict[str, Any]:
        template = {"metadata": {"labels": dict(labels)}, "spec": copy.deepcopy(pod_spec)}
        return {"replicas": count, "restartPolicy": "Never", "template": template}

    specs = {"Master": replica(1)}
    if job.num_nodes > 1:
        specs["Worker"] = replica(job.num_nodes - 1)
    run_policy: dict[str, Any] = {"cleanPodPolicy": "None", "backoffLimit": 0}
    if job.active_deadline_seconds:
        run_policy["activeDeadlineSeconds"] = job.active_deadline_seconds
    return {
        "apiVersion": PYTORCHJOB.api_version,
        "kind": PYTORCHJOB.kind,
        "metadata": {"name": job.name, "namespace": job.namespace, "labels": labels},
        "spec": {
            "nprocPerNode": str(job.nproc_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": specs,
        },
    }
