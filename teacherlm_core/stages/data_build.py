"""``data build``: the built-in annotated task suite (CLI ``teacherlm data build``, component ``data_build``)."""

from __future__ import annotations

from pathlib import Path

from ._run import stage_run
from .params import P

__all__ = ["data_build"]


def data_build(
    data: str | Path,
    *,
    tasks: str = P.tasks,
    per_task: int = P.per_task,
    data_seed: int = P.data_seed,
    **options,
) -> dict:
    """Write the built-in suite (train/validation/test JSONL + ``manifest.json``) into directory ``data``.

    Args:
        data: Output directory.
        tasks: Comma-separated task families; empty for all.
        per_task: Samples per family, before the 70/15/15 split.
        data_seed: The same seed gives byte-identical files.
        **options: Passed on to :func:`~teacherlm_core.data.build_builtin` (formats, near_threshold, progress).

    Returns:
        The manifest (``records``: in, out, quarantined, duplicates; ``counts`` per split and task).
    """
    from ..data import build_builtin
    from ..lineage import describe_dataset, log_datasets

    names = [t.strip() for t in tasks.split(",") if t.strip()] or None
    with stage_run(
        "data build",
        {"tasks": tasks or "all", "per_task": per_task, "data_seed": data_seed},
        stage="data_build",
    ) as t:
        manifest = build_builtin(data, names, per_task, data_seed, **options)
        t.log_metrics(
            {"records": manifest["records"]["out"], "duplicates": manifest["records"]["duplicates"]}
        )
        log_datasets(
            t.run_id,
            outputs=[describe_dataset(data, f"built-in {s}", s) for s in ("train", "validation", "test")],
        )
    return manifest
