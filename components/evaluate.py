from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from ._image import VLLM_IMAGE


@dsl.component(base_image=VLLM_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    data: Input[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
    name: str,
    split: str,
    engine: str,
    eval_batch_size: int,
):
    """Zero-shot rank classification: per-task accuracy of a model on a held-out split.

    Args:
        model: The model to evaluate.
        data: Multiple-choice dataset.
        report: The eval report JSON (per-task accuracy, per-sample scores).
        metrics: Overall and per-task accuracy.
        confusion: Gold choice x predicted choice, by letter.
        name: The model's name in reports.
        split: Which split of the dataset.
        engine: auto (vLLM where it can run the model, else HF, said once), vllm or hf.
        eval_batch_size: Sequences per forward pass (hf) or cap on running sequences (vllm).
    """
    from teacherlm_core.stages.evaluate import evaluate

    result = evaluate(
        model.path, data.path, report.path, name=name, split=split, engine=engine, eval_batch_size=eval_batch_size,
    )  # fmt: skip
    for key, acc in (
        {"accuracy": result.overall} | {f"accuracy.{t}": a for t, a in result.tasks.items()}
    ).items():
        metrics.log_metric(key, acc.accuracy)
    confusion.log_confusion_matrix(*result.confusion())
