"""Recent pipeline runs from the MLflow tracking store, for a person at a terminal (``teacherlm runs``).

A pipeline run is a top-level run of the ``teacherlm`` experiment; its stages are its child runs
(tag ``teacherlm.stage``), each with its key results and the registered model version it made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .tracking import EXPERIMENT, default_tracking_uri

__all__ = ["KEY_METRICS", "recent_runs"]

# What a stage's row shows, in this order, when the run has it.
KEY_METRICS = (
    "accuracy",
    "final_loss",
    "steps",
    "records",
    "output",
    "quarantined",
    "cost.training.accelerator_seconds",
    "cost.accelerator_seconds",
)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _result(run) -> str:
    m = run.data.metrics
    shown = [f"{k} {m[k]:.4g}" for k in KEY_METRICS if k in m]
    return ", ".join(shown[:3])


def recent_runs(
    limit: int = 10, experiment: str = EXPERIMENT, tracking_uri: str | None = None
) -> list[dict[str, Any]]:
    """The ``limit`` most recent pipeline runs, newest first.

    Returns:
        ``[{"run_id", "name", "started" (UTC), "status", "stages": [{"name", "stage", "status", "result",
        "registered_model", "datasets"}]}]``; empty when the store has no such experiment.

    Raises:
        Whatever MLflow raises when the store cannot be read (the caller says so).
    """
    import mlflow

    client = mlflow.MlflowClient(tracking_uri or default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    parents = client.search_runs(
        [exp.experiment_id],
        "attributes.status != 'X'",
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    top = [r for r in parents if "mlflow.parentRunId" not in r.data.tags][:limit]
    out = []
    for p in top:
        children = client.search_runs(
            [exp.experiment_id],
            f"tags.`mlflow.parentRunId` = '{p.info.run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=500,
        )
        stages = [
            {
                "name": c.info.run_name,
                "stage": c.data.tags.get("teacherlm.stage", ""),
                "status": c.info.status,
                "result": _result(c),
                "registered_model": c.data.tags.get("teacherlm.registered_model", ""),
                "champion": c.data.tags.get("teacherlm.champion", ""),
                "datasets": [d.dataset.name for d in (c.inputs.dataset_inputs if c.inputs else [])],
            }
            for c in children
        ]
        out.append(
            {
                "run_id": p.info.run_id,
                "name": p.info.run_name,
                "started": _when(p.info.start_time),
                "status": p.info.status,
                "stages": stages,
            }
        )
    return out
