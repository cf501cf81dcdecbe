"""What each pipeline stage does: one function per KFP component in ``components/`` (the training
stages are in :mod:`.pipeline_train`).

A component's body imports this module and calls one function with its artifacts' local paths
(``artifact.path``) and its parameters; the function calls the library and returns a small,
JSON-able summary that the component records as artifact metadata. So the pipelines hold no
logic, and every stage can be called (and tested) without Kubeflow.

Tracking: each stage is one MLflow run, nested under the pipeline run's parent run:
``TEACHERLM_MLFLOW_PARENT_RUN_ID`` when set (``teacherlm pipeline run --local`` and the demo
create the parent and set it), else the run tagged with this KFP run's id (found, or created by
the first stage that gets there).

Datasets are directories: ``{split}.jsonl`` (or ``.parquet``) per split, as ``teacherlm data
build`` writes them; :func:`split_file` finds a split in one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, DataError, TeacherLMError
from .schema import FIELDS

__all__ = [
    "EXPERIMENT",
    "IMAGES",
    "RUN_ENV",
    "VARIANTS",
    "augment_shard",
    "build_data",
    "compare",
    "evaluate_model",
    "kfp_run_id",
    "merge_shards",
    "plan_shards",
    "split_file",
    "stage",
    "star",
    "student_variants",
]

log = logging.getLogger(__name__)

# The images of this release (components/_image.py uses them; a TrainJob runs the train image).
IMAGES = {kind: f"ghcr.io/teacherlm/teacherlm-{kind}:{__version__}" for kind in ("core", "train", "vllm")}
EXPERIMENT = "teacherlm"  # the recipes' runs nest under the same parent, so one experiment
KFP_RUN_TAG = "teacherlm.kfp_run_id"
# The KFP run id, from the pod's label ``pipeline/runid`` (pipelines/_settings.py maps it in): an
# environment variable, not a component input, so that it never spoils KFP's cache keys.
RUN_ENV = "TEACHERLM_KFP_RUN_ID"


def kfp_run_id() -> str:
    """This task's KFP run id ("" outside a pipeline)."""
    return os.environ.get(RUN_ENV, "")


# Student variants: which explanation fields the student trains on. "plain" is the question and
# its answer only; the single-field variants are the paper's per-field ablation.
VARIANTS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "augmented": FIELDS,
    **{f: (f,) for f in FIELDS},
}


# -- tracking ------------------------------------------------------------------------------------
def _parent_for(run_id: str) -> str | None:
    """The parent run of KFP run ``run_id``: found by tag, else created.

    Stages that start at the same moment may both create one; each then picks the oldest and the
    loser deletes its own, so all stages end up under one parent.
    """
    import mlflow

    from .tracking import default_tracking_uri

    client = mlflow.MlflowClient(default_tracking_uri())
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(EXPERIMENT)
    query = f"tags.`{KFP_RUN_TAG}` = '{run_id}' and tags.`teacherlm.parent` = 'true'"
    found = client.search_runs([exp_id], query, order_by=["attributes.start_time ASC"])
    if found:
        return found[0].info.run_id
    mine = client.create_run(
        exp_id, run_name=f"kfp {run_id}", tags={KFP_RUN_TAG: run_id, "teacherlm.parent": "true"}
    ).info.run_id
    found = client.search_runs(
        [exp_id], query, order_by=["attributes.start_time ASC", "attributes.run_id ASC"]
    )
    winner = found[0].info.run_id if found else mine
    if winner != mine:
        client.delete_run(mine)
    else:  # nothing ends it later: it only groups the stages' runs
        client.set_terminated(mine, "FINISHED")
    return winner


def _parent() -> str | None:
    from .tracking import PARENT_ENV

    parent = os.environ.get(PARENT_ENV) or None
    run_id = kfp_run_id()
    if parent is None and run_id:
        try:
            parent = _parent_for(run_id)
        except Exception as exc:  # tracking never stops the work
            log.warning(
                "MLflow parent run for KFP run %s unavailable (%s); stage run is top-level", run_id, exc
            )
    return parent


@contextmanager
def stage(name: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A :class:`~teacherlm_core.tracking.Tracker` run for one stage, nested as described above."""
    from .tracking import Tracker

    tags = {KFP_RUN_TAG: kfp_run_id()} if kfp_run_id() else {}
    with Tracker(EXPERIMENT, run_name=name, parent_run_id=_parent(), tags=tags) as tracker:
        tracker.log_params({"stage": name, **(params or {})})
        yield tracker


# -- datasets ------------------------------------------------------------------------------------
def split_file(data: str | Path, split: str) -> Path:
    """The file holding ``split`` of dataset ``data`` (a file is its own only split)."""
    path = Path(data)
    if path.is_file():
        return path
    for ext in ("jsonl", "parquet"):
        if (path / f"{split}.{ext}").is_file():
            return path / f"{split}.{ext}"
    raise DataError(str(path), None, None, f"no {split}.jsonl or {split}.parquet in this dataset")


def build_data(output: str, *, tasks: str = "", per_task: int = 100, seed: int = 0) -> dict:
    """The built-in annotated suite (``teacherlm data build``); returns its record counts."""
    from .data import build_builtin

    names = [t.strip() for t in tasks.split(",") if t.strip()] or None
    with stage("data", {"tasks": tasks or "all", "per_task": per_task, "seed": seed}) as t:
        manifest = build_builtin(output, names, per_task, seed)
        t.log_metrics(
            {"records": manifest["records"]["out"], "duplicates": manifest["records"]["duplicates"]}
        )
    return {k: manifest["records"][k] for k in ("in", "out", "quarantined", "duplicates")}


def star(
    model: str,
    data: str,
    output: str,
    *,
    rounds: int = 1,
    max_new_tokens: int = 128,
    temperature: float = 0.7,
    seed: int = 0,
    engine: str = "vllm",
) -> dict:
    """STaR rounds over the train split (``teacherlm data star``); returns the counts."""
    from .star import StarConfig, run_star

    cfg = StarConfig(rounds=rounds, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    with stage("star", {"model": model, "engine": engine, **vars(cfg)}) as t:
        manifest = run_star(data, output, model, config=cfg, engine=engine)
        counts = {k: v for k, v in manifest["counts"].items() if isinstance(v, int)}
        t.log_metrics(counts)
    return counts


# -- augmentation --------------------------------------------------------------------------------
def plan_shards(data: str, num_shards: int) -> list[int]:
    """Check the train split exists and the shard count is sane; the shard indices to fan out over."""
    if not 1 <= num_shards <= 99999:
        raise ConfigError("num_shards", [f"must be in [1, 99999], got {num_shards}"])
    source = split_file(data, "train")
    if source.stat().st_size == 0:
        raise DataError(str(source), None, None, "empty dataset: nothing to augment")
    return list(range(num_shards))


def augment_shard(
    teacher: str,
    data: str,
    output: str,
    *,
    shard_index: int,
    num_shards: int,
    fields: str = ",".join(FIELDS),
    max_new_tokens: int = 256,
    temperature: float = 0.7,
    seed: int = 0,
    engine: str = "vllm",
    gpus: int = 1,
    work_root: str = "",
) -> dict:
    """Augment one shard of the train split into ``output`` (``plan.json`` + ``shards/<shard>/``).

    With ``work_root`` (e.g. an ``s3://`` prefix) the shard writes under
    ``work_root/<KFP run id>/augment`` as it goes, so a retried task resumes its finished parts,
    and is then copied into ``output``.
    """
    from . import storage
    from .augment import AugmentConfig, augment, shard_name

    root = storage.join(work_root, kfp_run_id() or "local", "augment") if work_root else output
    cfg = AugmentConfig(
        model=teacher, input=str(split_file(data, "train")), output=root, num_shards=num_shards, fields=fields,
        engine=engine, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
        tensor_parallel_size=gpus if engine == "vllm" else 1,
    )  # fmt: skip
    params = {"shard": shard_index, "num_shards": num_shards, "engine": engine, "fields": fields}
    with stage(f"augment shard {shard_index}", params) as t:
        done = augment(cfg, shard_index, tracker=t)
    if work_root:  # the finished shard, from the shared root into this task's output
        storage.copy(cfg.plan_uri, os.path.join(output, "plan.json"))
        storage.download_dir(
            cfg.shard_dir(shard_index), os.path.join(output, "shards", shard_name(shard_index, num_shards))
        )
    return {k: done[k] for k in ("in", "out", "quarantined", "tokens")}


def merge_shards(shards: list[str], output: str) -> dict:
    """Gather the shard outputs of one plan into ``output`` and merge them (``teacherlm augment merge``).

    Writes ``train.jsonl`` (every augmented record, for the students), ``data/*.parquet``,
    ``quarantine/``, ``manifest.json`` and ``README.md``; the per-shard parts are dropped once merged
    (the manifest keeps their checksums).
    """
    from .augment import merge
    from .schema import load_samples, write_jsonl

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    plans = [json.loads(Path(s, "plan.json").read_text()) for s in shards]
    if not plans or len({p["fingerprint"] for p in plans}) != 1:
        raise TeacherLMError(
            f"{len(shards)} shard outputs from {len({p['fingerprint'] for p in plans})} plans: refusing to mix them"
        )
    plan = dict(plans[0])
    plan["config"] = plan["config"] | {"output": str(out)}  # the merge reads the shards from here
    (out / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True))
    (out / "shards").mkdir(exist_ok=True)
    for s in shards:  # linked, not copied: the merge only reads them
        for shard_dir in sorted(Path(s, "shards").iterdir()):
            (out / "shards" / shard_dir.name).symlink_to(shard_dir.resolve(), target_is_directory=True)
    with stage("merge", {"shards": len(shards)}) as t:
        manifest = merge(str(out))
        t.log_metrics(manifest["counts"])
    records = [r for p in sorted((out / "data").glob("*.parquet")) for r in load_samples(p)]
    write_jsonl(out / "train.jsonl", records)
    shutil.rmtree(out / "shards")  # the links (their targets are the shard tasks' own outputs)
    consistency = manifest["chain_of_thought_consistency"]["rate"]
    return manifest["counts"] | {"chain_of_thought_consistency": consistency}


# -- students, evaluation, report ----------------------------------------------------------------
def student_variants(ablation: bool = False) -> list[str]:
    """The students to train: plain and augmented, plus one per field when ``ablation``."""
    return list(VARIANTS) if ablation else ["plain", "augmented"]


def evaluate_model(
    model: str,
    data: str,
    output: str,
    *,
    name: str,
    engine: str = "vllm",
    batch_size: int = 32,
    split: str = "test",
) -> dict:
    """Zero-shot rank classification of ``model`` on ``split`` of ``data``; writes the report JSON."""
    from .engines import get_engine
    from .evaluate import evaluate, load_eval_samples

    samples = load_eval_samples(str(split_file(data, split)))
    with stage(f"eval {name}", {"model": name, "engine": engine, "split": split}) as t:
        report = evaluate(get_engine(engine, model, batch_size=batch_size), samples, output, model_name=name)
        metrics = {"accuracy": report.overall.accuracy} | {
            f"accuracy.{k}": v.accuracy for k, v in report.tasks.items()
        }
        t.log_metrics(metrics)
    return metrics


def compare(
    reports: list[str],
    output: str,
    *,
    title: str = "teacherlm: plain vs augmented students",
    markdown: str = "",
    html: str = "",
) -> dict:
    """The comparison report of eval report files (named by their models) under ``output``.

    ``markdown`` and ``html``, when given, get copies of ``report.md`` and ``report.html`` (a
    pipeline's Markdown and HTML outputs). The summary's ``metrics`` are flat, for KFP Metrics.
    """
    from .compare import write_comparison
    from .evaluate import EvalReport

    named = {EvalReport.model_validate_json(Path(p).read_text()).model: p for p in reports}
    if len(named) != len(reports):
        raise TeacherLMError(f"eval reports with the same model name among {len(reports)}: {sorted(named)}")
    with stage("report", {"models": ",".join(named)}) as t:
        summary = write_comparison(named, output, title=title)
        metrics = {f"accuracy.{k}": v for k, v in summary["overall"].items()}
        metrics |= {f"gain.{k}": v for k, v in summary["gain"].items()}
        t.log_metrics(metrics)
        for name in ("report.md", "accuracy.png", "gain.png"):
            if (Path(output) / name).exists():
                t.log_artifact(Path(output) / name)
    for src, dst in (("report.md", markdown), ("report.html", html)):
        if dst:
            shutil.copyfile(Path(output) / src, dst)
    return summary | {"metrics": metrics}
