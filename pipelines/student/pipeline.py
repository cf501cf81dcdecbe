"""``student``: train variants -> train student, one task per variant (``ParallelFor``) -> evaluate -> compare.

    teacherlm pipeline run student --local --param augmented_data=runs/augmented --param eval_data=runs/data

``compare_students`` takes the datasets as artifacts (``end_to_end`` nests it); the published
pipeline ``student`` takes their URIs and imports them.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown

from teacherlm_components import compare, evaluate, train_cleanup, train_student, train_variants
from teacherlm_core.kfp_support.graphs import pipeline, published
from teacherlm_core.kfp_support.placement import fan_out, on_cpu, on_gpu, on_trainer
from teacherlm_core.stages.params import P

NAME = "teacherlm-student"
SUMMARY = "Train plain and augmented students, evaluate them and compare."


@pipeline(
    "compare-students",
    "Train students on plain and augmented data, evaluate, compare.",
    augmented_data='The augmented dataset (train.jsonl); "plain" students see only its questions and answers.',
    eval_data="Held-out multiple-choice data (its test split).",
)
def compare_students(
    augmented_data: Input[Dataset],
    eval_data: Input[Dataset],
    student_base_model: str = P.student_base_model,
    ablation: bool = P.ablation,
    student_config: str = P.student_config,
    student_max_steps: int = P.student_max_steps,
    nnodes: int = P.nnodes,
    nproc_per_node: int = P.nproc_per_node,
    deepspeed: str = P.deepspeed,
    launcher: str = P.launcher,
    work_root: str = P.work_root,
    seed: int = P.seed,
    engine: str = P.engine,
    eval_batch_size: int = P.eval_batch_size,
    student_registered_model: str = P.student_registered_model,
    price_per_accelerator_hour: float = P.price_per_accelerator_hour,
) -> Markdown:
    variants = on_cpu(train_variants(ablation=ablation), "train variants")
    with dsl.ParallelFor(variants.output, parallelism=fan_out()) as variant:
        student = on_trainer(
            train_student(
                data=augmented_data,
                variant=variant,
                student_base_model=student_base_model,
                student_config=student_config,
                student_max_steps=student_max_steps,
                nnodes=nnodes,
                nproc_per_node=nproc_per_node,
                deepspeed=deepspeed,
                launcher=launcher,
                work_root=work_root,
                seed=seed,
                student_registered_model=student_registered_model,
            ),
            "train student",
        )
        scored = on_gpu(
            evaluate(
                model=student.outputs["student"],
                data=eval_data,
                name=variant,
                split="test",
                engine=engine,
                eval_batch_size=eval_batch_size,
            ),
            "evaluate",
        )
    # Whatever the students' outcome (KFP's exit-handler form that keeps the outputs): no TrainJob outlives them.
    on_cpu(train_cleanup(), "clean up training", cache=False).after(student).ignore_upstream_failure()
    report = on_cpu(
        compare(
            reports=dsl.Collected(scored.outputs["report"]),
            augmented=augmented_data,
            title="teacherlm: plain vs augmented students",
            price_per_accelerator_hour=price_per_accelerator_hour,
            student_registered_model=student_registered_model,
        ),
        "compare",
        cache=False,
    )
    return report.outputs["report"]


student = published(compare_students, NAME, SUMMARY, display="students")
