"""``compare``: the comparison report of the students' evaluations (CLI ``teacherlm compare``, component ``compare``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import TeacherLMError
from ._run import stage_run

__all__ = ["compare"]


def compare(
    reports: list[str],
    output: str,
    *,
    title: str = "teacherlm: plain vs augmented students",
    markdown: str = "",
    html: str = "",
) -> dict:
    """Write the comparison of eval report files (named by their models) under ``output``.

    ``output`` gets ``report.md``, ``report.html``, ``accuracy.png``, ``gain.png`` and
    ``summary.json``; ``markdown`` and ``html``, when given, get copies of ``report.md`` and
    ``report.html`` (a pipeline's Markdown and HTML outputs).

    Returns:
        The summary (``overall``, ``gain``...) plus ``metrics``: flat ``accuracy.<model>`` and
        ``gain.<model>``, for KFP Metrics.

    Raises:
        TeacherLMError: two reports of the same model.
    """
    from ..compare import write_comparison
    from ..evaluate import EvalReport

    named = {EvalReport.model_validate_json(Path(p).read_text()).model: p for p in reports}
    if len(named) != len(reports):
        raise TeacherLMError(f"eval reports with the same model name among {len(reports)}: {sorted(named)}")
    with stage_run("compare", {"models": ",".join(named)}) as t:
        summary = write_comparison(named, output, title=title)
        metrics = {f"accuracy.{k}": v for k, v in summary["overall"].items()}
        metrics |= {f"gain.{k}": v for k, v in summary["gain"].items()}
        t.log_metrics(metrics)
        for name in ("report.md", "accuracy.png", "gain.png"):
            if (Path(output) / name).exists():
                t.log_artifact(Path(output) / name)
    for src, dst in (("report.md", markdown), ("report.html", html)):
        if dst:
            shutil.copyfile(Path(output) / src, dst)
    return summary | {"metrics": metrics}
