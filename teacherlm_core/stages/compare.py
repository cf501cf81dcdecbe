"""``compare``: the comparison report of the students' evaluations (CLI ``teacherlm compare``, component ``compare``)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .. import storage
from ..errors import TeacherLMError
from ._run import pipeline_run_id, stage_run
from .params import P

__all__ = ["compare", "eval_set_digest"]


def eval_set_digest(report) -> str:
    """The evaluation set's identity: sha256 of its sorted item ids (two reports on the same items share it)."""
    return hashlib.sha256("\n".join(sorted(s.id for s in report.samples)).encode()).hexdigest()


def compare(
    reports: list[str],
    output: str,
    *,
    title: str = "teacherlm: plain vs augmented students",
    markdown: str = "",
    html: str = "",
    augmented: str = "",
    price_per_accelerator_hour: float = P.price_per_accelerator_hour,
    student_registered_model: str = P.student_registered_model,
) -> dict:
    """Write the comparison of eval report files (named by their models) under ``output``.

    ``output`` gets ``report.md``, ``report.html``, ``accuracy.png``, ``gain.png`` and
    ``summary.json``; ``markdown`` and ``html``, when given, get copies of ``report.md`` and
    ``report.html`` (a pipeline's Markdown and HTML outputs). With ``augmented`` (the augmented
    dataset's directory) the report also shows the augmentation summary. Each student's cost per
    1,000 samples is given at ``price_per_accelerator_hour``. The best student registered (as a
    version of ``student_registered_model``) by this pipeline run takes the alias ``champion``
    when it beats the current holder on the same evaluation set.

    Returns:
        The summary (``overall``, ``gain``, ``cost``, ``champion``...) plus ``metrics``: flat
        ``accuracy.<model>`` and ``gain.<model>``, for KFP Metrics.

    Raises:
        TeacherLMError: two reports of the same model.
    """
    from ..compare import write_comparison
    from ..evaluate import load_report
    from ..lineage import promote_champion

    loaded = {p: load_report(p) for p in reports}
    named = {r.model: p for p, r in loaded.items()}
    if len(named) != len(reports):
        raise TeacherLMError(f"eval reports with the same model name among {len(reports)}: {sorted(named)}")
    storage.check_writable(output, directory=True)  # before any report is drawn
    with stage_run("compare", {"models": ",".join(named)}, stage="compare") as t:
        summary = write_comparison(
            named,
            output,
            title=title,
            augmented=augmented,
            price_per_accelerator_hour=price_per_accelerator_hour,
        )
        metrics = {f"accuracy.{k}": v for k, v in summary["overall"].items()}
        metrics |= {f"gain.{k}": v for k, v in summary["gain"].items()}
        t.log_metrics(metrics)
        summary["champion"] = promote_champion(
            student_registered_model,
            pipeline_run_id(),
            summary["overall"],
            eval_set_digest(next(iter(loaded.values()))),
        )
        if summary["champion"]["champion"]:
            t.set_tags({"teacherlm.champion": summary["champion"]["champion"]})
        for name in ("report.md", "report.html", "accuracy.png", "gain.png"):
            if (Path(output) / name).exists():
                t.log_artifact(Path(output) / name)
    for src, dst in (("report.md", markdown), ("report.html", html)):
        if dst:
            shutil.copyfile(Path(output) / src, dst)
    return summary | {"metrics": metrics}
