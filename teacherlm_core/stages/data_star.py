"""``data star``: STaR rounds with the base teacher (CLI ``teacherlm data star``, component ``data_star``)."""

from __future__ import annotations

from pathlib import Path

from ._run import stage_run
from .params import P

__all__ = ["data_star"]


def data_star(
    teacher_base_model: str,
    data: str | Path,
    output: str | Path,
    *,
    star_rounds: int = P.star_rounds,
    star_max_new_tokens: int = P.star_max_new_tokens,
    temperature: float = P.temperature,
    seed: int = P.seed,
    engine: str = P.engine,
    **options,
) -> dict:
    """STaR over the train split of ``data`` into ``output`` (see :mod:`teacherlm_core.star`).

    Args:
        teacher_base_model: The teacher that writes the rationales: local path, s3:// URI or hub id.
        data: Annotated seed data (a dataset directory or one file).
        output: Output directory: ``train.jsonl`` (kept), ``quarantine/``, ``manifest.json``.
        star_rounds: Most rounds.
        star_max_new_tokens: Token budget of each rationale.
        temperature: Sampling temperature (0: greedy).
        seed: Base seed of every request.
        engine: auto (vLLM where it can run the model, else HF), vllm or hf.
        **options: Passed on to :func:`~teacherlm_core.star.run_star` (revision, split, load_engine,
            train_fn, train_config, progress).

    Returns:
        The STaR manifest (``counts``: in, kept, failed, invalid...; ``rounds``).
    """
    from ..lineage import describe_dataset, log_datasets
    from ..star import StarConfig, run_star

    cfg = StarConfig(
        rounds=star_rounds, max_new_tokens=star_max_new_tokens, temperature=temperature, seed=seed
    )
    with stage_run(
        "data star",
        {"teacher_base_model": teacher_base_model, "engine": engine, **vars(cfg)},
        stage="data_star",
    ) as t:
        manifest = run_star(data, output, teacher_base_model, config=cfg, engine=engine, **options)
        t.log_metrics({k: v for k, v in manifest["counts"].items() if isinstance(v, int)})
        log_datasets(t.run_id, [describe_dataset(data, "seed data")], [describe_dataset(output, "star data")])
    return manifest
