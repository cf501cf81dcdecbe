"""``data build``: the built-in annotated task suite, or a user's dataset checked and copied in its place
(CLI ``teacherlm data build``, component ``data_build``)."""

from __future__ import annotations

from pathlib import Path

from ._run import stage_run
from .params import P

__all__ = ["data_build"]


def data_build(
    data: str | Path,
    *,
    source: str = "",
    annotated: bool = True,
    tasks: str = P.tasks,
    per_task: int = P.per_task,
    test_per_task: int = P.test_per_task,
    data_seed: int = P.data_seed,
    **options,
) -> dict:
    """Write the built-in suite, or the dataset at ``source``, into directory ``data`` (split JSONL + ``manifest.json``).

    Args:
        data: Output directory.
        source: A dataset directory URI (``{split}.jsonl``/``.parquet``, as ``teacherlm data import``
            writes it) to check and copy instead of building the suite; empty: the built-in suite.
            It needs a train and a test split; the tasks/per_task/seed arguments are then unused.
        annotated: With ``source``: every record must carry the three explanations (seed data).
        tasks: Comma-separated task families; empty for all.
        per_task: Samples per family, before the 70/15/15 split.
        test_per_task: Test items per family instead of 15% of ``per_task`` (0: the 15%).
        data_seed: The same seed gives byte-identical files.
        **options: Passed on to :func:`~teacherlm_core.data.build_builtin` (formats, near_threshold, progress).

    Returns:
        The manifest (``records``: in, out, quarantined, duplicates; ``counts`` per split and task).

    Raises:
        DataError: ``source`` is missing, lacks a train or test split, or a split keeps no valid record.
    """
    from ..data import build_builtin
    from ..data.existing import copy_dataset
    from ..lineage import describe_dataset, log_datasets

    names = [t.strip() for t in tasks.split(",") if t.strip()] or None
    what = (
        {"source": source, "annotated": annotated}
        if source
        else {
            "tasks": tasks or "all",
            "per_task": per_task,
            "test_per_task": test_per_task,
            "data_seed": data_seed,
        }
    )
    with stage_run("data build", what, stage="data_build") as t:
        if source:
            manifest = copy_dataset(source, data, annotated=annotated, require=("train", "test"))
        else:
            manifest = build_builtin(data, names, per_task, data_seed, test_per_task=test_per_task, **options)
        t.log_metrics(
            {k: manifest["records"][k] for k in ("out", "quarantined", "duplicates")}
            | {"records": manifest["records"]["out"]}
        )
        kind = "seed" if source and annotated else "task" if source else "built-in"
        log_datasets(
            t.run_id,
            inputs=[
                describe_dataset(source, f"{kind} data (source)", s) for s in manifest["counts"]["splits"]
            ]
            if source
            else [],
            outputs=[describe_dataset(data, f"{kind} {s}", s) for s in manifest["counts"]["splits"]],
        )
    return manifest
