"""``train student``: one student variant, here or as a TrainJob (component ``train_student``)."""

from __future__ import annotations

from pathlib import Path

from ..data.splits import split_file
from ..errors import ConfigError, DataError
from ..lineage import registered_version
from ..run_context import kfp_run_id
from ._run import nested_under_parent, pipeline_run_id, stage_run
from ._training import TRAIN_IMAGE, record_training, scratch, shared, stage_launch
from .params import P
from .train_variants import VARIANTS

__all__ = ["train_student"]


def train_student(
    student_base_model: str,
    data: str,
    output: str,
    *,
    variant: str,
    student_config: str = P.student_config,
    student_max_steps: int = P.student_max_steps,
    nnodes: int = P.nnodes,
    nproc_per_node: int = P.nproc_per_node,
    deepspeed: str = P.deepspeed,
    launcher: str = P.launcher,
    work_root: str = P.work_root,
    seed: int = P.seed,
    student_registered_model: str = P.student_registered_model,
    model_uri: str = "",
    loss_page: str = "",
) -> dict:
    """Train the ``variant`` student (see :data:`VARIANTS`) on the train split of ``data`` into ``output``.

    Args:
        student_base_model: Start model: local path, s3:// URI or hub id.
        data: The augmented dataset (directory with train.jsonl, or the file).
        output: Local directory for the trained model (safetensors + tokenizer + card + metrics.jsonl).
        variant: plain, augmented, or one explanation field.
        student_config: Shipped config name (student, student_tiny) or a YAML path/URI.
        student_max_steps: Optimizer steps; 0: the config's.
        nnodes: Nodes (a TrainJob; 1 locally).
        nproc_per_node: Ranks per node: GPUs on a cluster, gloo ranks locally.
        deepspeed: zero2, zero3 or none; empty: the config's.
        launcher: trainjob, torchrun or auto (see :func:`~teacherlm_core.train.runner.resolve_launcher`).
        work_root: Shared storage (s3:// prefix) for a TrainJob's data and model, and resuming.
        seed: Seed of data order and initialisation (the config's ``train.seed``).
        student_registered_model: The MLflow registered model the student becomes a version of,
            tagged with its variant and lineage (see :mod:`teacherlm_core.lineage`).
        model_uri: Where the weights live for good (a pipeline task's artifact URI); default ``output``.
        loss_page: When given, a file that gets the loss curve and final metrics as one HTML page.

    Returns:
        ``{"steps", "final_loss", "variant", "fields", "registered_model", "cost", "metrics"}``
        (``metrics``: flat, for KFP Metrics); ``output``
        also gets ``cost.json`` (training, plus the augmentation behind the data's explanations)
        and ``registered.json``.

    Raises:
        ConfigError: an unknown variant or launcher. DataError: no training records.
    """
    import time

    from ..cost import read_cost
    from ..train import load_config
    from ..train.curves import training_page
    from ..train.outputs import card_summary, copy_model
    from ..train.runner import resolve_launcher, run_recipe

    if variant not in VARIANTS:
        raise ConfigError("variant", [f"{variant!r}: choose {', '.join(VARIANTS)}"])
    train_file = split_file(data, "train")
    if train_file.stat().st_size == 0:
        raise DataError(
            str(train_file),
            None,
            None,
            "no training records: the augmentation quarantined every sample (see the dataset's quarantine/ "
            "and manifest.json; a stronger teacher or a larger max_new_tokens helps)",
        )
    launcher = resolve_launcher(launcher, nnodes)
    pipeline_run, started = pipeline_run_id(), time.perf_counter()
    params = {"variant": variant, "student_base_model": student_base_model, "student_config": student_config}
    with (
        stage_run(f"train student {variant}", params, stage="train_student", children=True) as run,
        scratch(work_root, "students", variant) as where,
    ):
        overrides = {
            "model": student_base_model,
            "data": shared(train_file, work_root, launcher),
            "output": where,
            "name": f"student-{variant}",
            "texts.fields": list(VARIANTS[variant]),
            "texts.include_plain": True,
            "train.max_steps": student_max_steps or None,
        }
        cfg = stage_launch(
            load_config("student", student_config, overrides), nnodes, nproc_per_node, deepspeed, seed
        )
        with nested_under_parent():
            run_recipe("student", cfg, launcher, image=TRAIN_IMAGE, run_id=kfp_run_id())
        copy_model(where, output)
        # A student trained on explanations also cost their augmentation; the plain one did not.
        extra = {k: v for k, v in read_cost(Path(train_file).parent).items() if VARIANTS[variant]}
        recorded = record_training(
            run,
            role="student",
            registered_model=student_registered_model,
            output=output,
            model_uri=model_uri,
            data=str(train_file),
            data_name="augmented data" if VARIANTS[variant] else "plain data",
            accelerators=nnodes * nproc_per_node,
            wall_seconds=time.perf_counter() - started,
            pipeline_run=pipeline_run,
            teacher_version=registered_version(str(Path(train_file).parent)),
            extra_costs=extra,
            extra_tags={"teacherlm.variant": variant},
        )
        summary = card_summary(output) | {"variant": variant, "fields": ",".join(VARIANTS[variant]) or "none"}
        metrics = training_page(output, loss_page, title=f"student {variant}") if loss_page else {}
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    return summary | recorded | {"metrics": metrics}
