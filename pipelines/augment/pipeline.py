"""``augment``: augment plan -> augment shard, one task per shard (``ParallelFor``) -> augment merge (``Collected``).

    teacherlm pipeline run augment --local --param teacher=runs/teacher --param data=runs/data

``graph`` takes the teacher and the data as artifacts (``end_to_end`` nests it); the published
pipeline takes their URIs and imports them.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model

from teacherlm_components import augment_merge, augment_plan, augment_shard
from teacherlm_core.kfp_support.placement import Placement, on_cpu, on_gpu
from teacherlm_core.stages.params import P, documented

NAME = "teacherlm-augment"
SUMMARY = "Augment a dataset with a teacher's fundamentals, chain of thought and common mistakes."


def graph(s: Placement = Placement()):
    @dsl.pipeline(name="augment-dataset", description="Fan out over shards, augment each, merge.")
    @documented(
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
        plan = on_cpu(augment_plan(data=data, num_shards=num_shards, work_root=work_root), s, "augment plan")
        with dsl.ParallelFor(plan.outputs["Output"], parallelism=s.fan_out) as shard_index:
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
                s,
                "augment shard",
                gpus=tensor_parallel_size,
            )
        merged = on_cpu(
            augment_merge(
                shards=dsl.Collected(shard.outputs["shard"]),
                price_per_accelerator_hour=price_per_accelerator_hour,
            ),
            s,
            "augment merge",
        )
        return merged.outputs["augmented"]

    return augment_dataset


def build(s: Placement = Placement()):
    augment_dataset = graph(s)

    @dsl.pipeline(name=NAME, description=SUMMARY)
    @documented(SUMMARY)
    def augment(
        teacher: str = P.teacher,
        data: str = P.data,
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
        imported_teacher = dsl.importer(artifact_uri=teacher, artifact_class=Model, reimport=False)
        imported_teacher.set_display_name("import teacher")
        dataset = dsl.importer(artifact_uri=data, artifact_class=Dataset, reimport=False)
        dataset.set_display_name("import dataset")
        return (
            augment_dataset(
                teacher=imported_teacher.output,
                data=dataset.output,
                num_shards=num_shards,
                fields=fields,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=seed,
                engine=engine,
                tensor_parallel_size=tensor_parallel_size,
                work_root=work_root,
                price_per_accelerator_hour=price_per_accelerator_hour,
                dry_run=dry_run,
            )
            .set_display_name("augment")
            .output
        )

    return augment
