"""The student comparison report: plain vs augmented (and per-field ablation) students.

report.md      the accuracy table (task x model) and the gain of each student over "plain"
accuracy.png   accuracy per task, one bar per model, with the chance level
gain.png       accuracy gain over the plain student per task (absent without a "plain" model)
report.html    the same, self-contained (plots inlined), for the Kubeflow Pipelines UI
summary.json   {"overall": {model: acc}, "tasks": {task: {model: acc}}, "gain": {model: delta}}
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path

from .evaluate import EvalReport
from .report import markdown_table, write_report

__all__ = ["gain_plot", "summarize", "write_comparison"]

BASELINE = "plain"


def summarize(reports: Mapping[str, EvalReport]) -> dict:
    """Overall and per-task accuracies, and each model's overall gain over the plain student."""
    overall = {name: r.overall.accuracy for name, r in reports.items()}
    tasks = sorted({t for r in reports.values() for t in r.tasks})
    per_task = {t: {name: r.tasks[t].accuracy for name, r in reports.items() if t in r.tasks} for t in tasks}
    base = overall.get(BASELINE)
    gain = {name: acc - base for name, acc in overall.items() if base is not None and name != BASELINE}
    return {"overall": overall, "tasks": per_task, "gain": gain}


def gain_plot(reports: Mapping[str, EvalReport], path: str | Path) -> Path | None:
    """Bars of (model accuracy - plain accuracy) per task; ``None`` without a plain model."""
    if BASELINE not in reports or len(reports) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = reports[BASELINE]
    others = {n: r for n, r in reports.items() if n != BASELINE}
    tasks = [*sorted(base.tasks), "overall"]
    width = 0.8 / len(others)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks)), 4), dpi=120)
    top = 0.05
    for k, (name, r) in enumerate(others.items()):
        deltas = []
        for t in tasks:
            mine = r.overall if t == "overall" else r.tasks.get(t)
            ref = base.overall if t == "overall" else base.tasks[t]
            deltas.append(mine.accuracy - ref.accuracy if mine else 0.0)
        xs = [i + (k - (len(others) - 1) / 2) * width for i in range(len(tasks))]
        ax.bar(xs, deltas, width, label=name)
        top = max(top, *map(abs, deltas))
    ax.axhline(0, color="black", linewidth=1)
    ax.set_ylim(-1.15 * top, 1.15 * top)  # symmetric: a gain and a loss look alike
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_ylabel("accuracy gain over plain")
    ax.set_title("Students: gain from teacher augmentation, per task")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _html(title: str, notes: str, table_md: str, images: list[Path]) -> str:
    rows = [line.strip("|").split("|") for line in table_md.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    cells = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    trs = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c.strip().strip('*'))}</td>" for c in r) + "</tr>" for r in body
    )
    imgs = "".join(
        f'<p><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"></p>'
        for p in images
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(notes)}</p>"
        f"<table border='1' cellpadding='4'><tr>{cells}</tr>{trs}</table>{imgs}</body></html>"
    )


def write_comparison(
    reports: Mapping[str, str | Path], out_dir: str | Path, title: str = "teacherlm report"
) -> dict:
    """Load eval reports ``{model name: report JSON}`` and write the files above; returns the summary."""
    loaded = {name: EvalReport.model_validate_json(Path(p).read_text()) for name, p in reports.items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(loaded)
    notes = "Zero-shot rank classification on the held-out test split. " + (
        " ".join(f"{name}: {delta:+.3f} over plain." for name, delta in summary["gain"].items())
    )
    gain = gain_plot(loaded, out / "gain.png")
    md = write_report(loaded, out, title=title, notes=notes.strip())
    if gain is not None:
        with md.open("a") as f:
            f.write("\n![gain over the plain student](gain.png)\n")
    images = [out / "accuracy.png", *([gain] if gain else [])]
    (out / "report.html").write_text(_html(title, notes, markdown_table(loaded), images))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
