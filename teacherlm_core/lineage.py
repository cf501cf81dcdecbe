"""Lineage in MLflow: datasets as run inputs, trained models as registered model versions.

Every stage run records the datasets it reads (context ``input``) and writes (context
``output``) with :func:`log_datasets`: name, digest (the sha256 its ``manifest.json`` records
for the split file, else the file's own), source URI, schema (its columns) and counts (the
dataset's profile). The MLflow UI shows them on the run, so lineage reads from the seed data to
the student.

Trained teachers and students become versions of one registered model per role
(:data:`~teacherlm_core.stages.params.PipelineParams.teacher_registered_model` /
``student_registered_model``), whose ``source`` is the artifact location where the weights
already live (no second copy), tagged with their lineage (:data:`LINEAGE_TAGS`). The best student
of a comparison takes the alias ``champion`` when it beats the current holder on the same
evaluation set (:func:`promote_champion`).

Tracking never stops the work: each function logs one warning and returns ``None`` when MLflow
fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import __version__, storage
from .tracking import default_tracking_uri, guarded

__all__ = [
    "CHAMPION",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "LINEAGE_FILE",
    "LINEAGE_TAGS",
    "REGISTERED_FILE",
    "DatasetRef",
    "describe_dataset",
    "log_datasets",
    "mark_experiment",
    "promote_champion",
    "register_model",
    "registered_version",
    "split_dataset_ref",
    "versions_of_run",
    "write_lineage",
]

# Beside a trained model: the registered version it became ({"registered_model": "<name>/<version>"}).
REGISTERED_FILE = "registered.json"
# Beside an augmented dataset (and a shard task's output): the teacher version that wrote it
# ({"teacher_version": "<name>/<version>"}).
LINEAGE_FILE = "lineage.json"

log = logging.getLogger(__name__)

# MLflow's own experiment tag (mlflow/server/js ExperimentKind): "custom_model_development" opens
# the experiment on its runs in `mlflow ui` instead of the GenAI traces view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
CHAMPION = "champion"
# Tags of a registered model version (and of the stage run that made it).
LINEAGE_TAGS = (
    "teacherlm.pipeline_run",  # the KFP run id (or the MLflow parent run of a local run)
    "teacherlm.data_digest",  # sha256 of the training data, as its manifest records it
    "teacherlm.teacher_version",  # "<registered teacher>/<version>" that augmented the data ("" for none)
    "teacherlm.package_version",  # teacherlm's version
)
EVAL_DIGEST_TAG = "teacherlm.eval_digest"  # the evaluation set a version's accuracy was measured on
EVAL_ACCURACY_TAG = "teacherlm.eval_accuracy"
VARIANT_TAG = "teacherlm.variant"


def _client():
    import mlflow

    return mlflow.MlflowClient(default_tracking_uri())


def mark_experiment(experiment_id: str) -> None:
    """Tag the experiment as model training (``mlflow.experimentKind`` = ``custom_model_development``)."""
    guarded(
        "experiment kind", _client().set_experiment_tag, experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
    )


# -- datasets -------------------------------------------------------------------------------------


class DatasetRef(dict):
    """What MLflow shows for one dataset: ``name``, ``digest``, ``source`` (URI), ``columns``, ``counts``."""


def _columns_and_records(path: Path) -> tuple[list[str], int | None]:
    """A data file's columns (its first record's keys) and its record count, whatever its format.

    The format is told by content, as every reader tells it (a Parquet file named ``.jsonl``,
    compressed JSON lines); a file no reader takes gives ``([], None)``: lineage describes, it
    never stops the work.
    """
    from .errors import DataError
    from .records import detect_format, iter_raw_records, open_input

    try:
        if detect_format(path) == "parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path)
            return list(meta.schema_arrow.names), meta.metadata.num_rows
        first = next((item for _, item, _ in iter_raw_records(path) if isinstance(item, dict)), {})
        with open_input(str(path)) as fh:
            return list(first), sum(1 for line in fh if line.strip())
    except (DataError, OSError, EOFError, ValueError) as exc:
        log.warning("cannot describe dataset %s for lineage (%s)", path, exc)
        return [], None


def describe_dataset(uri: str | Path, name: str, split: str = "train") -> DatasetRef:
    """The :class:`DatasetRef` of dataset ``uri`` (a directory with ``manifest.json``, or one file).

    The digest is the sha256 the directory's ``manifest.json`` records for the split's file (an
    augmented dataset: its ``train.jsonl``), else the file's own sha256 (a local file) or its URI
    (remote, unread). Counts come from the manifest (``records``/``counts``) or by counting lines.
    """
    from .data.splits import split_file

    uri = str(uri)
    ref = DatasetRef(name=name, source=uri, digest="", columns=[], counts={})
    manifest: dict[str, Any] = {}
    if not storage.is_remote(uri):
        path = Path(uri.removeprefix("file://"))
        if path.is_dir() and (path / "manifest.json").is_file():
            manifest = json.loads((path / "manifest.json").read_text())
        try:
            file = split_file(path, split) if path.is_dir() else path
        except Exception:
            file = None
        if file is not None and file.is_file():
            entry = manifest.get("files", {}).get(file.name) or {}
            ref["digest"] = entry.get("sha256") or storage.sha256_file(file)
            ref["source"] = str(file.resolve())
            columns, records = manifest.get("columns"), entry.get("records")
            if not columns or records is None:  # read from the file itself
                found = _columns_and_records(file)
                columns, records = columns or found[0], found[1] if records is None else records
            ref["columns"], ref["counts"] = sorted(columns), {"records": records}
    elif storage.exists(storage.join(uri, "manifest.json")):  # a remote dataset directory
        manifest = json.loads(storage.read_text(storage.join(uri, "manifest.json")))
        entry = manifest.get("files", {}).get(f"{split}.jsonl") or {}
        ref["digest"], ref["columns"] = entry.get("sha256", ""), sorted(manifest.get("columns") or [])
        ref["counts"] = {"records": entry.get("records")}
    elif storage.exists(uri):  # a remote file: its ETag, without downloading it
        ref["digest"] = str(storage.content_id(uri).get("etag", ""))
    if isinstance(manifest.get("counts"), dict) and manifest.get("kind") == "augmented":
        ref["counts"] |= manifest["counts"]
    elif isinstance(manifest.get("records"), dict):
        ref["counts"] |= {f"build.{k}": v for k, v in manifest["records"].items()}
    ref["digest"] = ref["digest"] or manifest.get("fingerprint") or hashlib.sha256(uri.encode()).hexdigest()
    return ref


def split_dataset_ref(split: Mapping[str, Any], name: str) -> DatasetRef:
    """The :class:`DatasetRef` of the input a split (:func:`teacherlm_core.augment.split.load_split`,
    or a run's ``plan.json``: the same ``input``, ``columns`` and ``inputs``) was cut from, without
    reading it: its content id as digest, its columns and its record count (lines, unreadable ones
    included)."""
    source = split["input"]
    return DatasetRef(
        name=name,
        source=source["uri"],
        digest=str(source.get("sha256") or source.get("etag") or ""),
        columns=sorted(split["columns"]),
        counts={"records": sum(entry["records"] for entry in split["inputs"].values())},
    )


def _mlflow_dataset(ref: Mapping[str, Any]):
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, DataType, Schema

    class _Dataset(MetaDataset):
        @property
        def profile(self):
            return dict(ref["counts"])

        def to_dict(self):
            return super().to_dict() | {"profile": json.dumps(self.profile)}

    import warnings

    with warnings.catch_warnings():  # MLflow registers its local-file source under two schemes and says so
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        source = resolve_dataset_source(ref["source"])
    schema = Schema([ColSpec(DataType.string, c) for c in ref["columns"]]) if ref["columns"] else None
    return _Dataset(source, name=ref["name"], digest=str(ref["digest"])[:36], schema=schema)


def log_datasets(
    run_id: str | None, inputs: Iterable[DatasetRef] = (), outputs: Iterable[DatasetRef] = ()
) -> None:
    """Log datasets as inputs of run ``run_id``, with context ``input`` (read) or ``output`` (written).

    The run's parent (the pipeline run) gets them as well, once per dataset.
    """
    if not run_id:
        return

    def go():
        from mlflow.entities import DatasetInput, InputTag

        entries = [
            DatasetInput(
                _mlflow_dataset(ref)._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", ctx)]
            )
            for ctx, refs in (("input", inputs), ("output", outputs))
            for ref in refs
        ]
        if entries:
            client = _client()
            client.log_inputs(run_id, datasets=entries)
            # The pipeline run lists them too: its row in `mlflow ui` shows the data from seed to student
            # without expanding the stages (MLflow keeps one entry per dataset and run).
            if parent := client.get_run(run_id).data.tags.get("mlflow.parentRunId"):
                client.log_inputs(parent, datasets=entries)

    guarded("log_inputs", go)


# -- the model registry ---------------------------------------------------------------------------


def register_model(
    name: str,
    source: str,
    run_id: str | None,
    *,
    pipeline_run: str,
    data_digest: str,
    teacher_version: str = "",
    extra_tags: Mapping[str, str] | None = None,
    description: str = "",
) -> str | None:
    """Register the model at ``source`` (its artifact location: a local dir or ``s3://`` URI) as a new version of ``name``.

    The version's source is the weights' location itself; nothing is copied. A remote MLflow
    server accepts a local path only inside the run's artifacts, so a local model on a remote
    server is registered with the run as its source and its path in the tag ``teacherlm.weights``.

    Returns:
        ``"<name>/<version>"``, also set as the run's tag ``teacherlm.registered_model``; ``None``
        when MLflow failed (a warning says why).
    """
    from mlflow.exceptions import MlflowException

    tags = {
        "teacherlm.pipeline_run": pipeline_run,
        "teacherlm.data_digest": data_digest,
        "teacherlm.teacher_version": teacher_version,
        "teacherlm.package_version": __version__,
        "teacherlm.weights": source,
        **(extra_tags or {}),
    }

    def go() -> str:
        client = _client()
        try:
            client.create_registered_model(name, description=f"teacherlm {name.rsplit('-', 1)[-1]}s")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        src = source if storage.is_remote(source) else Path(source).resolve().as_uri()
        try:
            mv = client.create_model_version(name, src, run_id=run_id, tags=tags, description=description)
        except MlflowException as exc:
            if "local path" not in str(exc) or not run_id:
                raise
            mv = client.create_model_version(
                name, f"runs:/{run_id}", run_id=run_id, tags=tags, description=description
            )
        ref = f"{name}/{mv.version}"
        if run_id:
            client.set_tag(run_id, "teacherlm.registered_model", ref)
            for key in LINEAGE_TAGS:
                client.set_tag(run_id, key, tags[key])
        return ref

    return guarded("model registration", go)


def versions_of_run(name: str, pipeline_run: str) -> dict[str, Any]:
    """The versions of registered model ``name`` from pipeline run ``pipeline_run``, by their variant tag."""
    found = guarded(
        "search_model_versions",
        _client().search_model_versions,
        f"name = '{name}' and tags.`teacherlm.pipeline_run` = '{pipeline_run}'",
    )
    return {mv.tags.get(VARIANT_TAG, mv.version): mv for mv in found or []}


def promote_champion(
    name: str, pipeline_run: str, accuracy: Mapping[str, float], eval_digest: str
) -> dict[str, Any]:
    """Record each student's accuracy on its version; move alias ``champion`` to the best when it beats the holder.

    Args:
        name: The registered student model.
        pipeline_run: The pipeline run whose students were compared (tag ``teacherlm.pipeline_run``).
        accuracy: Overall accuracy per variant (``plain``, ``augmented``...), in [0, 1].
        eval_digest: Digest of the evaluation set; a holder measured on another set is never compared.

    Returns:
        ``{"champion": "<name>/<version>" or None, "promoted": bool, "reason": str}``.
    """
    result: dict[str, Any] = {"champion": None, "promoted": False, "reason": "no registered student versions"}

    def go():
        from mlflow.exceptions import MlflowException

        client = _client()
        versions = versions_of_run(name, pipeline_run)
        scored = {v: mv for v, mv in versions.items() if v in accuracy}
        for variant, mv in scored.items():
            client.set_model_version_tag(name, mv.version, EVAL_DIGEST_TAG, eval_digest)
            client.set_model_version_tag(name, mv.version, EVAL_ACCURACY_TAG, f"{accuracy[variant]:.6f}")
        if not scored:
            return result
        best_variant = max(scored, key=lambda v: accuracy[v])
        best = scored[best_variant]
        try:
            holder = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            holder = None
        if holder is None:
            reason = f"{best_variant} ({accuracy[best_variant]:.3f}) is the first champion"
        elif holder.tags.get(EVAL_DIGEST_TAG) != eval_digest:
            result.update(
                champion=f"{name}/{holder.version}",
                reason=(
                    f"the champion (version {holder.version}) was evaluated on another set; not compared"
                ),
            )
            return result
        elif accuracy[best_variant] > float(holder.tags.get(EVAL_ACCURACY_TAG, "-1")):
            reason = (
                f"{best_variant} ({accuracy[best_variant]:.3f}) beats version {holder.version} "
                f"({float(holder.tags[EVAL_ACCURACY_TAG]):.3f}) on the same evaluation set"
            )
        else:
            result.update(
                champion=f"{name}/{holder.version}",
                reason=(
                    f"version {holder.version} ({float(holder.tags[EVAL_ACCURACY_TAG]):.3f}) stays champion; "
                    f"best of this run: {best_variant} ({accuracy[best_variant]:.3f})"
                ),
            )
            return result
        client.set_registered_model_alias(name, CHAMPION, best.version)
        result.update(champion=f"{name}/{best.version}", promoted=True, reason=reason)
        return result

    return guarded("champion alias", go) or result


def write_lineage(
    directory: str, *, registered_model: str | None = None, teacher_version: str | None = None
) -> None:
    """Record beside a model (``registered_model``) or a dataset (``teacher_version``) what later
    stages name it by; :func:`registered_version` reads it back."""
    from . import storage

    if registered_model is not None:
        storage.write_text(
            storage.join(directory, REGISTERED_FILE),
            json.dumps({"registered_model": registered_model}) + "\n",
        )
    if teacher_version is not None:
        storage.write_text(
            storage.join(directory, LINEAGE_FILE), json.dumps({"teacher_version": teacher_version})
        )


def registered_version(directory: str) -> str:
    """The ``"<name>/<version>"`` a trained model records in ``registered.json``, or the teacher
    version a dataset records in ``lineage.json`` (``""`` if neither)."""
    from . import storage

    for name in (REGISTERED_FILE, LINEAGE_FILE):
        uri = storage.join(directory, name)
        if storage.exists(uri):
            data = json.loads(storage.read_text(uri))
            return data.get("registered_model") or data.get("teacher_version") or ""
    return ""
