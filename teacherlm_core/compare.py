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
from collections.abc import Mapping, Sequence
from pathlib import Path

from .evaluate import EvalReport, load_report
from .report import write_report

__all__ = [
    "accuracy_interval",
    "gain_plot",
    "hierarchical_bootstrap",
    "minimum_detectable_effect",
    "page_html",
    "paired_comparison",
    "pooled_mcnemar",
    "summarize",
    "task_report",
    "task_table",
    "write_comparison",
]

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
    ci = bootstrap(
        (x,),
        np.mean,
        confidence_level=LEVEL,
        n_resamples=RESAMPLES,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).confidence_interval
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
        ci = bootstrap(
            (xb, xa),
            lambda u, v, axis=-1: np.mean(u - v, axis=axis),
            paired=True,
            vectorized=True,
            confidence_level=LEVEL,
            n_resamples=RESAMPLES,
            method="percentile",
            random_state=np.random.default_rng(seed),
        ).confidence_interval
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
    return {
        "items": len(ids),
        "difference": d,
        "interval": list(interval),
        "discordant": [only_other, only_base],
        "p_value": float(p),
        "significant": bool(significant),
        "verdict": verdict,
    }


def pooled_mcnemar(discordant: Sequence[Sequence[int]]) -> float:
    """McNemar's exact test pooled over seeds: the discordant pairs summed, then one binomial test.

    Args:
        discordant: per seed ``[other right only, base right only]`` (``paired_comparison``'s
            ``"discordant"``), on the same items in every seed.

    Returns:
        The two-sided p-value (1.0 when no pair is discordant).
    """
    from scipy.stats import binomtest

    b = sum(int(d[0]) for d in discordant)
    c = sum(int(d[1]) for d in discordant)
    return float(binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0


def hierarchical_bootstrap(
    differences: Sequence[Sequence[float]], seed: int = 0, resamples: int = RESAMPLES
) -> tuple[float, float]:
    """95% percentile interval of a mean paired difference, resampling seeds, then items in each.

    Args:
        differences: per seed, the per-item differences (other correct - base correct: -1, 0 or
            1) on that seed's items. Seeds are the upper level (a new student initialisation),
            items the lower (new questions), so the interval covers both sources of noise.

    Returns:
        ``(low, high)``; the point itself when there is nothing to resample.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = [np.asarray(d, dtype=float) for d in differences if len(d)]
    if not arrays:
        return (0.0, 0.0)
    means = np.empty(resamples)
    for k in range(resamples):
        picked = rng.integers(0, len(arrays), len(arrays))
        means[k] = np.mean(
            [arrays[i][rng.integers(0, len(arrays[i]), len(arrays[i]))].mean() for i in picked]
        )
    lo, hi = np.percentile(means, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return float(lo), float(hi)


def minimum_detectable_effect(
    items: int, discordant_share: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """The smallest accuracy difference a paired McNemar test finds with ``power`` at ``alpha``.

    Normal approximation (Connor 1987): a difference ``d`` on ``items`` paired items of which a
    share ``discordant_share`` is discordant is found when ``d >= (z_(1-alpha/2) + z_power) *
    sqrt(discordant_share / items)``. Pooled over seeds, ``items`` is items x seeds.

    Returns:
        The difference in accuracy (0 to 1); ``inf`` for no items.
    """
    from scipy.stats import norm

    if items <= 0:
        return float("inf")
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    return float(z * (max(discordant_share, 1.0 / items) / items) ** 0.5)


def task_report(report: EvalReport, task: str) -> EvalReport:
    """``report`` restricted to one task's items (the per-task rows of the comparison)."""
    from .evaluate import summarize as summarize_scores

    return summarize_scores(report.model, [s for s in report.samples if s.task == task])


def summarize(reports: Mapping[str, EvalReport]) -> dict:
    """Overall and per-task accuracies, and each model against the plain student.

    Returns ``{"overall", "tasks", "gain", "intervals", "paired"}`` (overall) plus
    ``"task_intervals": {task: {model: [lo, hi]}}`` and ``"task_paired": {task: {model:
    paired_comparison}}``: each family judged on its own items, since pooling families with and
    without an effect dilutes it.
    """
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
    task_intervals, task_paired = {}, {}
    for t in tasks:
        subsets = {name: task_report(r, t) for name, r in reports.items() if t in r.tasks}
        task_intervals[t] = {
            name: list(accuracy_interval([s.correct for s in r.samples])) for name, r in subsets.items()
        }
        if BASELINE in subsets:
            task_paired[t] = {
                name: paired_comparison(subsets[BASELINE], r)
                for name, r in subsets.items()
                if name != BASELINE
            }
    return {
        "overall": overall,
        "tasks": per_task,
        "gain": gain,
        "intervals": intervals,
        "paired": paired,
        "task_intervals": task_intervals,
        "task_paired": task_paired,
    }


def task_table(summary: dict) -> str:
    """Markdown: per task, each model's accuracy with its 95% CI and its difference to plain (McNemar p)."""
    names = list(summary["overall"])
    lines = ["| task | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for t, accs in summary["tasks"].items():
        cells = []
        for name in names:
            if name not in accs:
                cells.append("-")
                continue
            lo, hi = summary["task_intervals"][t][name]
            cell = f"{accs[name]:.3f} [{lo:.2f}, {hi:.2f}]"
            pair = summary["task_paired"].get(t, {}).get(name)
            if pair:
                star = " **" if pair["significant"] else " "
                cell += f"{star}{pair['difference']:+.3f}, p={pair['p_value']:.2g}{star.strip()}"
            cells.append(cell)
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #bbb;padding:.3rem .5rem;vertical-align:top}"
    "th{background:#f0f0f0}img{max-width:100%}td{max-width:28rem}"
)


def page_html(title: str, markdown_text: str, base: Path) -> str:
    """``markdown_text`` as one self-contained HTML page: tables rendered, ``![..](x.png)`` inlined as data URIs.

    Images are read from ``base``; the page needs no other file (the pipeline UI shows it as it is).
    """
    import re

    from markdown_it import MarkdownIt

    def inline(m: re.Match) -> str:
        path = base / m.group(2)
        if not path.is_file():
            return m.group(0)
        return f"![{m.group(1)}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"

    body = (
        MarkdownIt("commonmark", {"html": False})
        .enable("table")
        .render(re.sub(r"!\[([^\]]*)\]\(([^)\s:]+\.png)\)", inline, markdown_text))
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def write_comparison(
    reports: Mapping[str, str | Path],
    out_dir: str | Path,
    title: str = "teacherlm report",
    *,
    augmented: str = "",
    price_per_accelerator_hour: float | None = None,
) -> dict:
    """Load eval reports ``{model name: report JSON}`` and write the files above; returns the summary.

    Args:
        reports: Eval report files by model name.
        out_dir: Where ``report.md``, ``report.html``, the plots and ``summary.json`` go.
        title: The report's title.
        augmented: The augmented dataset the students trained on (local dir or URI); when given the
            report shows its :func:`~teacherlm_core.augment.summary.augmentation_summary`.
        price_per_accelerator_hour: Price of one accelerator-hour; when given, the report gives each
            student's cost (augmentation + training, from the reports' ``cost``) per 1,000 samples
            next to its accuracy, and ``summary["cost"]`` has it.
    """
    from .cost import Cost, cost_markdown

    loaded = {name: load_report(p) for name, p in reports.items()}
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
    extra = ["", "![gain over the plain student](gain.png)"] if gain is not None else []
    if summary["task_paired"]:
        extra += [
            "",
            "## Per task, against the plain student",
            "",
            "Accuracy [95% bootstrap CI] and the difference to `plain` on the same items with McNemar's exact p "
            "(bold: significant at the 5% level). Families whose test asks what only explanations state "
            "(`fictional`, `fictional_leaky`, `animals`) are where explanations can show; `control_unseen` asks "
            "about creatures no training text mentions and must stay at chance.",
            "",
            task_table(summary),
        ]
    if price_per_accelerator_hour is not None and any(r.cost for r in loaded.values()):
        costs = {
            name: {k: Cost.model_validate(v) for k, v in (r.cost or {}).items()} for name, r in loaded.items()
        }
        summary["cost"] = {
            name: {
                "accuracy": summary["overall"][name],
                "per_1000_samples": {k: c.per_1000(price_per_accelerator_hour) for k, c in parts.items()},
                "accelerator_seconds": sum(c.accelerator_seconds for c in parts.values()),
                "tokens": sum(c.tokens for c in parts.values()),
            }
            for name, parts in costs.items()
        }
        rows = [
            "| student | accuracy | " + " | ".join(("augmentation", "training", "total")) + " |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, parts in costs.items():
            per = {k: c.per_1000(price_per_accelerator_hour) for k, c in parts.items()}
            cells = [per.get("augmentation"), per.get("training")]
            total = sum(x for x in cells if x is not None) if any(x is not None for x in cells) else None
            rows.append(
                f"| {name} | {summary['overall'][name]:.3f} | "
                + " | ".join(f"{x:.4f}" if x is not None else "-" for x in (*cells, total))
                + " |"
            )
        extra += [
            "",
            "## Cost",
            "",
            f"Cost per 1,000 samples at {price_per_accelerator_hour:g} per accelerator-hour (accelerator-seconds "
            "of each piece of work, counted once; see `teacherlm_core/cost.py`), next to the accuracy it bought:",
            "",
            *rows,
            "",
        ]
        for name, parts in costs.items():
            if parts:
                extra += [f"### {name}", "", cost_markdown(parts, price_per_accelerator_hour), ""]
    if augmented:
        from .augment.summary import augmentation_summary, summary_markdown

        extra += ["", summary_markdown(augmentation_summary(augmented))]
    if extra:
        with md.open("a") as f:
            f.write("\n".join(extra) + "\n")
    (out / "report.html").write_text(page_html(title, md.read_text(), out))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
