from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def compare(
    reports: Input[list[Artifact]],
    augmented: Input[Dataset],
    report: Output[Markdown],
    page: Output[HTML],
    metrics: Output[Metrics],
    files: Output[Artifact],
    title: str,
    price_per_accelerator_hour: float,
    student_registered_model: str,
):
    """The comparison report: accuracy per task of every student, and the gain over the plain one.

    Args:
        reports: Eval reports, one per student.
        augmented: The augmented dataset the students trained on (its summary goes into the report).
        report: report.md (accuracy table, gains).
        page: The report with its plots inlined, for the pipeline UI.
        metrics: Overall accuracy of each student and its gain over plain.
        files: report.md, accuracy.png, gain.png, report.html, summary.json.
        title: Report title.
        price_per_accelerator_hour: Price of one accelerator-hour, for each student's cost per 1,000 samples.
        student_registered_model: MLflow registered model whose best student of this run may take the alias champion.
    """
    from teacherlm_core.stages.compare import compare

    summary = compare(
        [r.path for r in reports], files.path, title=title, markdown=report.path, html=page.path,
        augmented=augmented.path, price_per_accelerator_hour=price_per_accelerator_hour,
        student_registered_model=student_registered_model,
    )  # fmt: skip
    for key, value in summary["metrics"].items():
        metrics.log_metric(key, value)
