"""The training stages of the pipelines: the recipes run here (``torchrun``) or as a ``TrainJob``.

``train_teacher`` and ``train_student`` (what the training components call) turn pipeline
parameters into a recipe config (a shipped config, or a YAML file, plus overrides), run it, and
copy the trained model into the task's ``Model`` artifact. ``launcher``
``auto`` means a Kubeflow Trainer ``TrainJob`` inside Kubernetes (N nodes x G GPUs, followed to
the end by this task) and ``torchrun`` on this machine elsewhere (KFP's local runner).
A ``TrainJob``'s pods cannot see the task's files, so it needs ``work_root`` (an ``s3://``
prefix) for its data, config and model; with ``work_root`` a retried task also resumes.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ConfigError, DataError
from .pipeline_ops import IMAGES, VARIANTS, _parent, kfp_run_id, split_file

__all__ = ["LAUNCHERS", "teacher_data", "train_student", "train_teacher"]

log = logging.getLogger(__name__)

LAUNCHERS = ("auto", "torchrun", "trainjob")
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
TRAIN_TIMEOUT_S = 7 * 86400


def _launcher(launcher: str, nodes: int) -> str:
    """``auto``: a TrainJob inside Kubernetes (a KFP pod), ``torchrun`` on this machine elsewhere."""
    if launcher not in LAUNCHERS:
        raise ConfigError("launcher", [f"{launcher!r}: choose {', '.join(LAUNCHERS)}"])
    if launcher == "auto":
        launcher = "trainjob" if os.environ.get("KUBERNETES_SERVICE_HOST") else "torchrun"
    if launcher == "torchrun" and nodes > 1:
        raise ConfigError("nodes", [f"{nodes} nodes need launcher=trainjob (torchrun here runs one node)"])
    return launcher


@contextmanager
def _nested_under_parent() -> Iterator[None]:
    """Make the recipes' own MLflow runs children of this pipeline run's parent."""
    from .tracking import PARENT_ENV

    before = os.environ.get(PARENT_ENV)
    parent = before or _parent()
    if parent:
        os.environ[PARENT_ENV] = parent
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PARENT_ENV, None)


def _copy_model(src: str, dest: str | Path, *, skip: tuple[str, ...] = ("checkpoints/",)) -> None:
    """Copy a trained model's files (local dir or URI) into ``dest``, checkpoints left out."""
    from . import storage

    src = src.rstrip("/")
    for uri in storage.list_files(src):
        rel = uri[len(src) :].strip("/")
        if not rel.startswith(skip) and rel != "_SUCCESS":
            storage.copy(uri, os.path.join(dest, rel))


def _train_overrides(max_steps: int, nodes: int, procs_per_node: int, deepspeed: str) -> dict[str, Any]:
    return {
        "train.max_steps": max_steps or None,
        "launch.deepspeed": deepspeed or None,
        "launch.nproc": procs_per_node,
        "launch.nnodes": nodes,
        # Checked now, set on each node: a TrainJob's torch runtime gives the nodes PET_MASTER_PORT.
        "launch.master_port": 29500 if nodes > 1 else None,
    }


def _run_recipe(kind: str, cfg, launcher: str) -> None:
    """Run a recipe here (torchrun) or as a Kubeflow Trainer TrainJob that this task follows to the end."""
    if launcher == "trainjob":
        _trainjob(kind, cfg)
        return
    from .train import train_student as student_recipe
    from .train import train_teacher as teacher_recipe

    (student_recipe if kind == "student" else teacher_recipe)(cfg)


def _namespace() -> str:
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return os.environ.get("TEACHERLM_NAMESPACE") or (
        path.read_text().strip() if path.is_file() else "default"
    )


def _trainjob(kind: str, cfg, *, api_client=None, poll_s: float = 10) -> None:
    """Run a recipe as a Kubeflow Trainer ``TrainJob`` and follow it to the end (a KFP task's pod).

    The config goes next to the output on shared storage; every node runs ``teacherlm train KIND
    --config URI`` (its launch flags come from the runtime's ``PET_*`` variables), on the GPU pool,
    with this pod's tracking and S3 settings. A retried task follows the job it already started.
    """
    import yaml
    from kubernetes import client as k8s

    from . import storage
    from .tracking import PARENT_ENV
    from .train.k8s import TRAINJOB, ClusterJob, SecretEnv, follow, render_trainjob, run_job

    run_id = kfp_run_id()
    config_uri = cfg.output.rstrip("/") + ".config.yaml"
    storage.write_text(config_uri, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    tag = Path(cfg.output.rstrip("/")).name.replace("_", "-").lower()
    name = f"tlm-{kind}-{run_id[:8]}-{tag}"[:63].rstrip("-")
    env = {
        k: os.environ[k]
        for k in ("MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3", PARENT_ENV)
        if os.environ.get(k)
    }
    secret = os.environ.get("TEACHERLM_S3_SECRET", "teacherlm-minio")
    secret_env = (
        [SecretEnv(name=k, secret=secret, key=k) for k in S3_KEYS]
        if "AWS_ACCESS_KEY_ID" in os.environ
        else []
    )
    key, _, value = os.environ.get("TEACHERLM_GPU_POOL", "nvidia.com/gpu.present=true").partition("=")
    job = ClusterJob(
        name=name, namespace=_namespace(), image=IMAGES["train"], num_nodes=cfg.launch.nnodes,
        gpus_per_node=cfg.launch.nproc, command=["teacherlm", "train", kind, "--config", config_uri],
        env=env, secret_env=secret_env, node_selector={key: value} if key else {},
        labels={"teacherlm.io/kfp-run": run_id[:63]},
    )  # fmt: skip
    if api_client is None:  # this task's pod: its service account may create TrainJobs (manifests' RBAC)
        from kubernetes import config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        api_client = k8s.ApiClient()
    api = k8s.CustomObjectsApi(api_client)
    try:
        api.get_namespaced_custom_object(
            TRAINJOB.group, TRAINJOB.version, job.namespace, TRAINJOB.plural, name
        )
        exists = True
    except k8s.exceptions.ApiException as exc:
        if exc.status != 404:
            raise
        exists = False
    if exists:  # a retried task: the job it started may still be running, or done
        log.warning("TrainJob %s/%s exists: following it", job.namespace, name)
        follow(name, TRAINJOB, job.namespace, api_client=api_client, timeout_s=TRAIN_TIMEOUT_S, poll_s=poll_s)
    else:
        run_job(render_trainjob(job), api_client=api_client, timeout_s=TRAIN_TIMEOUT_S, poll_s=poll_s)


@contextmanager
def _scratch(work_root: str, *parts: str) -> Iterator[str]:
    """Where a recipe writes: under ``work_root`` (kept, so a retry resumes), else a temp dir."""
    from . import storage

    if work_root:
        yield storage.join(work_root, kfp_run_id() or "local", *parts)
        return
    with tempfile.TemporaryDirectory(prefix="teacherlm-train-") as tmp:
        yield str(Path(tmp, *parts))


def train_student(
    base_model: str,
    data: str,
    output: str,
    *,
    variant: str,
    config: str = "student",
    max_steps: int = 0,
    nodes: int = 1,
    procs_per_node: int = 1,
    deepspeed: str = "",
    launcher: str = "auto",
    work_root: str = "",
) -> dict:
    """Train the ``variant`` student (see :data:`VARIANTS`) on the train split of ``data`` into ``output``."""
    from .train import load_config

    if variant not in VARIANTS:
        raise ConfigError("variant", [f"{variant!r}: choose {', '.join(VARIANTS)}"])
    if split_file(data, "train").stat().st_size == 0:
        raise DataError(
            str(split_file(data, "train")), None, None,
            "no training records: the augmentation quarantined every sample (see the dataset's quarantine/ "
            "and manifest.json; a stronger teacher or a larger max_new_tokens helps)",
        )  # fmt: skip
    launcher = _launcher(launcher, nodes)
    with _scratch(work_root, "students", variant) as where:
        overrides = {
            "model": base_model, "data": _shared(split_file(data, "train"), work_root, launcher),
            "output": where, "name": f"student-{variant}", "texts.fields": list(VARIANTS[variant]),
            "texts.include_plain": True, **_train_overrides(max_steps, nodes, procs_per_node, deepspeed),
        }  # fmt: skip
        cfg = load_config("student", config, overrides)
        with _nested_under_parent():
            _run_recipe("student", cfg, launcher)
        _copy_model(where, output)
    return _card_summary(output) | {"variant": variant, "fields": ",".join(VARIANTS[variant]) or "none"}


def teacher_data(seed_data: str, star_data: str, output: str | Path) -> int:
    """Stage 1's data: the annotated seed samples, plus each STaR rationale as one more sample.

    A STaR record keeps its sample's fields but its chain of thought is the teacher's own kept
    rationale; it gets the id ``<id>-star``. Returns the number of records written.
    """
    from .schema import write_jsonl
    from .star import KEPT

    seed = [s.to_record() for s in _records(split_file(seed_data, "train"))]
    star = Path(star_data, KEPT) if Path(star_data).is_dir() else Path(star_data)
    extra = [r.to_record() | {"id": f"{r.id}-star"} for r in (_records(star) if star.stat().st_size else [])]
    return write_jsonl(output, seed + extra)


def _records(path: Path):
    from .schema import load_samples

    return load_samples(path)


def train_teacher(
    base_model: str,
    seed_data: str,
    star_data: str,
    output: str,
    *,
    config: str = "teacher",
    personalise_data: str = "",
    max_steps: int = 0,
    nodes: int = 1,
    procs_per_node: int = 1,
    deepspeed: str = "",
    launcher: str = "auto",
    work_root: str = "",
) -> dict:
    """The teacher recipe on the seed + STaR data (stage 1) and ``personalise_data`` (stage 2, when given).

    The stages' settings come from the config's stages of the same names (``multitask``,
    ``personalise``), their data from here; ``output`` gets the last stage's model,
    ``stages/teacher-data.jsonl`` (stage 1's data) and ``stages/<stage>/`` with each stage's card
    and metrics.
    """
    from . import storage
    from .train import TeacherStage, load_config

    launcher = _launcher(launcher, nodes)
    with _scratch(work_root, "teacher") as where:
        base = load_config("teacher", config, {"model": base_model, "output": where})
        named = {s.name: s for s in base.stages}
        combined = Path(output, "stages", "teacher-data.jsonl")  # kept with the model: its lineage
        teacher_data(seed_data, star_data, combined)
        wanted = [("multitask", _shared(combined, work_root, launcher))]
        if personalise_data:
            wanted.append(("personalise", personalise_data))
        stages = [
            named.get(name, TeacherStage(name=name)).model_copy(update={"data": path, "specialise": False})
            for name, path in wanted
        ]
        if max_steps:  # stage 1 is the long one; stage 2's steps stay the config's
            stages[0] = stages[0].model_copy(update={"max_steps": max_steps, "epochs": None})
        raw = base.model_dump() | {"stages": [st.model_dump() for st in stages]}
        cfg = load_config("teacher", raw, _train_overrides(0, nodes, procs_per_node, deepspeed))
        with _nested_under_parent():
            _run_recipe("teacher", cfg, launcher)
        _copy_model(storage.join(where, f"{len(stages)}-{stages[-1].name}"), output)
        for number, st in enumerate(stages, start=1):
            for name in ("README.md", "metrics.jsonl"):
                src = storage.join(where, f"{number}-{st.name}", name)
                if storage.exists(src):
                    storage.copy(src, os.path.join(output, "stages", f"{number}-{st.name}", name))
    return _card_summary(output) | {"stages": ",".join(st.name for st in stages)}


def _shared(path: Path, work_root: str, launcher: str) -> str:
    """A TrainJob's pods cannot see this task's files: put the data on shared storage first."""
    from . import storage

    if launcher != "trainjob":
        return str(path)
    if not work_root:
        raise ConfigError(
            "work_root", ["a TrainJob needs shared storage (an s3:// prefix) for its data and model"]
        )
    target = storage.join(work_root, kfp_run_id() or "local", "data", path.parent.name, path.name)
    storage.copy(str(path), target)
    return target


def _card_summary(model_dir: str) -> dict:
    """The training summary a KFP Model artifact carries as metadata (from the stage's metrics)."""
    metrics = Path(model_dir, "metrics.jsonl")
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()] if metrics.exists() else []
    last = lines[-1] if lines else {}
    return {"steps": last.get("step", 0), "final_loss": last.get("loss")}
