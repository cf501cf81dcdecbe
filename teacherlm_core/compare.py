"""The student comparison report: plain vs augmented (and per-field ablation) students.

report.md      the accuracy table (task x model) and the gain of each student over "plain"
accuracy.png   accuracy per task, one bar per model, with the chance level
gain.png       accuracy gain over the plain student per task (absent without a "plain" model)
report.html    the same, self-contained (plots inlined), for the Kubeflow Pipelines UI
summary.json   {"overall": {model: acc}, "tasks": {task: {model: acc}}, "gain": {model: delta},
               "intervals": {model: [lo, hi]}, "paired": {model: {...}}}

Uncertainty: each model's accuracy gets a 95% percentile-bootstrap interval over the evaluation
items; each model is compared with the plain student *on the same items*: the paired difference
in accuracy with its bootstrap interval, and McNemar's exact test on the discordant items (one
right, the other wrong; ``scipy.stats.binomtest``). The report says in words whether a difference
is significant at the 5% level. Bootstraps are seeded, so a report is reproducible.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path

from .evaluate import EvalReport
from .report import markdown_table, write_report

__all__ = ["accuracy_interval", "gain_plot", "paired_comparison", "summarize", "write_comparison"]

BASELINE = "plain"
LEVEL = 0.95
RESAMPLES = 2000


def _correct(report: EvalReport) -> dict[str, bool]:
    return {s.id: s.correct for s in report.samples}


def accuracy_interval(correct: list[bool], seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of an accuracy (``correct``: one bool per evaluation item)."""
    import numpy as np
    from scipy.stats import bootstrap

    x = np.asarray(correct, dtype=float)
    if len(x) < 2 or x.min() == x.max():  # no spread to resample: the interval is the point
        return float(x.mean()), float(x.mean())
    ci = bootstrap((x,), np.mean, confidence_level=LEVEL, n_resamples=RESAMPLES, method="percentile",
                   random_state=np.random.default_rng(seed)).confidence_interval  # fmt: skip
    return float(ci.low), float(ci.high)


def paired_comparison(base: EvalReport, other: EvalReport, seed: int = 0) -> dict:
    """``other`` vs ``base`` on the items both scored: difference, its interval, McNemar's exact p.

    Returns ``{"items", "difference", "interval", "discordant": [other right only, base right only],
    "p_value", "significant", "verdict"}``.

    Raises:
        ValueError: the two reports share no item.
    """
    import numpy as np
    from scipy.stats import binomtest, bootstrap

    a, b = _correct(base), _correct(other)
    ids = sorted(set(a) & set(b))
    if not ids:
        raise ValueError(f"{other.model} and {base.model} share no evaluation item")
    xa = np.array([a[i] for i in ids], dtype=float)
    xb = np.array([b[i] for i in ids], dtype=float)
    diff = xb - xa
    if diff.min() == diff.max():
        interval = (float(diff.mean()), float(diff.mean()))
    else:
        ci = bootstrap((xb, xa), lambda u, v, axis=-1: np.mean(u - v, axis=axis), paired=True, vectorized=True,
                       confidence_level=LEVEL, n_resamples=RESAMPLES, method="percentile",
                       random_state=np.random.default_rng(seed)).confidence_interval  # fmt: skip
        interval = (float(ci.low), float(ci.high))
    only_other, only_base = int(((xb == 1) & (xa == 0)).sum()), int(((xb == 0) & (xa == 1)).sum())
    p = binomtest(only_other, only_other + only_base, 0.5).pvalue if only_other + only_base else 1.0
    significant = p < 1 - LEVEL
    d = float(diff.mean())
    verdict = (
        f"{other.model} is {'better' if d > 0 else 'worse'} than {base.model} by {abs(d):.3f} "
        f"(95% CI {interval[0]:+.3f} to {interval[1]:+.3f}; McNemar p = {p:.3g}): significant at the 5% level"
        if significant
        else f"{other.model} vs {base.model}: {d:+.3f} (95% CI {interval[0]:+.3f} to {interval[1]:+.3f}; "
        f"McNemar p = {p:.3g}): not significant at the 5% level, on {len(ids)} items"
    )
    return {"items": len(ids), "difference": d, "interval": list(interval), "discordant": [only_other, only_base],
            "p_value": float(p), "significant": bool(significant), "verdict": verdict}  # fmt: skip


def summarize(reports: Mapping[str, EvalReport]) -> dict:
    """Overall and per-task accuracies, and each model's overall gain over the plain student."""
    overall = {name: r.overall.accuracy for name, r in reports.items()}
    tasks = sorted({t for r in reports.values() for t in r.tasks})
    per_task = {t: {name: r.tasks[t].accuracy for name, r in reports.items() if t in r.tasks} for t in tasks}
    base = overall.get(BASELINE)
    gain = {name: acc - base for name, acc in overall.items() if base is not None and name != BASELINE}
    intervals = {name: list(accuracy_interval([s.correct for s in r.samples])) for name, r in reports.items()}
    paired = (
        {name: paired_comparison(reports[BASELINE], r) for name, r in reports.items() if name != BASELINE}
        if BASELINE in reports
        else {}
    )
    return {"overall": overall, "tasks": per_task, "gain": gain, "intervals": intervals, "paired": paired}


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
    n = max((r.overall.n for r in loaded.values()), default=0)
    intervals = "; ".join(
        f"{name} {summary['overall'][name]:.3f} (95% CI {lo:.3f} to {hi:.3f})"
        for name, (lo, hi) in summary["intervals"].items()
    )
    notes = (
        f"Zero-shot rank classification on the held-out test split ({n} items). Accuracy: {intervals}. "
        + (" ".join(f"{p['verdict']}." for p in summary["paired"].values()))
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
