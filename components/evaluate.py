from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from ._image import VLLM_IMAGE


@dsl.component(base_image=VLLM_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    data: Input[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
    name: str,
    split: str,
    engine: str,
    batch_size: int,
):
    """Zero-shot rank classification: per-task accuracy of a model on a held-out split.

    Args:
        model: The model to evaluate.
        data: Multiple-choice dataset.
        report: The eval report JSON (per-task accuracy, per-sample scores).
        metrics: Overall and per-task accuracy.
        name: The model's name in reports.
        split: Which split of the dataset.
        engine: vllm or hf.
        batch_size: Sequences per forward pass (hf) or cap on running sequences (vllm).
    """
    from teacherlm_core import pipeline_ops

    scores = pipeline_ops.evaluate_model(
        model.path, data.path, report.path, name=name, split=split, engine=engine, batch_size=batch_size,
    )  # fmt: skip
    for key, value in scores.items():
        metrics.log_metric(key, value)
