"""``augment``: plan shards -> augment each shard with the teacher (``ParallelFor``) -> merge (``Collected``).

    teacherlm pipeline run augment --local --param teacher_model=runs/teacher --param data=runs/data

``graph`` takes the teacher and the data as artifacts (``end_to_end`` nests it); the published
pipeline takes their URIs and imports them.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from components import augment_shard, merge_shards, plan_shards

from .._settings import Settings, on_cpu, on_gpu

NAME = "teacherlm-augment"
FIELDS = "fundamentals,chain_of_thought,common_mistakes"


def graph(s: Settings = Settings()):
    @dsl.pipeline(name="augment-dataset", description="Fan out over shards, augment each, merge.")
    def augment_dataset(
        teacher: Input[Model],
        data: Input[Dataset],
        num_shards: int = 4,
        fields: str = FIELDS,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        engine: str = "vllm",
        gpus_per_shard: int = 1,
        work_root: str = "",
    ) -> Dataset:
        """Fan out over shards, augment each, merge.

        Args:
            teacher: The trained teacher.
            data: The dataset to augment (its train split).
            num_shards: Shards of the dataset, each one task.
            fields: Explanation fields to write, comma-separated.
            max_new_tokens: Token limit per explanation.
            temperature: Sampling temperature (0: greedy).
            seed: Base seed of every request.
            engine: vllm or hf.
            gpus_per_shard: GPUs per shard task (vLLM tensor parallel size).
            work_root: Shared storage (s3:// prefix) shards write to as they go; empty: none.
        """
        plan = on_cpu(plan_shards(data=data, num_shards=num_shards), s, "plan shards")
        with dsl.ParallelFor(plan.output, parallelism=s.parallelism) as index:
            shard = on_gpu(
                augment_shard(
                    teacher=teacher, data=data, shard_index=index, num_shards=num_shards, fields=fields,
                    max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, engine=engine,
                    gpus=gpus_per_shard, work_root=work_root,
                ),
                s, "augment shard", gpus=gpus_per_shard,
            )  # fmt: skip
        merged = on_cpu(merge_shards(shards=dsl.Collected(shard.outputs["shard"])), s, "merge shards")
        return merged.outputs["augmented"]

    return augment_dataset


def build(s: Settings = Settings()):
    augment_dataset = graph(s)

    @dsl.pipeline(
        name=NAME,
        description="Augment a dataset with a teacher's fundamentals, chain of thought and common mistakes.",
    )
    def augment(
        teacher_model: str = "s3://teacherlm/models/teacher",
        data: str = "s3://teacherlm/datasets/train",
        num_shards: int = 16,
        fields: str = FIELDS,
        max_new_tokens: int = 256,
        temperature: float = 0.7,
        seed: int = 0,
        engine: str = "vllm",
        gpus_per_shard: int = 1,
        work_root: str = "",
    ) -> Dataset:
        """Augment a dataset with a teacher's fundamentals, chain of thought and common mistakes.

        Args:
            teacher_model: The teacher model directory (s3:// URI, or a local path for local runs).
            data: The dataset to augment: a directory with train.jsonl/.parquet, or one file (URI).
            num_shards: Shards of the dataset, each one task.
            fields: Explanation fields to write, comma-separated.
            max_new_tokens: Token limit per explanation.
            temperature: Sampling temperature (0: greedy).
            seed: Base seed of every request.
            engine: vllm or hf.
            gpus_per_shard: GPUs per shard task (vLLM tensor parallel size).
            work_root: Shared storage (s3:// prefix) shards write to as they go, so a retry resumes; empty: none.
        """
        teacher = dsl.importer(artifact_uri=teacher_model, artifact_class=Model, reimport=False)
        teacher.set_display_name("import teacher")
        dataset = dsl.importer(artifact_uri=data, artifact_class=Dataset, reimport=False)
        dataset.set_display_name("import dataset")
        return augment_dataset(
            teacher=teacher.output, data=dataset.output, num_shards=num_shards, fields=fields,
            max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, engine=engine,
            gpus_per_shard=gpus_per_shard, work_root=work_root,
        ).set_display_name("augment").output  # fmt: skip

    return augment
