"""Every pipeline parameter, defined once: name, type, default, description, and the stages that use it.

The pipelines take their defaults and docstrings from here (``pipelines/*/pipeline.py``:
``num_shards: int = P.num_shards`` under ``@documented(...)``), the components and stage
functions take the same names, and ``tests/pipelines/test_params.py`` follows each parameter of
each compiled spec through the DAG to the components listed in ``used_by``.

    teacherlm pipeline run end_to_end --local --param num_shards=4     # a parameter, by its one name
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..schema import FIELDS

__all__ = ["P", "PipelineParams", "documented", "used_by"]


def _p(default: Any, description: str, *stages: str) -> Any:
    return Field(default, description=description, json_schema_extra={"used_by": list(stages)})


TRAINING = ("train_teacher", "train_student")


class PipelineParams(BaseModel):
    """The parameters of the teacherlm pipelines (each pipeline takes the subset it needs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- models and datasets (URIs on a cluster, local paths on the local runner)
    teacher_base_model: str = _p(
        "Qwen/Qwen2.5-1.5B", "Base teacher: hub id, s3:// URI or local path.", "data_star", "train_teacher"
    )
    student_base_model: str = _p(
        "Qwen/Qwen2.5-0.5B", "Base student: hub id, s3:// URI or local path.", "train_student"
    )
    teacher: str = _p(
        "s3://teacherlm/models/teacher",
        "The trained teacher model directory (s3:// URI, or a local path for local runs).",
        "augment_shard",
    )
    data: str = _p(
        "s3://teacherlm/datasets/train",
        "The dataset to augment: a directory with train.jsonl/.parquet, or one file (URI).",
        "augment_plan",
    )
    augmented_data: str = _p(
        "s3://teacherlm/datasets/augmented",
        "The augmented dataset (a directory with train.jsonl, or the file), as a URI.",
        "train_student",
        "compare",
    )
    eval_data: str = _p(
        "s3://teacherlm/datasets/eval",
        "Held-out multiple-choice data: a directory with test.jsonl, or the file, as a URI.",
        "evaluate",
    )
    seed_data: str = _p(
        "",
        "Annotated seed data of the teacher (a dataset directory URI with train and test "
        "splits, as `teacherlm data import` writes it); empty: the built-in suite.",
        "data_build",
    )
    task_data: str = _p(
        "",
        "The dataset the teacher augments and the students are evaluated on (a dataset "
        "directory URI with train and test splits); empty: the built-in suite.",
        "data_build",
    )
    # -- built-in data and STaR
    tasks: str = _p(
        "", "Built-in task families, comma-separated; empty for the eight default ones.", "data_build"
    )
    per_task: int = _p(200, "Built-in samples per task family (split 70/15/15).", "data_build")
    test_per_task: int = _p(
        0,
        "Built-in test items per task family instead of 15% of per_task (0: the 15%); "
        "train and validation stay the same.",
        "data_build",
    )
    data_seed: int = _p(0, "Seed of the built-in data.", "data_build")
    star_rounds: int = _p(2, "Most STaR rounds.", "data_star")
    star_max_new_tokens: int = _p(128, "Token budget of each STaR rationale.", "data_star")
    # -- generation
    num_shards: int = _p(16, "Augmentation shards, each one task.", "augment_plan", "augment_shard")
    fields: str = _p(
        ",".join(FIELDS), "Explanation fields the teacher writes, comma-separated.", "augment_shard"
    )
    max_new_tokens: int = _p(256, "Token limit per explanation.", "augment_shard")
    temperature: float = _p(
        0.7, "Sampling temperature of STaR and augmentation (0: greedy).", "data_star", "augment_shard"
    )
    dry_run: bool = _p(
        False,
        "Write deterministic placeholder explanations without loading the teacher: checks "
        "storage, fan-out and merge at full scale before a real run (marked in the plan and the "
        "manifest, never mixable with real output).",
        "augment_shard",
    )
    tensor_parallel_size: int = _p(
        1, "GPUs per augmentation shard (vLLM tensor parallel size).", "augment_shard"
    )
    engine: str = _p(
        "vllm",
        "Inference engine of STaR, augmentation and evaluation: vllm, hf, or auto (vLLM where it "
        "can run the model, else HF; augmentation records the engine that ran in its plan).",
        "data_star",
        "augment_shard",
        "evaluate",
    )
    seed: int = _p(
        0,
        "Seed of generation (each request's seed derives from it) and of training.",
        "data_star",
        "augment_shard",
        *TRAINING,
    )
    # -- training
    teacher_config: str = _p(
        "teacher",
        "Teacher training config: a shipped name (teacher, teacher_smollm2, teacher_tiny) or a YAML URI.",
        "train_teacher",
    )
    personalise_data: str = _p(
        "",
        "A user's domain data (JSONL/Parquet URI) for teacher stage 2; empty: stage 1 only.",
        "train_teacher",
    )
    teacher_max_steps: int = _p(
        0, "Optimizer steps of teacher stage 1 (multi-task); 0 keeps the config's.", "train_teacher"
    )
    ablation: bool = _p(False, "Also train one student per explanation field.", "train_variants")
    student_config: str = _p(
        "student",
        "Student training config: a shipped name (student, student_tiny) or a YAML URI.",
        "train_student",
    )
    student_max_steps: int = _p(0, "Student optimizer steps; 0 keeps the config's.", "train_student")
    nnodes: int = _p(1, "Nodes of each training job (a TrainJob; 1 with torchrun).", *TRAINING)
    nproc_per_node: int = _p(
        1, "Ranks per node: GPUs per node on the cluster, gloo ranks locally.", *TRAINING
    )
    deepspeed: str = _p("", "zero2, zero3 or none; empty keeps the configs'.", *TRAINING)
    launcher: str = _p(
        "auto", "trainjob, torchrun, or auto (TrainJob inside Kubernetes, torchrun elsewhere).", *TRAINING
    )
    work_root: str = _p(
        "",
        "Shared storage (s3:// prefix) for shards, training data/models and resuming; empty: none.",
        "augment_plan",
        "augment_shard",
        *TRAINING,
    )
    # -- lineage and cost
    teacher_registered_model: str = _p(
        "teacherlm-teacher",
        "MLflow registered model that each trained teacher becomes a version of.",
        "train_teacher",
    )
    student_registered_model: str = _p(
        "teacherlm-student",
        "MLflow registered model that each trained student becomes a version of; the best student of a comparison takes its alias 'champion'.",
        "train_student",
        "compare",
    )
    price_per_accelerator_hour: float = _p(
        2.5,
        "Price of one accelerator-hour (e.g. USD per GPU-hour) for the cost per 1,000 samples in the dataset card and the report.",
        "augment_merge",
        "compare",
    )
    eval_batch_size: int = _p(
        32, "Evaluation batch size (sequences per forward pass, or running sequences).", "evaluate"
    )


P = PipelineParams()  # the defaults


def used_by(name: str) -> tuple[str, ...]:
    """The components (= stages) that use parameter ``name``."""
    return tuple(PipelineParams.model_fields[name].json_schema_extra["used_by"])  # type: ignore[index]


F = TypeVar("F", bound=Callable[..., Any])


def documented(summary: str, **inputs: str) -> Callable[[F], F]:
    """Give a pipeline function the Google-style docstring KFP reads: ``summary``, then one line per argument.

    Parameters take their description from :class:`PipelineParams`; artifact inputs of a nested
    graph (not pipeline parameters) take theirs from ``inputs``.

    Raises:
        TypeError: a parameter that is neither in :class:`PipelineParams` nor in ``inputs``.
    """

    def decorate(fn: F) -> F:
        import inspect

        lines = [summary, "", "Args:"]
        for name in inspect.signature(fn).parameters:
            field = PipelineParams.model_fields.get(name)
            if name not in inputs and field is None:
                raise TypeError(
                    f"{fn.__qualname__}: parameter {name!r} is not in PipelineParams "
                    "(teacherlm_core/stages/params.py): define it there, once, with its type, default and description"
                )
            text = inputs.get(name) or field.description
            lines.append(f"    {name}: {text}")
        fn.__doc__ = "\n".join(lines)
        return fn

    return decorate
