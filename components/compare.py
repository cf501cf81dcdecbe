from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def compare(
    reports: Input[list[Artifact]],
    report: Output[Markdown],
    page: Output[HTML],
    metrics: Output[Metrics],
    files: Output[Artifact],
    title: str,
):
    """The comparison report: accuracy per task of every student, and the gain over the plain one.

    Args:
        reports: Eval reports, one per student.
        report: report.md (accuracy table, gains).
        page: The report with its plots inlined, for the pipeline UI.
        metrics: Overall accuracy of each student and its gain over plain.
        files: report.md, accuracy.png, gain.png, report.html, summary.json.
        title: Report title.
    """
    from teacherlm_core.stages.compare import compare

    summary = compare(
        [r.path for r in reports],
        files.path,
        title=title,
        markdown=report.path,
        html=page.path,
    )
    for key, value in summary["metrics"].items():
        metrics.log_metric(key, value)
