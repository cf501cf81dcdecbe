from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from ._image import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train_teacher(
    seed_data: Input[Dataset],
    star_data: Input[Dataset],
    teacher: Output[Model],
    loss: Output[HTML],
    metrics: Output[Metrics],
    teacher_base_model: str,
    teacher_config: str,
    personalise_data: str,
    teacher_max_steps: int,
    nnodes: int,
    nproc_per_node: int,
    deepspeed: str,
    launcher: str,
    work_root: str,
    seed: int,
    teacher_registered_model: str,
):
    """The teacher recipe: stage 1 multi-task on the seed + STaR data, stage 2 personalisation.

    Args:
        seed_data: The annotated seed data (its train split).
        star_data: The STaR output: each kept rationale is one more training sample.
        teacher: The last stage's model (safetensors + tokenizer + card + cost.json), stages/ with every stage's metrics.
        loss: The training loss curve of every stage and the final metrics.
        metrics: Steps, final loss, tokens and accelerator-seconds.
        teacher_base_model: Start model: local path, s3:// URI or hub id.
        teacher_config: Training config: a shipped name (teacher, teacher_tiny) or a YAML path/URI.
        personalise_data: A user's domain data (JSONL/Parquet URI) for stage 2; empty: stage 1 only.
        teacher_max_steps: Optimizer steps of stage 1 (multi-task); 0: the config's.
        nnodes: Nodes of the TrainJob (1 locally).
        nproc_per_node: Ranks per node: GPUs on a cluster, gloo ranks locally.
        deepspeed: zero2, zero3 or none; empty: the config's.
        launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes, torchrun elsewhere).
        work_root: Shared storage (s3:// prefix) for the TrainJob's data and model, and resuming; empty: none.
        seed: Seed of data order, mixture sampling and initialisation (the config's train.seed).
        teacher_registered_model: MLflow registered model the teacher becomes a version of.
    """
    from teacherlm_core.stages.train_teacher import train_teacher

    result = train_teacher(
        teacher_base_model, seed_data.path, star_data.path, teacher.path, teacher_config=teacher_config,
        personalise_data=personalise_data, teacher_max_steps=teacher_max_steps, nnodes=nnodes,
        nproc_per_node=nproc_per_node, deepspeed=deepspeed, launcher=launcher, work_root=work_root, seed=seed,
        teacher_registered_model=teacher_registered_model, model_uri=teacher.uri, loss_page=loss.path,
    )  # fmt: skip
    metrics.metadata.update(result.pop("metrics"))  # what Metrics.log_metric does, key by key
    teacher.metadata.update(result)
