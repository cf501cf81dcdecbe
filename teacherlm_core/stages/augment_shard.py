"""``augment shard``: the teacher writes the explanations of one shard (component ``augment_shard``)."""

from __future__ import annotations

import os

from ..run_context import kfp_run_id, run_root
from ._run import stage_run
from .params import P

__all__ = ["augment_shard"]


def augment_shard(
    teacher: str,
    split: str,
    output: str,
    *,
    shard_index: int,
    num_shards: int | None,
    fields: str = P.fields,
    max_new_tokens: int = P.max_new_tokens,
    temperature: float = P.temperature,
    seed: int = P.seed,
    engine: str = P.engine,
    tensor_parallel_size: int = P.tensor_parallel_size,
    work_root: str = P.work_root,
    dry_run: bool = P.dry_run,
) -> dict:
    """Augment shard ``shard_index`` of the split ``augment plan`` wrote into ``output`` (``plan.json`` + ``shards/<shard>/``).

    The shard reads only its own file of the split (where ``split/split.json`` says it is), never
    the whole input; ``num_shards`` must be the split's (``None``: take the split's). With
    ``work_root`` (e.g. an ``s3://`` prefix) the shard writes under
    ``work_root/<KFP run id>/augment`` as it goes, so a retried task resumes its finished parts,
    and is then copied into ``output``. ``tensor_parallel_size`` is vLLM's (the task's GPUs).
    ``engine``: ``auto`` (vLLM where it can run the teacher here, else HF), ``vllm`` or ``hf``; a shard
    that finds no plan decides ``auto`` and records the engine in ``plan.json``; one that finds a plan
    (another shard's, or its own before a retry) keeps that engine, so shards never mix engines
    (:func:`~teacherlm_core.augment.resolve_engine`).
    ``dry_run``: placeholder text, no model loaded (see :class:`~teacherlm_core.augment.AugmentConfig`).
    With ``TEACHERLM_METRICS_PORT`` or ``TEACHERLM_PUSHGATEWAY`` set, its progress is reported to
    Prometheus (:mod:`teacherlm_core.metrics`).

    Returns:
        ``{"in", "out", "quarantined", "tokens"}`` of the shard.
    """
    from ..augment import AugmentConfig, augment, shard_name
    from ..augment.gather import export_shard
    from ..augment.split import load_split
    from ..lineage import log_datasets, registered_version, split_dataset_ref
    from ..metrics import PUSHGATEWAY_ENV, from_env

    record = load_split(split, num_shards)
    num_shards = record["num_shards"]
    root = run_root(work_root, "augment") if work_root else output
    cfg = AugmentConfig(
        teacher=teacher,
        input=record["input"]["uri"],
        split=record["uri"],
        output=root,
        num_shards=num_shards,
        fields=fields,
        engine=engine,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        tensor_parallel_size=tensor_parallel_size if engine in ("vllm", "auto") else 1,
        dry_run=dry_run,
    )
    params = {
        "shard_index": shard_index,
        "num_shards": num_shards,
        "engine": engine,
        "fields": fields,
        "dry_run": dry_run,
    }
    own = record["inputs"][f"{shard_name(shard_index, num_shards)}.jsonl"]["records"]
    metrics = from_env(kfp_run_id(), "augment_shard", shard_name(shard_index, num_shards), own)
    with stage_run(f"augment shard {shard_index}", params, stage="augment_shard") as t:
        log_datasets(t.run_id, [split_dataset_ref(record, "data to augment")])
        done = augment(cfg, shard_index, tracker=t, on_part=metrics.part_done if metrics else None)
    if metrics:  # a short-lived pod may never be scraped: its final values go to the Pushgateway
        metrics.finish()
        if os.environ.get(PUSHGATEWAY_ENV):
            metrics.push(os.environ[PUSHGATEWAY_ENV])
    # The finished shard (from the shared root when it was written there) and which registered
    # teacher wrote it: the merge passes that on to the dataset's lineage.json.
    export_shard(cfg, shard_index, output, registered_version(teacher))
    return {k: done[k] for k in ("in", "out", "quarantined", "tokens")}
