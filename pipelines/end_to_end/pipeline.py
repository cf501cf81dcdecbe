"""``end_to_end``: the teacher pipeline, then augmentation with the new teacher, then the student comparison.

The teacher learns from ``seed_data`` (annotated), augments ``task_data``'s train split, and the
students are evaluated on ``task_data``'s test split; either one left empty is the built-in suite.

teacherlm demo        # runs this pipeline locally on tiny models
"""

from kfp.dsl import Markdown

from teacherlm_components import data_build
from teacherlm_core.kfp_support.graphs import pipeline
from teacherlm_core.kfp_support.placement import on_cpu
from teacherlm_core.stages.params import P

from ..augment.pipeline import augment_dataset
from ..student.pipeline import compare_students
from ..teacher.pipeline import teacher

NAME = "teacherlm-end-to-end"
SUMMARY = "Teacher data, STaR and teacher training; augmentation; plain vs augmented students."


@pipeline(NAME, SUMMARY, uses=(teacher, augment_dataset, compare_students))
def end_to_end(
    teacher_base_model: str = P.teacher_base_model,
    student_base_model: str = P.student_base_model,
    seed_data: str = P.seed_data,
    task_data: str = P.task_data,
    tasks: str = P.tasks,
    per_task: int = P.per_task,
    test_per_task: int = P.test_per_task,
    data_seed: int = P.data_seed,
    star_rounds: int = P.star_rounds,
    star_max_new_tokens: int = P.star_max_new_tokens,
    teacher_config: str = P.teacher_config,
    personalise_data: str = P.personalise_data,
    teacher_max_steps: int = P.teacher_max_steps,
    num_shards: int = P.num_shards,
    fields: str = P.fields,
    max_new_tokens: int = P.max_new_tokens,
    temperature: float = P.temperature,
    tensor_parallel_size: int = P.tensor_parallel_size,
    ablation: bool = P.ablation,
    student_config: str = P.student_config,
    student_max_steps: int = P.student_max_steps,
    seed: int = P.seed,
    engine: str = P.engine,
    nnodes: int = P.nnodes,
    nproc_per_node: int = P.nproc_per_node,
    deepspeed: str = P.deepspeed,
    launcher: str = P.launcher,
    work_root: str = P.work_root,
    eval_batch_size: int = P.eval_batch_size,
    teacher_registered_model: str = P.teacher_registered_model,
    student_registered_model: str = P.student_registered_model,
    price_per_accelerator_hour: float = P.price_per_accelerator_hour,
) -> Markdown:
    trained = teacher(
        teacher_base_model=teacher_base_model,
        seed_data=seed_data,
        tasks=tasks,
        per_task=per_task,
        test_per_task=test_per_task,
        data_seed=data_seed,
        star_rounds=star_rounds,
        star_max_new_tokens=star_max_new_tokens,
        temperature=temperature,
        seed=seed,
        engine=engine,
        teacher_config=teacher_config,
        personalise_data=personalise_data,
        teacher_max_steps=teacher_max_steps,
        nnodes=nnodes,
        nproc_per_node=nproc_per_node,
        deepspeed=deepspeed,
        launcher=launcher,
        work_root=work_root,
        eval_batch_size=eval_batch_size,
        teacher_registered_model=teacher_registered_model,
    ).set_display_name("teacher")
    task = on_cpu(
        data_build(
            source=task_data,
            annotated=False,
            tasks=tasks,
            per_task=per_task,
            test_per_task=test_per_task,
            data_seed=data_seed,
        ),
        "task data",
    )
    augmented = augment_dataset(
        teacher=trained.outputs["teacher"],
        data=task.outputs["data"],
        num_shards=num_shards,
        fields=fields,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        engine=engine,
        tensor_parallel_size=tensor_parallel_size,
        work_root=work_root,
        price_per_accelerator_hour=price_per_accelerator_hour,
    ).set_display_name("augment")
    students = compare_students(
        augmented_data=augmented.output,
        eval_data=task.outputs["data"],
        student_base_model=student_base_model,
        ablation=ablation,
        student_config=student_config,
        student_max_steps=student_max_steps,
        nnodes=nnodes,
        nproc_per_node=nproc_per_node,
        deepspeed=deepspeed,
        launcher=launcher,
        work_root=work_root,
        seed=seed,
        engine=engine,
        eval_batch_size=eval_batch_size,
        student_registered_model=student_registered_model,
        price_per_accelerator_hour=price_per_accelerator_hour,
    ).set_display_name("students")
    return students.output
