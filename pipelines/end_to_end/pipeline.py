"""``end_to_end``: the teacher pipeline, then augmentation with the new teacher, then the student comparison.

teacherlm demo        # runs this pipeline locally on tiny models
"""

from kfp import dsl
from kfp.dsl import Markdown

from .._settings import Settings
from ..augment.pipeline import FIELDS
from ..augment.pipeline import graph as augment_graph
from ..student.pipeline import graph as student_graph
from ..teacher.pipeline import build as teacher_pipeline

NAME = "teacherlm-end-to-end"


def build(s: Settings = Settings()):
    teacher, augment_dataset, compare_students = teacher_pipeline(s), augment_graph(s), student_graph(s)

    @dsl.pipeline(
        name=NAME,
        description="Teacher data, STaR and teacher training; augmentation; plain vs augmented students.",
    )
    def end_to_end(
        teacher_model: str = "Qwen/Qwen2.5-1.5B",
        student_model: str = "Qwen/Qwen2.5-0.5B",
        tasks: str = "",
        per_task: int = 200,
        data_seed: int = 0,
        star_rounds: int = 2,
        star_max_new_tokens: int = 128,
        teacher_config: str = "teacher",
        personalise_data: str = "",
        teacher_max_steps: int = 0,
        num_shards: int = 4,
        fields: str = FIELDS,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        gpus_per_shard: int = 1,
        ablation: bool = False,
        student_config: str = "student",
        student_max_steps: int = 0,
        seed: int = 0,
        engine: str = "vllm",
        nodes: int = 1,
        procs_per_node: int = 8,
        deepspeed: str = "",
        launcher: str = "auto",
        work_root: str = "",
        eval_batch_size: int = 32,
    ) -> Markdown:
        """Teacher data, STaR and teacher training; augmentation; plain vs augmented students.

        Args:
            teacher_model: Base teacher: hub id, s3:// URI or local path.
            student_model: Base student: hub id, s3:// URI or local path.
            tasks: Built-in task families, comma-separated; empty for all.
            per_task: Built-in samples per task family (split 70/15/15).
            data_seed: Seed of the built-in data.
            star_rounds: Most STaR rounds.
            star_max_new_tokens: Token budget of each STaR rationale.
            teacher_config: Teacher training config: a shipped name (teacher, teacher_tiny) or a YAML URI.
            personalise_data: A user's domain data (JSONL/Parquet URI) for teacher stage 2; empty: stage 1 only.
            teacher_max_steps: Optimizer steps of teacher stage 1 (multi-task); 0 keeps the config's.
            num_shards: Augmentation shards, each one task.
            fields: Explanation fields the teacher writes, comma-separated.
            max_new_tokens: Token limit per explanation.
            temperature: Sampling temperature of STaR and augmentation.
            gpus_per_shard: GPUs per augmentation shard (vLLM tensor parallel size).
            ablation: Also train one student per explanation field.
            student_config: Student training config: a shipped name (student, student_tiny) or a YAML URI.
            student_max_steps: Student optimizer steps; 0 keeps the config's.
            seed: Seed of generation and training.
            engine: Inference engine: vllm or hf.
            nodes: Nodes of each training TrainJob.
            procs_per_node: Ranks per node (GPUs per node on the cluster).
            deepspeed: zero2, zero3 or none; empty keeps the configs'.
            launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes).
            work_root: Shared storage (s3:// prefix) for shards, training data/models and resuming; empty: none.
            eval_batch_size: Evaluation batch size.
        """
        trained = teacher(
            teacher_model=teacher_model, tasks=tasks, per_task=per_task, data_seed=data_seed, star_rounds=star_rounds,
            star_max_new_tokens=star_max_new_tokens, temperature=temperature, seed=seed, engine=engine,
            train_config=teacher_config, personalise_data=personalise_data, max_steps=teacher_max_steps,
            nodes=nodes, procs_per_node=procs_per_node, deepspeed=deepspeed, launcher=launcher,
            work_root=work_root, eval_batch_size=eval_batch_size,
        ).set_display_name("teacher")  # fmt: skip
        augmented = augment_dataset(
            teacher=trained.outputs["teacher"], data=trained.outputs["data"], num_shards=num_shards, fields=fields,
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, engine=engine,
            gpus_per_shard=gpus_per_shard, work_root=work_root,
        ).set_display_name("augment")  # fmt: skip
        students = compare_students(
            augmented=augmented.output, eval_data=trained.outputs["data"], student_model=student_model,
            ablation=ablation, train_config=student_config, max_steps=student_max_steps, nodes=nodes,
            procs_per_node=procs_per_node, deepspeed=deepspeed, launcher=launcher, work_root=work_root,
            engine=engine, eval_batch_size=eval_batch_size,
        ).set_display_name("students")  # fmt: skip
        return students.output

    return end_to_end
