"""``train teacher``: the multi-stage teacher on seed + STaR data, here or as a TrainJob (component ``train_teacher``)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..run_context import kfp_run_id
from ._run import nested_under_parent, pipeline_run_id, stage_run
from ._training import TRAIN_IMAGE, record_training, scratch, shared, stage_launch
from .params import P

__all__ = ["train_teacher"]


def train_teacher(
    teacher_base_model: str,
    seed_data: str,
    star_data: str,
    output: str,
    *,
    teacher_config: str = P.teacher_config,
    personalise_data: str = P.personalise_data,
    teacher_max_steps: int = P.teacher_max_steps,
    nnodes: int = P.nnodes,
    nproc_per_node: int = P.nproc_per_node,
    deepspeed: str = P.deepspeed,
    launcher: str = P.launcher,
    work_root: str = P.work_root,
    seed: int = P.seed,
    teacher_registered_model: str = P.teacher_registered_model,
    model_uri: str = "",
    loss_page: str = "",
) -> dict:
    """Stage 1 (``multitask``) on the seed + STaR data, stage 2 (``personalise``) on ``personalise_data`` when given.

    The stages' settings come from the config's stages of the same names, their data from here.
    ``output`` gets the last stage's model, ``stages/teacher-data.jsonl`` (stage 1's data, see
    :func:`~teacherlm_core.star.teacher_data`) and ``stages/<n>-<stage>/`` with each stage's card and metrics.
    ``teacher_max_steps`` sets stage 1's steps (0: the config's); the other arguments are as in
    :func:`~teacherlm_core.stages.train_student.train_student`. The trained teacher becomes a
    version of ``teacher_registered_model`` (source ``model_uri``, default ``output``), and
    ``output`` gets ``cost.json`` and ``registered.json``; ``loss_page``, when given, the loss
    curves of every stage and the final metrics as one HTML page.

    Returns:
        ``{"steps", "final_loss", "stages", "registered_model", "cost", "metrics"}`` (``metrics``:
        flat, for KFP Metrics).
    """
    from .. import storage
    from ..star import teacher_data
    from ..train import TeacherStage, load_config
    from ..train.curves import training_page
    from ..train.outputs import card_summary, copy_model
    from ..train.runner import resolve_launcher, run_recipe

    launcher = resolve_launcher(launcher, nnodes)
    pipeline_run, started = pipeline_run_id(), time.perf_counter()
    params = {"teacher_base_model": teacher_base_model, "teacher_config": teacher_config}
    with (
        stage_run("train teacher", params, stage="train_teacher", children=True) as run,
        scratch(work_root, "teacher") as where,
    ):
        base = load_config("teacher", teacher_config, {"model": teacher_base_model, "output": where})
        named = {s.name: s for s in base.stages}
        combined = Path(output, "stages", "teacher-data.jsonl")  # kept with the model: its lineage
        teacher_data(seed_data, star_data, combined)
        wanted = [("multitask", shared(combined, work_root, launcher))]
        if personalise_data:
            wanted.append(("personalise", personalise_data))
        stages = [
            named.get(name, TeacherStage(name=name)).model_copy(update={"data": path, "specialise": False})
            for name, path in wanted
        ]
        if teacher_max_steps:  # stage 1 is the long one; stage 2's steps stay the config's
            stages[0] = stages[0].model_copy(update={"max_steps": teacher_max_steps, "epochs": None})
        raw = base.model_dump() | {"stages": [st.model_dump() for st in stages]}
        cfg = stage_launch(load_config("teacher", raw), nnodes, nproc_per_node, deepspeed, seed)
        with nested_under_parent():
            run_recipe("teacher", cfg, launcher, image=TRAIN_IMAGE, run_id=kfp_run_id())
        copy_model(storage.join(where, f"{len(stages)}-{stages[-1].name}"), output)
        for number, st in enumerate(stages, start=1):
            for name in ("README.md", "metrics.jsonl"):
                src = storage.join(where, f"{number}-{st.name}", name)
                if storage.exists(src):
                    storage.copy(src, os.path.join(output, "stages", f"{number}-{st.name}", name))
        # Every stage's steps cost; the last stage's metrics.jsonl is in output, the others under stages/.
        recorded = record_training(
            run,
            role="teacher",
            registered_model=teacher_registered_model,
            output=output,
            model_uri=model_uri,
            data=str(combined),
            data_name="teacher data",
            accelerators=nnodes * nproc_per_node,
            wall_seconds=time.perf_counter() - started,
            pipeline_run=pipeline_run,
            extra_costs=_earlier_stages_cost(output, stages, nnodes * nproc_per_node),
        )
        summary = card_summary(output)
        metrics = training_page(output, loss_page, title="teacher") if loss_page else {}
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    return summary | {"stages": ",".join(st.name for st in stages)} | recorded | {"metrics": metrics}


def _earlier_stages_cost(output: str, stages, accelerators: int) -> dict:
    """The training cost of each stage before the last (their ``metrics.jsonl`` under ``output/stages/``)."""
    from ..cost import training_cost

    return {
        f"training {st.name}": training_cost(Path(output, "stages", f"{n}-{st.name}"), accelerators, 0, 0.0)
        for n, st in enumerate(stages[:-1], start=1)
    }
