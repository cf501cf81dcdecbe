"""Each stage is one MLflow run, nested under its pipeline run's parent run.

The parent is ``TEACHERLM_MLFLOW_PARENT_RUN_ID`` when set (``teacherlm pipeline run --local`` and
the demo create it and set it), else the run tagged with this task's KFP run id (found, or created
by the first stage that gets there: :func:`~teacherlm_core.tracking.pipeline_parent_run`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from ..run_context import kfp_run_id
from ..tracking import (
    EXPERIMENT,
    PARENT_ENV,
    PIPELINE_RUN_TAG,
    Tracker,
    pipeline_parent_run,
    tracking_reachable,
)

__all__ = [
    "nested_under_parent",
    "parent_run",
    "pipeline_run_id",
    "stage_run",
]

STAGE_TAG = "teacherlm.stage"  # the pipeline step a run records (data_build, train_student...)

log = logging.getLogger(__name__)


def parent_run() -> str | None:
    """The MLflow run this task's runs nest under (``None``: top-level; tracking never stops the work)."""
    parent = os.environ.get(PARENT_ENV) or None
    run_id = kfp_run_id()
    if parent is None and run_id and tracking_reachable():
        try:
            parent = pipeline_parent_run(run_id)
        except Exception as exc:
            log.warning(
                "MLflow parent run for KFP run %s unavailable (%s); stage run is top-level", run_id, exc
            )
    return parent


def pipeline_run_id() -> str:
    """The pipeline run a stage belongs to: its KFP run id, else its MLflow parent run ("" for neither)."""
    return kfp_run_id() or os.environ.get(PARENT_ENV, "")


def _stage_tags(name: str, stage: str | None) -> dict[str, str]:
    tags = {STAGE_TAG: stage or name}
    if kfp_run_id():
        tags[PIPELINE_RUN_TAG] = kfp_run_id()
    return tags


@contextmanager
def stage_run(
    name: str, params: Mapping[str, Any] | None = None, *, stage: str | None = None, children: bool = False
) -> Iterator[Tracker]:
    """A :class:`~teacherlm_core.tracking.Tracker` run for stage ``name``, with ``params`` logged.

    The run is tagged ``teacherlm.stage`` = ``stage`` (default: the first word of ``name``) and
    its experiment is marked as model training (:func:`~teacherlm_core.lineage.mark_experiment`).
    With ``children`` (a training stage), the runs its recipe opens while it is open, here or in
    the recipe's ranks, nest under it (``$TEACHERLM_MLFLOW_PARENT_RUN_ID``).
    """
    from ..lineage import mark_experiment

    with Tracker(
        EXPERIMENT, run_name=name, parent_run_id=parent_run(), tags=_stage_tags(name, stage)
    ) as tracker:
        tracker.log_params({"stage": name, **(params or {})})
        if tracker.experiment_id:
            mark_experiment(tracker.experiment_id)
        with nested_under_parent(tracker.run_id) if children and tracker.run_id else nullcontext():
            yield tracker


@contextmanager
def nested_under_parent(parent: str | None = None) -> Iterator[None]:
    """Make the runs opened meanwhile (in this process or its ranks) children of ``parent`` (default:
    the current parent, :func:`parent_run`)."""
    before = os.environ.get(PARENT_ENV)
    parent = parent or before or parent_run()
    if parent:
        os.environ[PARENT_ENV] = parent
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PARENT_ENV, None)
        else:
            os.environ[PARENT_ENV] = before
