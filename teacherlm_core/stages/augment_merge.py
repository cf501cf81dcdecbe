"""``augment merge``: finished shards into one augmented dataset (CLI ``teacherlm augment merge``, component ``augment_merge``)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

from ._run import stage_run
from .params import P

__all__ = ["augment_merge"]


def augment_merge(
    output: str,
    shards: Sequence[str] = (),
    *,
    price_per_accelerator_hour: float = P.price_per_accelerator_hour,
    summary: str = "",
    card: str = "",
) -> dict:
    """Merge an augmentation run's shards into ``output``.

    Args:
        output: The run's output root (local dir or ``s3://`` prefix), or with ``shards`` the
            directory to merge into.
        shards: The outputs of separate shard tasks (a pipeline's fan-out; local dirs of one plan),
            gathered into ``output`` first; then ``output`` also gets ``train.jsonl`` (every augmented
            record, for the students). Empty: the shards are already under ``output/shards/``.
        price_per_accelerator_hour: Price of an accelerator-hour for the card's cost per 1,000 samples.
        summary: When given, a file that gets the augmentation summary as Markdown (samples and
            their explanations per task, quarantine reasons with counts: the pipeline UI's view).
        card: When given, a file that gets a copy of the dataset card (``README.md``).

    Returns:
        The merged manifest (``counts``, ``chain_of_thought_consistency``, files and checksums) plus
        ``cost`` (tokens, accelerator-seconds, wall seconds, samples, ``per_1000_samples``).
        ``output`` also gets ``cost.json`` and ``lineage.json`` (the registered teacher version).
        With ``TEACHERLM_PUSHGATEWAY`` set, the run's shard groups are deleted from it.
    """
    from .. import storage
    from ..augment import load_plan, merge, merge_gathered, shard_name
    from ..augment.merge import add_card_section
    from ..augment.plan import OUTPUT_COLUMNS
    from ..augment.summary import augmentation_summary, summary_markdown
    from ..cost import augment_cost, cost_markdown, write_cost
    from ..lineage import describe_dataset, log_datasets, registered_version, split_dataset_ref, write_lineage
    from ..metrics import PUSHGATEWAY_ENV, delete_run_groups
    from ..run_context import kfp_run_id

    started = time.perf_counter()
    roots = list(shards) or [output]
    plan_uri = storage.join(roots[0], "plan.json")  # read loosely: the merge itself checks the plans
    config = json.loads(storage.read_text(plan_uri)).get("config", {}) if storage.exists(plan_uri) else {}
    accelerators = int(config.get("tensor_parallel_size") or 1) if config.get("engine") == "vllm" else 1
    cost = augment_cost(roots, accelerators)  # before merging: a gathered shard's markers go with it
    teacher_version = next((v for v in map(registered_version, roots) if v), "")
    with stage_run("augment merge", {"shards": len(shards) or "in place"}, stage="augment_merge") as t:
        manifest = merge_gathered(list(shards), output) if shards else merge(output)
        _, plan = load_plan(output)
        # what the run read, as its plan recorded it (the merge task never has the input itself)
        inputs = [c for c in plan["columns"] if c not in OUTPUT_COLUMNS]
        source = {"input": plan["identity"]["input"], "columns": inputs, "inputs": plan["inputs"]}
        t.log_metrics(manifest["counts"])
        cost.wall_seconds += time.perf_counter() - started
        write_cost(output, {"augmentation": cost})
        write_lineage(output, teacher_version=teacher_version)
        per_1000 = cost.per_1000(price_per_accelerator_hour)
        t.log_metrics(
            {f"cost.{k}": v for k, v in cost.model_dump().items()} | {"cost.per_1000_samples": per_1000 or 0}
        )
        card_uri = add_card_section(
            output, "Cost", cost_markdown({"augmentation": cost}, price_per_accelerator_hour)
        )
        log_datasets(
            t.run_id,
            [split_dataset_ref(source, "data to augment")],
            [describe_dataset(output, "augmented data")],
        )
        if teacher_version:
            t.set_tags({"teacherlm.teacher_version": teacher_version})
    gateway = os.environ.get(PUSHGATEWAY_ENV)
    if gateway:  # the run's shards are merged: their groups would otherwise stay on the Pushgateway forever
        names = [shard_name(i, plan["num_shards"]) for i in range(plan["num_shards"])]
        delete_run_groups(gateway, kfp_run_id(), "augment_shard", names)
    if summary:
        storage.write_text(summary, summary_markdown(augmentation_summary(output)))
    if card:
        storage.copy(card_uri, card)
    return manifest | {"cost": cost.model_dump() | {"per_1000_samples": per_1000}}
