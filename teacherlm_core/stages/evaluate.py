"""``evaluate``: zero-shot rank classification of one model (CLI ``teacherlm evaluate``, component ``evaluate``)."""

from __future__ import annotations

from collections.abc import Callable

from ..data.splits import split_file
from ._run import stage_run
from .params import P

__all__ = ["evaluate"]


def evaluate(
    model: str,
    data: str,
    output: str,
    *,
    name: str = "",
    split: str = "test",
    engine: str = P.engine,
    eval_batch_size: int = P.eval_batch_size,
    revision: str | None = None,
    progress: Callable[[str, int], object] | None = None,
):
    """Score ``split`` of ``data`` with ``model`` and write the report JSON to ``output``.

    Args:
        model: Model directory, s3:// URI or hub id.
        data: Multiple-choice dataset: a directory (its ``split`` file) or one JSONL/Parquet file.
        output: The report: ``{"model", "tasks": {task: {"accuracy", "n"}}, "overall", "samples"}``.
        name: The model's name in reports (default: ``model``).
        split: Which split of a dataset directory.
        engine: auto (vLLM where it can run the model, else HF), vllm or hf.
        eval_batch_size: Sequences per forward pass (hf) or cap on running sequences (vllm).
        revision: Hub revision of the model.
        progress: ``progress(description, total)`` -> context manager yielding ``advance(n)``.

    Returns:
        The :class:`~teacherlm_core.evaluate.EvalReport`.

    Raises:
        DataError: input the prompt format cannot express, before the model is loaded.
    """
    import json
    from contextlib import nullcontext
    from pathlib import Path

    from .. import storage
    from ..cost import read_cost
    from ..engines import get_engine
    from ..evaluate import evaluate as rank_classify
    from ..evaluate import load_eval_samples
    from ..lineage import describe_dataset, log_datasets, registered_version

    samples = load_eval_samples(str(split_file(data, split)))  # bad input fails before a model loads
    storage.check_writable(output)  # so does an output that cannot be written
    name = name or model
    with stage_run(
        f"evaluate {name}", {"model": model, "engine": engine, "split": split}, stage="evaluate"
    ) as t:
        log_datasets(t.run_id, [describe_dataset(data, f"eval data ({split})", split)])
        if version := registered_version(model):
            t.set_tags({"teacherlm.registered_model": version})
        eng = get_engine(engine, model, batch_size=eval_batch_size, revision=revision)
        t.set_tags({"teacherlm.engine": eng.name})  # which one `auto` chose
        n_choices = sum(len(s.choices or []) for s in samples)
        with progress("scoring choices", n_choices) if progress else nullcontext(None) as advance:
            report = rank_classify(eng, samples, output, model_name=name, progress=advance)
        if cost := read_cost(model) if not storage.is_remote(model) and Path(model).is_dir() else {}:
            # What the model cost to make travels with its scores, into the comparison report.
            report.cost = {k: v.model_dump() for k, v in cost.items()}
            storage.write_text(output, json.dumps(report.model_dump(), indent=1) + "\n")
        t.log_metrics(
            {"accuracy": report.overall.accuracy}
            | {f"accuracy.{k}": v.accuracy for k, v in report.tasks.items()}
        )
    return report
