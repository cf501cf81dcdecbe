"""Human-facing results: a Markdown report and an accuracy-per-task plot from eval reports.

The ``student`` and ``end_to_end`` pipelines compare plain and augmented students with it; the
demo uses it for whatever models it evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .evaluate import EvalReport

__all__ = ["accuracy_plot", "chance", "markdown_table", "table_cell", "write_report"]


def table_cell(text: object) -> str:
    """``text`` as one Markdown table cell: on one line, its ``|`` and ``\\`` escaped, so a task or
    model name can never shift the cells after it."""
    return " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|")


def _tasks(reports: Mapping[str, EvalReport]) -> list[str]:
    return sorted({t for r in reports.values() for t in r.tasks})


def chance(report: EvalReport, task: str | None = None) -> float:
    """Expected accuracy of a uniform guess: mean of 1/#choices over the task's samples."""
    picks = [1 / len(s.choice_loglikelihoods) for s in report.samples if task in (None, s.task)]
    return sum(picks) / len(picks) if picks else float("nan")


def markdown_table(reports: Mapping[str, EvalReport]) -> str:
    """One row per task, one column per model, accuracies with their ``n``."""
    names = list(reports)
    lines = ["| task | " + " | ".join(map(table_cell, names)) + " |", "|---|" + "---:|" * len(names)]
    for task in [*_tasks(reports), "overall"]:
        cells = []
        for r in reports.values():
            acc = r.overall if task == "overall" else r.tasks.get(task)
            cells.append(f"{acc.accuracy:.3f} (n={acc.n})" if acc else "-")
        label = "**overall**" if task == "overall" else table_cell(task)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def accuracy_plot(
    reports: Mapping[str, EvalReport], path: str | Path, title: str = "Zero-shot accuracy per task"
) -> Path:
    """A grouped bar chart (tasks x models) with a chance line per task, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [*_tasks(reports), "overall"]
    width = 0.8 / max(1, len(reports))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks)), 4), dpi=120)
    for k, (name, r) in enumerate(reports.items()):
        values = [(r.overall if t == "overall" else r.tasks.get(t)) for t in tasks]
        xs = [i + (k - (len(reports) - 1) / 2) * width for i in range(len(tasks))]
        ax.bar(xs, [v.accuracy if v else 0 for v in values], width, label=name)
    first = next(iter(reports.values()))
    for i, t in enumerate(tasks):
        level = chance(first, None if t == "overall" else t)
        ax.hlines(
            level,
            i - 0.45,
            i + 0.45,
            colors="black",
            linestyles="dashed",
            linewidth=1,
            label="chance" if i == 0 else None,
        )
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    reports: Mapping[str, EvalReport], out_dir: str | Path, title: str = "teacherlm report", notes: str = ""
) -> Path:
    """Write ``report.md`` and ``accuracy.png`` under ``out_dir``; returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accuracy_plot(reports, out / "accuracy.png")
    text = f"# {title}\n\n{notes}\n\n## Zero-shot rank classification\n\n{markdown_table(reports)}\n\n![accuracy per task](accuracy.png)\n"
    (out / "report.md").write_text(text)
    return out / "report.md"
