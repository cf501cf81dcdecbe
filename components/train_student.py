from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from ._image import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train_student(
    data: Input[Dataset],
    student: Output[Model],
    loss: Output[HTML],
    metrics: Output[Metrics],
    variant: str,
    student_base_model: str,
    student_config: str,
    student_max_steps: int,
    nnodes: int,
    nproc_per_node: int,
    deepspeed: str,
    launcher: str,
    work_root: str,
    seed: int,
    student_registered_model: str,
):
    """The student recipe on the augmented data, with the explanation fields of one variant.

    Args:
        data: The augmented dataset (train.jsonl).
        student: The trained student (safetensors + tokenizer + card + metrics.jsonl + cost.json).
        loss: The training loss curve and final metrics.
        metrics: Steps, final loss, tokens and accelerator-seconds.
        variant: plain (question and answer only), augmented (all three fields), or one field.
        student_base_model: Start model: local path, s3:// URI or hub id.
        student_config: Training config: a shipped name (student, student_tiny) or a YAML path/URI.
        student_max_steps: Optimizer steps; 0: the config's.
        nnodes: Nodes of the TrainJob (1 locally).
        nproc_per_node: Ranks per node: GPUs on a cluster, gloo ranks locally.
        deepspeed: zero2, zero3 or none; empty: the config's.
        launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes, torchrun elsewhere).
        work_root: Shared storage (s3:// prefix) for the TrainJob's data and model, and resuming; empty: none.
        seed: Seed of data order, mixture sampling and initialisation (the config's train.seed).
        student_registered_model: MLflow registered model the student becomes a version of.
    """
    from teacherlm_core.stages.train_student import train_student

    result = train_student(
        student_base_model, data.path, student.path, variant=variant, student_config=student_config,
        student_max_steps=student_max_steps, nnodes=nnodes, nproc_per_node=nproc_per_node, deepspeed=deepspeed,
        launcher=launcher, work_root=work_root, seed=seed, student_registered_model=student_registered_model,
        model_uri=student.uri, loss_page=loss.path,
    )  # fmt: skip
    metrics.metadata.update(result.pop("metrics"))  # what Metrics.log_metric does, key by key
    student.metadata.update(result)
