"""Multi-node training on Kubernetes: render a Kubeflow Trainer ``TrainJob`` and follow it to the end.

    job = ClusterJob(name="teacher-r1", image=IMAGE, num_nodes=4, gpus_per_node=8,
                     command=["teacherlm", "train", "teacher", "--config", "s3://teacherlm/configs/teacher.yaml"],
                     secret_env=[SecretEnv(name="AWS_ACCESS_KEY_ID", secret="minio", key="accesskey")])
    outcome = run_job(render_trainjob(job), timeout_s=86400)   # submit, stream, raise JobFailed on failure

The ``TrainJob`` is built with the typed models of ``kubeflow-trainer-api`` (``trainer.kubeflow.org/v1alpha1``):
N nodes x G GPUs on teacherlm's ``TrainingRuntime`` (:data:`TEACHERLM_RUNTIME`), the image and command, plain env and env
from Secrets, and a runtime patch that puts the ``node`` pods on the GPU pool (node selector,
``nvidia.com/gpu`` toleration). The runtime's torch plugin sets ``PET_NNODES``, ``PET_NODE_RANK``,
``PET_NPROC_PER_NODE``, ``PET_MASTER_ADDR``/``PORT``, which ``teacherlm train`` reads as its launch
flags. Clusters still on the Training Operator v1 get a ``PyTorchJob`` from :func:`render_pytorchjob`.

:func:`follow` polls the job with the Kubernetes Python client and echoes state changes, events
and the rank-0 pod's log; on failure it raises :class:`JobFailed` with the reason, the warning
events and the tail of each failed pod's log; on timeout it raises too (and can delete the job).
It knows Kueue: a suspended job is "queued" (or "preempted, requeued" once it has run: it resumes
from its last checkpoint when readmitted, so it is followed, never failed), and time spent
suspended counts against an optional queue timeout, never against the run's budget (which the
job itself carries as ``spec.activeDeadlineSeconds``, reset by Trainer on every resume).
"""

from __future__ import annotations

import copy
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import TeacherLMError

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


class JobFailed(TeacherLMError):
    """A cluster training job failed, vanished or ran past its timeout."""


class JobExists(JobFailed):
    """The job's name is taken (409 AlreadyExists): another process created it."""


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
    "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", "Complete", "Failed",
    "jobset.sigs.k8s.io/jobset-name", "node",
)  # fmt: skip
PYTORCHJOB = JobKind(
    "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", "Succeeded", "Failed",
    "training.kubeflow.org/job-name", "pytorch",
)  # fmt: skip


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
        from ..redaction import is_secret_name, known_secrets, url_credentials

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
    def procs_per_node(self) -> int:
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
                num_proc_per_node=job.procs_per_node,
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
            "nprocPerNode": str(job.procs_per_node),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": specs,
        },
    }


@dataclass
class JobOutcome:
    """How a followed job ended."""

    name: str
    kind: str
    state: str
    seconds: float
    events: list[str] = field(default_factory=list)  # the last warning events (at most 10)
    log_tail: str = ""


def _client(api_client):
    if api_client is not None:
        return api_client
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _kind_of(body: dict[str, Any]) -> JobKind:
    for kind in (TRAINJOB, PYTORCHJOB):
        if body.get("kind") == kind.kind:
            return kind
    raise ValueError(f"not a TrainJob or PyTorchJob: kind {body.get('kind')!r}")


def submit(body: dict[str, Any], *, api_client=None) -> str:
    """Create the job; returns its name. A name already taken raises :class:`JobFailed`."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kind = _kind_of(body)
    api = client.CustomObjectsApi(_client(api_client))
    ns = body["metadata"].get("namespace", "default")
    try:  # Strict: an older controller's CRD refuses a field it does not know, never drops it silently
        created = api.create_namespaced_custom_object(
            kind.group, kind.version, ns, kind.plural, body, field_validation="Strict"
        )
    except ApiException as exc:
        unknown = re.findall(r'unknown field "([^"]+)"', _api_message(exc)) if exc.status == 400 else []
        if unknown:
            need = " (Kubeflow Trainer v2.2 or newer is needed)" if kind is TRAINJOB else ""
            raise JobFailed(f"{kind.kind} {body['metadata']['name']}: this cluster's {kind.api_version} "
                            f"{kind.kind} has no {', '.join(unknown)}{need}") from None  # fmt: skip
        error = JobExists if exc.status == 409 else JobFailed
        raise error(f"{kind.kind} {body['metadata']['name']}: creation refused ({exc.status} {exc.reason}): "
                        f"{_api_message(exc)}") from None  # fmt: skip
    return created["metadata"]["name"]


def check_server(api_client=None, *, queue: bool = False) -> None:
    """Refuse, in one line, a cluster that does not serve what a job needs: Trainer's TrainJob API, and
    Kueue's ``v1beta2`` API when the job names a queue.

    Raises:
        JobFailed: a missing API group or version, named with what to install.
    """
    from kubernetes import client

    groups = client.ApisApi(_client(api_client)).get_api_versions().groups or []
    served = {g.name: [v.version for v in g.versions] for g in groups}
    trainer = served.get(TRAINJOB.group, [])
    if TRAINJOB.version not in trainer:
        raise JobFailed(f"this cluster serves {_versions(TRAINJOB.group, trainer)}, not {TRAINJOB.api_version} "
                        "(TrainJob): install Kubeflow Trainer v2.2 or newer")  # fmt: skip
    kueue = served.get("kueue.x-k8s.io", [])
    if queue and "v1beta2" not in kueue:
        raise JobFailed(f"--queue needs Kueue's kueue.x-k8s.io/v1beta2 (Kueue v0.15 or newer); this cluster "
                        f"serves {_versions('kueue.x-k8s.io', kueue)}")  # fmt: skip


def _versions(group: str, versions: list[str]) -> str:
    return ", ".join(f"{group}/{v}" for v in versions) if versions else f"no {group}"


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", exc.body)
    except (TypeError, ValueError):
        return str(exc.body)


SUSPENDED = "Suspended"  # the condition of a job Kueue holds (spec.suspend), on TrainJobs and PyTorchJobs


def _state(obj: dict[str, Any], kind: JobKind) -> tuple[str, str]:
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
    from kubernetes.client.exceptions import ApiException

    from ..redaction import known_secrets, redact_text

    secrets, raw_echo = known_secrets(), echo

    def echo(line: str) -> None:  # pod logs and events may print URLs with credentials
        raw_echo(redact_text(line, secrets))

    api_client = _client(api_client)
    custom, core = client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)
    started = time.monotonic()
    suspended_since: float | None = None  # when the current stretch in the queue began
    queued_s = 0.0  # time spent suspended before that stretch
    has_run = False  # pods ran (so a suspension now is a preemption)
    last_progress = None
    events = EventFeed(core, namespace)
    warnings: deque[str] = deque(maxlen=10)
    cursor: LogCursor | None = None
    last_state = None
    while True:
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
        state, detail = _state(obj, kind)
        if state == "Created" and pods:  # a TrainJob has no Running condition: its pods tell
            phases = {p.status.phase for p in pods}
            state = "Running" if "Running" in phases else "Pending" if "Pending" in phases else state
        now = time.monotonic()
        if state == SUSPENDED:  # Kueue holds it: not admitted yet, or preempted
            if "preempt" in detail.lower() or has_run:
                state = "preempted, requeued"
                detail = (
                    detail + "; " if detail else ""
                ) + "it resumes from its last checkpoint when readmitted"
            else:
                state = "queued"
                detail = detail or "waiting for the queue to admit it"
            if suspended_since is None:
                suspended_since = now
        elif suspended_since is not None:  # admitted (again)
            queued_s += now - suspended_since
            suspended_since = None
            state = "admitted" if state == "Created" else state
        has_run = has_run or state == "Running"
        if state != last_state:
            echo(f"{kind.kind} {name}: {state}" + (f" ({detail})" if detail else ""))
            last_state = state
        trainer = (obj.get("status") or {}).get("trainerStatus")  # Trainer's TrainJobStatus gate: HF progress
        if trainer and trainer.get("progressPercentage") != last_progress:
            echo(f"{kind.kind} {name}: {_progress(trainer)}")
            last_progress = trainer.get("progressPercentage")
        names = {name, *(p.metadata.name for p in pods)}
        for ev in events.new():
            if ev.involved_object.name in names:
                line = f"event {ev.type} {ev.involved_object.kind}/{ev.involved_object.name}: {ev.reason}: {ev.message}"
                if ev.type == "Warning":
                    warnings.append(line)
                echo(line)
        if pods and pods[0].status.phase in ("Running", "Succeeded", "Failed"):
            if cursor is None or cursor.pod != pods[0].metadata.name:  # a replaced pod: a new log
                cursor = LogCursor(core, pods[0].metadata.name, namespace, kind.container)
            for line in cursor.new_lines():
                echo(f"[{cursor.pod}] {line}")
        seconds = time.monotonic() - started
        if state == kind.succeeded:
            return JobOutcome(name, kind.kind, state, seconds, list(warnings))
        if state == kind.failed:
            logs = {p.metadata.name: _pod_log(core, p.metadata.name, namespace, kind.container, tail_lines)
                    for p in pods}  # fmt: skip
            tails = [f"--- {pod} ---\n{log.rstrip()}" for pod, log in logs.items() if log.strip()]
            raise JobFailed(
                f"{kind.kind} {namespace}/{name} failed after {seconds:.0f}s: {detail or 'no reason given'}"
                + ("\nwarning events:\n" + "\n".join(warnings) if warnings else "")
                + ("\n" + "\n".join(tails) if tails else "")
            )
        waiting = now - suspended_since if suspended_since is not None else 0.0
        why = None
        if now - started - queued_s - waiting > timeout_s:
            why = f"still {state} after the {timeout_s:.0f}s timeout"
        elif queue_timeout_s is not None and waiting > queue_timeout_s:
            why = f"still {state} after the {queue_timeout_s:.0f}s queue timeout"
        if why:
            if delete_on_timeout:
                custom.delete_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, name)
            raise JobFailed(
                f"{kind.kind} {namespace}/{name} {why}" + ("; deleted it" if delete_on_timeout else "")
            )
        time.sleep(poll_s)


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


class EventFeed:
    """The namespace's events, each returned once: one list, then watches from the last ``resourceVersion``.

    Each :meth:`new` after the first is a watch that ends after at most ``wait_s`` seconds, so a
    poll reads only the events that came since the last one (never the whole namespace again). A
    ``resourceVersion`` the server no longer keeps (410 Gone) makes it list again, skipping the
    events it already returned (the uids of the last :data:`SEEN` are kept).
    """

    SEEN = 10_000

    def __init__(self, core, namespace: str, wait_s: int = 1):
        self.core, self.namespace, self.wait_s = core, namespace, wait_s
        self.resource_version: str | None = None
        self.seen: deque[str] = deque(maxlen=self.SEEN)

    def _fresh(self, items) -> list:
        out = [ev for ev in items if (ev.metadata.uid or ev.metadata.name) not in self.seen]
        self.seen.extend(ev.metadata.uid or ev.metadata.name for ev in out)
        return out

    def new(self) -> list:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        if self.resource_version is None:
            listed = self.core.list_namespaced_event(self.namespace)
            self.resource_version = listed.metadata.resource_version
            return self._fresh(listed.items)
        items = []
        stream = watch.Watch().stream(
            self.core.list_namespaced_event, self.namespace,
            resource_version=self.resource_version, timeout_seconds=self.wait_s,
        )  # fmt: skip
        try:
            for change in stream:
                ev = change["object"]
                self.resource_version = ev.metadata.resource_version or self.resource_version
                if change["type"] in ("ADDED", "MODIFIED"):
                    items.append(ev)
        except ApiException as exc:
            if exc.status != 410:
                raise
            self.resource_version = None  # too old: list again
            return self._fresh(items) + self.new()
        return self._fresh(items)


class LogCursor:
    """The lines a container logged since the last read, each returned once.

    The first read takes the last :data:`FIRST_LINES` lines (a follower attaching to a job that
    has run for days does not read days of log); later reads ask for ``sinceTime`` = the last
    line's timestamp (the server's own clock, so no skew) and drop the lines already returned at
    exactly that time. Each read is capped at :data:`MAX_BYTES`. ``sinceTime`` is in the Kubernetes
    API but not in the Python client's ``read_namespaced_pod_log``, hence the plain ``call_api``.
    """

    FIRST_LINES = 1000
    MAX_BYTES = 8 * 2**20

    def __init__(self, core, pod: str, namespace: str, container: str):
        self.core, self.pod, self.namespace, self.container = core, pod, namespace, container
        self.stamp: str | None = None  # the last line's timestamp, as the server wrote it
        self.last: str | None = None  # its sort key
        self.at_last = 0  # lines returned with exactly that timestamp

    @staticmethod
    def _key(stamp: str) -> str:
        """A sortable form of an RFC 3339 timestamp (``...05.5Z``: fractions padded to nanoseconds)."""
        whole, _, frac = stamp.rstrip("Z").partition(".")
        return f"{whole}.{frac:0<9}"

    def _read(self) -> str:
        query: list[tuple[str, str]] = [
            ("container", self.container), ("timestamps", "true"), ("limitBytes", str(self.MAX_BYTES)),
        ]  # fmt: skip
        query.append(
            ("tailLines", str(self.FIRST_LINES)) if self.stamp is None else ("sinceTime", self.stamp)
        )
        return self.core.api_client.call_api(
            "/api/v1/namespaces/{namespace}/pods/{name}/log", "GET",
            path_params={"namespace": self.namespace, "name": self.pod}, query_params=query,
            header_params={"Accept": "text/plain"}, response_type="str", auth_settings=["BearerToken"],
            _return_http_data_only=True, _preload_content=True,
        )  # fmt: skip

    def new_lines(self) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        try:
            text = self._read()
        except ApiException:  # the container has not started, or its log is gone
            return []
        out, again = [], 0  # again: lines of this read stamped like the last one returned before
        for raw in (text or "").splitlines():
            stamp, _, line = raw.partition(" ")
            key = self._key(stamp)
            if self.last is not None and key < self.last:
                continue
            if key == self.last:
                again += 1
                if again <= self.at_last:
                    continue
                self.at_last += 1
            else:
                self.stamp, self.last, self.at_last, again = stamp, key, 1, 1
            out.append(line)
        return out


def _pod_log(core, pod: str, namespace: str, container: str, tail_lines: int) -> str:
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_pod_log(pod, namespace, container=container, tail_lines=tail_lines)
    except ApiException:  # the container has not started, or its log is gone
        return ""


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
    kind = _kind_of(body)
    api_client = _client(api_client)
    name = submit(body, api_client=api_client)
    echo(f"submitted {kind.kind} {body['metadata'].get('namespace', 'default')}/{name}")
    return follow(
        name, kind, body["metadata"].get("namespace", "default"),
        api_client=api_client, timeout_s=timeout_s, poll_s=poll_s, echo=echo, queue_timeout_s=queue_timeout_s,
    )  # fmt: skip


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
    kind, api_client = _kind_of(body), _client(api_client)
    namespace = body["metadata"].get("namespace", "default")
    try:
        return _create_or_follow(body, api_client=api_client, timeout_s=timeout_s, poll_s=poll_s, echo=echo,
                                 queue_timeout_s=queue_timeout_s)  # fmt: skip
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

    custom = client.CustomObjectsApi(_client(api_client))
    listed = custom.list_namespaced_custom_object(
        kind.group, kind.version, namespace, kind.plural, label_selector=selector
    )
    deleted = []
    for obj in listed.get("items") or []:
        name = obj["metadata"]["name"]
        state, _ = _state(obj, kind)
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

    kind = _kind_of(body)
    api_client = _client(api_client)
    custom = client.CustomObjectsApi(api_client)
    task, namespace = body["metadata"]["name"], body["metadata"].get("namespace", "default")
    previous = _attempts(custom, kind, namespace, task)
    attempt = 1
    if previous:
        last = previous[-1]
        attempt = int(last["metadata"]["labels"][ATTEMPT_LABEL])
        name = last["metadata"]["name"]
        state, detail = _state(last, kind)
        if state == kind.succeeded:
            echo(f"{kind.kind} {namespace}/{name} (attempt {attempt}) already complete")
            return JobOutcome(name, kind.kind, state, 0.0)
        if state != kind.failed:
            echo(f"{kind.kind} {namespace}/{name} (attempt {attempt}) is {state}: following it")
            return follow(name, kind, namespace, api_client=api_client, timeout_s=timeout_s, poll_s=poll_s,
                          echo=echo, queue_timeout_s=queue_timeout_s)  # fmt: skip
        echo(f"{kind.kind} {namespace}/{name} (attempt {attempt}) failed ({detail or 'no reason given'}): "
             f"starting attempt {attempt + 1}, resuming from the last checkpoint")  # fmt: skip
        attempt += 1
    body = copy.deepcopy(body)
    name = attempt_name(task, attempt)
    body["metadata"]["name"] = name
    body["metadata"]["labels"] = (body["metadata"].get("labels") or {}) | {
        TASK_LABEL: task,
        ATTEMPT_LABEL: str(attempt),
    }
    try:
        return run_job(body, api_client=api_client, timeout_s=timeout_s, poll_s=poll_s, echo=echo,
                       queue_timeout_s=queue_timeout_s)  # fmt: skip
    except JobExists:
        pass
    echo(f"{kind.kind} {namespace}/{name} was created by a concurrent retry: following it")
    return follow(name, kind, namespace, api_client=api_client, timeout_s=timeout_s, poll_s=poll_s, echo=echo,
                  queue_timeout_s=queue_timeout_s)  # fmt: skip
