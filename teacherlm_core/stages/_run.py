"""Each stage is one MLflow run, nested under its pipeline run's parent run.

The parent is ``TEACHERLM_MLFLOW_PARENT_RUN_ID`` when set (``teacherlm pipeline run --local`` and
the demo create it and set it), else the run tagged with this task's KFP run id (found, or created
by the first stage that gets there: :func:`~teacherlm_core.tracking.pipeline_parent_run`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..kfp_support.run_id import kfp_run_id
from ..tracking import EXPERIMENT, PARENT_ENV, PIPELINE_RUN_TAG, Tracker, pipeline_parent_run

__all__ = ["nested_under_parent", "parent_run", "stage_run"]

log = logging.getLogger(__name__)


def parent_run() -> str | None:
    """The MLflow run this task's runs nest under (``None``: top-level; tracking never stops the work)."""
    parent = os.environ.get(PARENT_ENV) or None
    run_id = kfp_run_id()
    if parent is None and run_id:
        try:
            parent = pipeline_parent_run(run_id)
        except Exception as exc:
            log.warning(
                "MLflow parent run for KFP run %s unavailable (%s); stage run is top-level", run_id, exc
            )
    return parent


@contextmanager
def stage_run(name: str, params: Mapping[str, Any] | None = None) -> Iterator[Tracker]:
    """A :class:`~teacherlm_core.tracking.Tracker` run for stage ``name``, with ``params`` logged."""
    tags = {PIPELINE_RUN_TAG: kfp_run_id()} if kfp_run_id() else {}
    with Tracker(EXPERIMENT, run_name=name, parent_run_id=parent_run(), tags=tags) as tracker:
        tracker.log_params({"stage": name, **(params or {})})
        yield tracker


@contextmanager
def nested_under_parent() -> Iterator[None]:
    """Make the runs that a recipe opens itself (in this process or its ranks) children of the parent."""
    before = os.environ.get(PARENT_ENV)
    parent = before or parent_run()
    if parent:
        os.environ[PARENT_ENV] = parent
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PARENT_ENV, None)
