"""Augmentation: the teacher writes fundamentals, chain of thought and common mistakes for every
sample of any dataset, sharded, resumable and exactly once.

    teacherlm augment --teacher ./teacher --input data.jsonl --output s3://bucket/run/augment \\
        --num-shards 16 --shard-index 3          # one shard (a pipeline fan-out task)
    teacherlm augment merge --output s3://bucket/run/augment

Layout under OUTPUT: ``plan.json`` (the settings, fixed at the first run), ``inputs/shard-*.jsonl``
(each shard's own records, written by the plan's one pass over the input), ``shards/shard-*/``
(parts + markers + ``_SUCCESS``), and after the merge ``data/*.parquet``, ``quarantine/*.jsonl``,
``train.jsonl``, ``manifest.json`` and ``README.md`` (dataset card).

``--dry-run`` writes deterministic placeholder text without loading a model, to check storage,
sharding, fan-out and merge at full scale (:mod:`teacherlm_core.engines.dry_run`); see
``docs/scale.md`` for the capacity model of a 2M-sample run.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .. import storage
from ..engines import Engine, get_engine
from .config import AugmentConfig, shard_name
from .gather import merge_gathered
from .merge import load_plan, merge
from .shard import PartStats, run_shard

__all__ = [
    "AugmentConfig",
    "PartStats",
    "augment",
    "engine_factory",
    "load_plan",
    "merge",
    "merge_gathered",
    "resolve_engine",
    "run_shard",
    "shard_name",
]


def engine_factory(cfg: AugmentConfig) -> Callable[[], Engine]:
    """A factory that builds the configured engine once, on first call."""
    made: list[Engine] = []

    def factory() -> Engine:
        if not made and cfg.engine == "batch" and not cfg.dry_run:
            from ..errors import ConfigError
            from .batch import BatchResultsEngine

            if not cfg.batch_results:
                raise ConfigError("--batch-results", ["engine batch imports a results file: name it"])
            made.append(BatchResultsEngine(cfg.batch_results))
        if not made and cfg.dry_run:
            from ..engines.dry_run import DryRunEngine

            made.append(DryRunEngine(cfg.teacher))
        if not made:
            kwargs: dict[str, Any] = {"revision": cfg.revision, "seed": cfg.seed}
            if cfg.engine in ("vllm", "auto"):  # auto's HF fallback drops it (get_engine)
                kwargs["tensor_parallel_size"] = cfg.tensor_parallel_size
            if cfg.engine == "openai":
                kwargs |= {
                    "base_url": cfg.base_url,
                    "api_key_env": cfg.api_key_env,
                    "max_concurrency": cfg.max_concurrency,
                }
            made.append(get_engine(cfg.engine, cfg.teacher, **kwargs))
        return made[0]

    return factory


AUTO_CHOICES = ("vllm", "hf")  # what ``--engine auto`` may become


def resolve_engine(
    cfg: AugmentConfig, engine: Callable[[], Engine] | None = None
) -> tuple[AugmentConfig, Callable[[], Engine]]:
    """The run's concrete engine: ``cfg`` with ``engine="auto"`` replaced by ``vllm`` or ``hf``, and
    the factory of that engine (``engine``, else :func:`engine_factory`).

    ``auto`` is decided once per output, before its plan is written, so ``plan.json``, the
    records, the manifest and the dataset card name the engine that ran, never ``auto``:

    * where ``OUT/plan.json`` records ``vllm`` or ``hf`` (a resumed run), that engine: a resumed run
      never mixes engines (if it cannot run here any more, the run fails saying why);
    * else the engine is built now, by :func:`~teacherlm_core.engines.get_engine`'s ``auto`` (vLLM
      where it can run the teacher here, else HF, with one warning saying why), since vLLM tells
      whether it can run a model only by loading it and running one step; the factory returned
      hands out that engine, so it is loaded once.

    The choice is logged once. A dry run loads no model: its ``auto`` stays as given (the plan's
    identity names the engine ``dry-run``). Any other ``cfg`` is returned as it is.

    Raises:
        EngineError: the teacher cannot be loaded by either engine.
        DataError: ``cfg.input`` is missing, empty or neither JSONL nor Parquet (checked first).
        StorageError: ``cfg.output`` is not writable (checked before any engine is built; an output
            directory made for the check is removed again when the engine fails to load).
        ValueError: ``engine`` built an engine that ``auto`` cannot stand for (not vllm or hf).
    """
    if cfg.engine != "auto" or cfg.dry_run:
        return cfg, engine or engine_factory(cfg)
    log = logging.getLogger(__name__)
    from .plan import load_plan_record

    recorded = ((load_plan_record(cfg.output) or {}).get("config") or {}).get("engine")
    if recorded in AUTO_CHOICES:
        log.info("engine auto: %s, the engine %s records", recorded, cfg.plan_uri)
        cfg = _concrete(cfg, recorded)
        return cfg, engine or engine_factory(cfg)
    # What fails in a second must not wait for a model load: the input, then the output.
    if not cfg.split and not storage.is_remote(cfg.input):
        from ..records import detect_format

        detect_format(cfg.input)  # no such file, an empty file, not JSONL or Parquet
    made = not storage.is_remote(cfg.output) and not os.path.exists(cfg.output)
    storage.check_writable(cfg.output, directory=True)
    try:
        built = (engine or engine_factory(cfg))()
    except BaseException:
        if made:  # no empty output left behind by a teacher that does not load
            with suppress(OSError):
                os.rmdir(cfg.output)
        raise
    if built.name not in AUTO_CHOICES:
        raise ValueError(f"engine auto: the factory built engine {built.name!r}; auto stands for vllm or hf")
    if built.name == "vllm":  # the fallback to HF was said by get_engine, with its reason
        log.info("engine auto: vLLM runs %s here", cfg.teacher)
    return _concrete(cfg, built.name), lambda: built


def _concrete(cfg: AugmentConfig, name: str) -> AugmentConfig:
    # tensor parallelism is vLLM's: an HF run records one device, as `--engine hf` does
    return AugmentConfig.model_validate(
        cfg.model_dump() | {"engine": name} | ({"tensor_parallel_size": 1} if name == "hf" else {})
    )


def augment(
    cfg: AugmentConfig,
    shard_index: int | None = None,
    *,
    engine: Callable[[], Engine] | None = None,
    on_part: Callable[[PartStats], None] | None = None,
    tracker=None,
) -> dict[str, Any]:
    """Run one shard (``shard_index``) or every shard then the merge.

    Returns the shard's ``_SUCCESS`` record, or the merged manifest. ``engine``: the engine's
    factory (default :func:`engine_factory`); ``cfg.engine == "auto"`` is decided first
    (:func:`resolve_engine`). ``tracker`` (a :class:`~teacherlm_core.tracking.Tracker`) gets one
    nested run per shard with its metrics.
    """
    storage.check_writable(cfg.output, directory=True)  # before any engine starts
    cfg, factory = resolve_engine(cfg, engine)  # "auto" becomes vllm or hf before the plan is written
    indices = [shard_index] if shard_index is not None else list(range(cfg.num_shards))
    result: dict[str, Any] = {}
    for i in indices:
        t0 = time.perf_counter()

        def report(stats: PartStats, _t0=t0) -> None:
            if on_part:
                on_part(stats)
            if tracker is not None and not stats.skipped:
                tracker.log_metrics(
                    {
                        "part.samples": stats.samples,
                        "part.quarantined": stats.quarantined,
                        "part.tokens": stats.tokens,
                        "part.seconds": stats.seconds,
                    },
                    step=stats.part,
                )

        if tracker is None:
            result = run_shard(cfg, i, factory, report)
            continue
        with tracker.stage(
            f"augment {shard_name(i, cfg.num_shards)}", params={"shard": i, "num_shards": cfg.num_shards}
        ):
            result = run_shard(cfg, i, factory, report)
            seconds = time.perf_counter() - t0
            tracker.log_metrics(
                {
                    "samples": result["out"],
                    "quarantined": result["quarantined"],
                    "tokens": result["tokens"],
                    "seconds": seconds,
                    "tokens_kept": result.get("tokens_kept", result["tokens"]),
                    "quarantine_rate": result["quarantined"] / result["in"] if result["in"] else 0.0,
                    "tokens_per_second": result["tokens"] / seconds if seconds else 0.0,
                }
            )
    if shard_index is not None:
        return result
    return merge(cfg.output)
