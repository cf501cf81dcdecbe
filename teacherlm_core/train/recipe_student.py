"""The student recipe: multi-task training on augmented data (the paper's student setup).

    teacherlm train student --model runs/tiny --data runs/data/train.jsonl --output runs/student \\
        --nproc-per-node 2 --deepspeed zero2 --max-steps 200

From each sample: the plain question with its answer, and base text + suffix + text for each
explanation field (``texts.fields``; ``fields: []`` trains the plain baseline). Texts are
weighted, tokenised and packed; the ranks train with HF Trainer + DeepSpeed and write a
consolidated model, a card, ``metrics.jsonl`` and checkpoints. Re-running the same command with a
larger ``--max-steps`` resumes from the last complete checkpoint (local or ``s3://``).
"""

from __future__ import annotations

from pathlib import Path

from ..models import model_identity
from .config import StudentConfig
from .recipe import TrainResult, check_hardware, launch_plan, log_stage, stage_result

__all__ = ["train_student"]


def train_student(config: StudentConfig) -> TrainResult:
    """Train a student as ``config`` says; returns where the model is and how training went.

    Raises:
        ConfigError: bad settings, or an output holding a run with other settings.
        DataError: unreadable data, or records without the fields the training texts need.
        TrainingFailed: the ranks failed (their errors are on stderr).
        CheckpointKeyMissing: on the cluster path (TEACHERLM_CHECKPOINT_KEY_REQUIRED) without a key.
    """
    from ..tracking import Tracker
    from .ds_config import load_deepspeed_config
    from .outputs import StageOutput, require_key
    from .stage import Plan, prepare_stage, resolve_model

    require_key()  # the cluster path signs its checkpoints: no key, no start
    launch = config.launch
    # 1. Everything that can fail before a rank starts: hardware, DeepSpeed config, model, data.
    on_cpu = check_hardware(config.train, launch, "student config")
    deepspeed = load_deepspeed_config(launch.deepspeed, on_cpu=on_cpu)
    output = StageOutput(config.output)
    spec = prepare_stage(
        name="student",
        output=output,
        model=resolve_model(config.model),
        start=model_identity(config.model),  # what the path holds: new weights there are a new run
        data=config.data,
        texts=config.texts,
        train=config.train,
        deepspeed=deepspeed,
        world_size=launch.world_size,
        on_conflict="error",
        write_state=launch.node_rank == 0,
    )
    name = config.name or Path(config.output).name
    spec.card["name"] = name
    plan = Plan(stages=[spec], world_size=launch.world_size, nnodes=launch.nnodes)

    # 2. Train on this node's ranks (every node runs this same function), tracked from node 0.
    with Tracker(run_name=f"train-student {name}", enabled=config.track and launch.node_rank == 0) as tracker:
        tracker.log_params({"model": config.model, "data": config.data, "output": config.output})
        with tracker.stage("student"):
            launch_plan(plan, launch)
            result = stage_result(spec)
            log_stage(tracker, spec, result)
    return result
