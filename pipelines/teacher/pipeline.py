"""``teacher``: annotated seed data (built-in, or ``seed_data``) -> STaR -> multi-stage teacher training -> evaluation.

teacherlm pipeline run teacher --local --param teacher_base_model=runs/tiny --param teacher_config=teacher_tiny
"""

from typing import NamedTuple

from kfp.dsl import Dataset, Model

from teacherlm_components import data_build, data_star, evaluate, train_cleanup, train_teacher
from teacherlm_core.kfp_support.graphs import pipeline
from teacherlm_core.kfp_support.placement import on_cpu, on_gpu, on_trainer
from teacherlm_core.stages.params import P

NAME = "teacherlm-teacher"
SUMMARY = "Build annotated teacher data, expand it with STaR, train and evaluate the teacher."


@pipeline(NAME, SUMMARY)
def teacher(
    teacher_base_model: str = P.teacher_base_model,
    seed_data: str = P.seed_data,
    tasks: str = P.tasks,
    per_task: int = P.per_task,
    test_per_task: int = P.test_per_task,
    data_seed: int = P.data_seed,
    star_rounds: int = P.star_rounds,
    star_max_new_tokens: int = P.star_max_new_tokens,
    temperature: float = P.temperature,
    seed: int = P.seed,
    engine: str = P.engine,
    teacher_config: str = P.teacher_config,
    personalise_data: str = P.personalise_data,
    teacher_max_steps: int = P.teacher_max_steps,
    nnodes: int = P.nnodes,
    nproc_per_node: int = P.nproc_per_node,
    deepspeed: str = P.deepspeed,
    launcher: str = P.launcher,
    work_root: str = P.work_root,
    eval_batch_size: int = P.eval_batch_size,
    teacher_registered_model: str = P.teacher_registered_model,
) -> NamedTuple("Outputs", teacher=Model, data=Dataset):
    data = on_cpu(
        data_build(
            source=seed_data,
            annotated=True,
            tasks=tasks,
            per_task=per_task,
            test_per_task=test_per_task,
            data_seed=data_seed,
        ),
        "data build",
    )
    kept = on_gpu(
        data_star(
            data=data.outputs["data"],
            teacher_base_model=teacher_base_model,
            star_rounds=star_rounds,
            star_max_new_tokens=star_max_new_tokens,
            temperature=temperature,
            seed=seed,
            engine=engine,
        ),
        "data star",
    )
    trained = on_trainer(
        train_teacher(
            seed_data=data.outputs["data"],
            star_data=kept.outputs["teacher_data"],
            teacher_base_model=teacher_base_model,
            teacher_config=teacher_config,
            personalise_data=personalise_data,
            teacher_max_steps=teacher_max_steps,
            nnodes=nnodes,
            nproc_per_node=nproc_per_node,
            deepspeed=deepspeed,
            launcher=launcher,
            work_root=work_root,
            seed=seed,
            teacher_registered_model=teacher_registered_model,
        ),
        "train teacher",
    )
    # Whatever training's outcome (KFP's exit-handler form that keeps the outputs): no TrainJob outlives it.
    on_cpu(train_cleanup(), "clean up training", cache=False).after(trained).ignore_upstream_failure()
    on_gpu(
        evaluate(
            model=trained.outputs["teacher"],
            data=data.outputs["data"],
            name="teacher",
            split="test",
            engine=engine,
            eval_batch_size=eval_batch_size,
        ),
        "evaluate",
    )
    Outputs = NamedTuple("Outputs", teacher=Model, data=Dataset)  # noqa: UP014
    return Outputs(teacher=trained.outputs["teacher"], data=data.outputs["data"])
