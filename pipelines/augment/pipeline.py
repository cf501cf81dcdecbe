"""``augment``: augment plan -> augment shard, one task per shard (``ParallelFor``) -> augment merge (``Collected``).

    teacherlm pipeline run augment --local --param teacher=runs/teacher --param data=runs/data

``augment_dataset`` takes the teacher and the data as artifacts (``end_to_end`` nests it); the
published pipeline ``augment`` takes their URIs and imports them.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from teacherlm_components import augment_merge, augment_plan, augment_shard
from teacherlm_core.kfp_support.graphs import pipeline, published
from teacherlm_core.kfp_support.placement import fan_out, on_cpu, on_gpu
from teacherlm_core.stages.params import P

NAME = "teacherlm-augment"
SUMMARY = "Augment a dataset with a teacher's fundamentals, chain of thought and common mistakes."


@pipeline(
    "augment-dataset",
    "Fan out over shards, augment each, merge.",
    teacher="The trained teacher.",
    data="The dataset to augment (its train split).",
)
def augment_dataset(
    teacher: Input[Model],
    data: Input[Dataset],
    num_shards: int = P.num_shards,
    fields: str = P.fields,
    max_new_tokens: int = P.max_new_tokens,
    temperature: float = P.temperature,
    seed: int = P.seed,
    engine: str = P.engine,
    tensor_parallel_size: int = P.tensor_parallel_size,
    work_root: str = P.work_root,
    price_per_accelerator_hour: float = P.price_per_accelerator_hour,
    dry_run: bool = P.dry_run,
) -> Dataset:
    plan = on_cpu(augment_plan(data=data, num_shards=num_shards, work_root=work_root), "augment plan")
    with dsl.ParallelFor(plan.outputs["Output"], parallelism=fan_out()) as shard_index:
        shard = on_gpu(
            augment_shard(
                teacher=teacher,
                split=plan.outputs["split"],
                shard_index=shard_index,
                num_shards=num_shards,
                fields=fields,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=seed,
                engine=engine,
                tensor_parallel_size=tensor_parallel_size,
                work_root=work_root,
                dry_run=dry_run,
            ),
            "augment shard",
            gpus=tensor_parallel_size,
        )
    merged = on_cpu(
        augment_merge(
            shards=dsl.Collected(shard.outputs["shard"]),
            price_per_accelerator_hour=price_per_accelerator_hour,
        ),
        "augment merge",
    )
    return merged.outputs["augmented"]


augment = published(augment_dataset, NAME, SUMMARY, display="augment")
