"""``teacher``: built-in annotated data -> STaR -> multi-stage teacher training -> evaluation.

teacherlm pipeline run teacher --local --param teacher_model=runs/tiny --param train_config=teacher_tiny
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Model

from components import build_data, evaluate, star, train_teacher

from .._settings import Settings, on_cpu, on_gpu

NAME = "teacherlm-teacher"


def build(s: Settings = Settings()):
    @dsl.pipeline(
        name=NAME,
        description="Build annotated teacher data, expand it with STaR, train and evaluate the teacher.",
    )
    def teacher(
        teacher_model: str = "Qwen/Qwen2.5-1.5B",
        tasks: str = "",
        per_task: int = 200,
        data_seed: int = 0,
        star_rounds: int = 2,
        star_max_new_tokens: int = 128,
        temperature: float = 0.7,
        seed: int = 0,
        engine: str = "vllm",
        train_config: str = "teacher",
        personalise_data: str = "",
        max_steps: int = 0,
        nodes: int = 1,
        procs_per_node: int = 8,
        deepspeed: str = "",
        launcher: str = "auto",
        work_root: str = "",
        eval_batch_size: int = 32,
    ) -> NamedTuple("Outputs", teacher=Model, data=Dataset):
        """Build annotated teacher data, expand it with STaR, train and evaluate the teacher.

        Args:
            teacher_model: Base teacher: hub id, s3:// URI or local path.
            tasks: Built-in task families, comma-separated; empty for all.
            per_task: Built-in samples per task family (split 70/15/15).
            data_seed: Seed of the built-in data.
            star_rounds: Most STaR rounds.
            star_max_new_tokens: Token budget of each STaR rationale.
            temperature: Sampling temperature of STaR.
            seed: Seed of generation and training.
            engine: Inference engine for STaR and evaluation: vllm or hf.
            train_config: Training config: a shipped name (teacher, teacher_tiny) or a YAML URI.
            personalise_data: A user's domain data (JSONL/Parquet URI) for stage 2; empty: stage 1 only.
            max_steps: Optimizer steps of training stage 1 (multi-task); 0 keeps the config's.
            nodes: Nodes of the training TrainJob.
            procs_per_node: Ranks per node (GPUs per node on the cluster).
            deepspeed: zero2, zero3 or none; empty keeps the config's.
            launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes).
            work_root: Shared storage (s3:// prefix) for training data/models and resuming; empty: none.
            eval_batch_size: Evaluation batch size.
        """
        data = on_cpu(build_data(tasks=tasks, per_task=per_task, seed=data_seed), s, "build data")
        kept = on_gpu(
            star(data=data.outputs["data"], model=teacher_model, rounds=star_rounds, max_new_tokens=star_max_new_tokens,
                 temperature=temperature, seed=seed, engine=engine),
            s, "STaR rationales",
        )  # fmt: skip
        trained = on_cpu(
            train_teacher(
                seed_data=data.outputs["data"],
                star_data=kept.outputs["teacher_data"], base_model=teacher_model, config=train_config,
                personalise_data=personalise_data, max_steps=max_steps, nodes=nodes, procs_per_node=procs_per_node,
                deepspeed=deepspeed, launcher=launcher, work_root=work_root,
            ),
            s, "train teacher (TrainJob)", retry=True,
        )  # fmt: skip
        on_gpu(
            evaluate(model=trained.outputs["teacher"], data=data.outputs["data"], name="teacher", split="test",
                     engine=engine, batch_size=eval_batch_size),
            s, "evaluate teacher",
        )  # fmt: skip
        Outputs = NamedTuple("Outputs", teacher=Model, data=Dataset)  # noqa: UP014
        return Outputs(teacher=trained.outputs["teacher"], data=data.outputs["data"])

    return teacher
