"""What the two training stages share: where a recipe writes, and their launch parameters on the config."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..run_context import IMAGES, run_root
from ..train.config import with_launch

if TYPE_CHECKING:
    from ..train.config import RecipeConfigT

__all__ = ["TRAIN_IMAGE", "record_training", "scratch", "shared", "stage_launch"]

TRAIN_IMAGE = IMAGES["train"]  # what a TrainJob's nodes run


def stage_launch(
    cfg: RecipeConfigT, nnodes: int, nproc_per_node: int, deepspeed: str, seed: int
) -> RecipeConfigT:
    """``cfg`` with a training stage's launch parameters (:func:`~teacherlm_core.train.with_launch`)."""
    # Checked now, set on each node: a TrainJob's torch runtime gives the nodes PET_MASTER_PORT.
    return with_launch(
        cfg,
        nproc_per_node=nproc_per_node,
        nnodes=nnodes,
        deepspeed=deepspeed or None,
        master_port=29500 if nnodes > 1 else None,
        seed=seed,
    )


@contextmanager
def scratch(work_root: str, *parts: str) -> Iterator[str]:
    """Where a recipe writes: under ``work_root/<KFP run id>/`` (kept, so a retry resumes), else a temp dir."""

    if work_root:
        yield run_root(work_root, *parts)
        return
    with tempfile.TemporaryDirectory(prefix="teacherlm-train-") as tmp:
        yield str(Path(tmp, *parts))


def shared(path: Path, work_root: str, launcher: str) -> str:
    """``path`` where the recipe's ranks can read it: as it is for torchrun, on ``work_root`` for a TrainJob."""
    from .. import storage

    if launcher != "trainjob":
        return str(path)
    if not work_root:
        raise ConfigError(
            "work_root", ["a TrainJob needs shared storage (an s3:// prefix) for its data and model"]
        )
    target = run_root(work_root, "data", path.parent.name, path.name)
    storage.copy(str(path), target)
    return target


def record_training(
    run,
    *,
    role: str,
    registered_model: str,
    output: str,
    model_uri: str,
    data: str,
    data_name: str,
    accelerators: int,
    wall_seconds: float,
    pipeline_run: str,
    teacher_version: str = "",
    extra_costs: dict | None = None,
    extra_tags: dict[str, str] | None = None,
) -> dict:
    """After a training stage: its dataset input, its cost (``output/cost.json``) and its registered model version.

    Args:
        run: The stage's :class:`~teacherlm_core.tracking.Tracker`.
        role: ``teacher`` or ``student``.
        registered_model: The registered model the trained model becomes a version of.
        output: Local dir of the trained model (``metrics.jsonl``, card).
        model_uri: Where the weights live for good (the task's artifact URI; default: ``output``).
        data: The training data file; its digest tags the version.
        accelerators: Ranks of the job (``nnodes x nproc_per_node``).
        extra_costs: More stages' costs to keep in ``cost.json`` (the augmentation behind a student).

    Returns:
        ``{"registered_model": "<name>/<version>" or "", "cost": {stage: cost}}``; the version is
        also written to ``output/registered.json`` so that later stages can name it.
    """

    from ..cost import training_cost, write_cost
    from ..lineage import describe_dataset, log_datasets, register_model, write_lineage

    ref = describe_dataset(data, data_name)
    samples = ref["counts"].get("records") or 0
    cost = {"training": training_cost(output, accelerators, samples, wall_seconds), **(extra_costs or {})}
    write_cost(output, cost)
    run.log_metrics({f"cost.{k}": v for k, v in cost["training"].model_dump().items()})
    log_datasets(run.run_id, [ref])
    registered = (
        register_model(
            registered_model,
            model_uri or output,
            run.run_id,
            pipeline_run=pipeline_run,
            data_digest=ref["digest"],
            teacher_version=teacher_version,
            extra_tags={"teacherlm.role": role, **(extra_tags or {})},
        )
        or ""
    )
    write_lineage(output, registered_model=registered)
    return {"registered_model": registered, "cost": {k: v.model_dump() for k, v in cost.items()}}
