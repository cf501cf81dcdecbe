from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from ._image import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def train_student(
    data: Input[Dataset],
    student: Output[Model],
    variant: str,
    base_model: str,
    config: str,
    max_steps: int,
    nodes: int,
    procs_per_node: int,
    deepspeed: str,
    launcher: str,
    work_root: str,
):
    """The student recipe on the augmented data, with the explanation fields of one variant.

    Args:
        data: The augmented dataset (train.jsonl).
        student: The trained student (safetensors + tokenizer + card + metrics.jsonl).
        variant: plain (question and answer only), augmented (all three fields), or one field.
        base_model: Start model: local path, s3:// URI or hub id.
        config: Training config: a shipped name (student, student_tiny) or a YAML path/URI.
        max_steps: Optimizer steps; 0: the config's.
        nodes: Nodes of the TrainJob (1 locally).
        procs_per_node: Ranks per node: GPUs on a cluster, gloo ranks locally.
        deepspeed: zero2, zero3 or none; empty: the config's.
        launcher: trainjob, torchrun, or auto (TrainJob inside Kubernetes, torchrun elsewhere).
        work_root: Shared storage (s3:// prefix) for the TrainJob's data and model, and resuming; empty: none.
    """
    from teacherlm_core import pipeline_train

    result = pipeline_train.train_student(
        base_model, data.path, student.path, variant=variant, config=config, max_steps=max_steps, nodes=nodes,
        procs_per_node=procs_per_node, deepspeed=deepspeed, launcher=launcher, work_root=work_root,
    )  # fmt: skip
    student.metadata.update(result)
