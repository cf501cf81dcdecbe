"""The teacher recipe: stages, each starting from the previous stage's weights.

    teacherlm train teacher --config teacher_tiny --output runs/teacher

Stage 1 trains multi-task on the seed / STaR data (all three fields); stage 2 personalises on a
user's domain data; an optional last ``specialise`` stage branches into one single-field teacher
per field. The teacher is answer-conditioned: by default it learns only the explanation (the
prompt, which holds the answer, is masked). Stage ``N`` writes ``<output>/<N>-<name>/`` (a
specialised teacher ``<N>-<name>-<field>/``) and ``<output>/stages.json`` lists them all.

All stages run in one launch (one process group, one DeepSpeed init). A re-run skips finished
stages, resumes an interrupted one, and retrains the stages after one that changed. One MLflow
nested run per stage.
"""

from __future__ import annotations

import json

from .. import storage
from ..models import model_identity
from .config import TeacherConfig
from .recipe import TrainResult, check_hardware, launch_plan, log_stage, stage_result

__all__ = ["train_teacher"]


def train_teacher(config: TeacherConfig) -> list[TrainResult]:
    """Train every stage of ``config`` in order; returns one result per trained model.

    Raises:
        ConfigError: bad settings (all at once).
        DataError: a stage's data is unreadable or lacks the fields its texts need.
        TrainingFailed: the ranks failed (their errors are on stderr).
        CheckpointKeyMissing: on the cluster path (TEACHERLM_CHECKPOINT_KEY_REQUIRED) without a key.
    """
    from ..tracking import Tracker
    from .ds_config import load_deepspeed_config
    from .outputs import StageOutput, require_key
    from .stage import Plan, prepare_stage, resolve_model

    require_key()  # the cluster path signs its checkpoints: no key, no start
    launch = config.launch
    # 1. Checks and preparation of every stage before any rank starts.
    on_cpu = check_hardware(config.train, launch, "teacher config")
    deepspeed = load_deepspeed_config(launch.deepspeed, on_cpu=on_cpu)
    base = resolve_model(config.model)
    # The start model by what it holds (weights, or hub id + revision): retrained weights at the same path
    # are another start, and a resumed run is refused rather than served stale.
    start_model, start_id, data = base, model_identity(config.model), None
    specs = []
    for number, stage in enumerate(config.stages, start=1):
        data = stage.data or data
        fields = stage.fields if stage.fields is not None else config.texts.fields
        train = config.train.model_copy(
            update={
                k: getattr(stage, k) for k in ("max_steps", "epochs", "lr") if getattr(stage, k) is not None
            }
        )
        branches = [[f] for f in fields] if stage.specialise else [fields]
        for branch in branches:
            name = f"{number}-{stage.name}" + (f"-{branch[0].replace('_', '-')}" if stage.specialise else "")
            texts = config.texts.model_copy(
                update={
                    "fields": branch,
                    "weights": stage.weights if stage.weights is not None else config.texts.weights,
                }
            )
            spec = prepare_stage(
                name=name,
                output=StageOutput(storage.join(config.output, name)),
                model=start_model,
                start=start_id,
                data=data,
                texts=texts,
                train=train,
                deepspeed=deepspeed,
                world_size=launch.world_size,
                on_conflict="clear",  # an upstream stage changed: this one is retrained
                tokenizer_source=base,
                write_state=launch.node_rank == 0,
            )
            spec.card["name"] = f"{config.name} {name}"
            specs.append(spec)
        if number < len(config.stages):
            # The next stage starts from this one: its local output (trained in this launch) or a copy.
            out = StageOutput(specs[-1].output, specs[-1].local)
            start_model = str(out.fetch_model() if specs[-1].done else out.local)
            start_id = {
                "stage": specs[-1].name,
                "fingerprint": specs[-1].fingerprint,
                "steps": specs[-1].steps,
            }
    plan = Plan(stages=specs, world_size=launch.world_size, nnodes=launch.nnodes)

    # 2. Train the stages that are not done, then log one nested run per stage (node 0 only).
    results: list[TrainResult] = []
    with Tracker(
        run_name=f"train-teacher {config.name}", enabled=config.track and launch.node_rank == 0
    ) as tracker:
        tracker.log_params({"model": config.model, "output": config.output, "stages": len(specs)})
        try:
            launch_plan(plan, launch)
        finally:
            for spec in specs:
                with tracker.stage(spec.name):
                    try:
                        result = stage_result(spec)
                    except RuntimeError:
                        result = None
                    log_stage(tracker, spec, result)
                    if result is not None:
                        results.append(result)
        if launch.node_rank == 0:
            summary = [
                {
                    "stage": r.stage,
                    "output": r.output,
                    "global_step": r.global_step,
                    "final_loss": r.final_loss,
                    "skipped": r.skipped,
                }
                for r in results
            ]
            storage.write_text(
                storage.join(config.output, "stages.json"), json.dumps(summary, indent=2) + "\n"
            )
    return results
