"""The training curve a person looks at: loss per step of every stage, as a PNG and a self-contained HTML page.

Read from the model's ``metrics.jsonl`` (and, for a multi-stage teacher, ``stages/<n>-<stage>/metrics.jsonl``).
The ``train teacher`` and ``train student`` tasks show the page in the pipeline UI.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["loss_curves", "training_page"]


def loss_curves(model_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{stage: [(step, loss), ...]}``: each ``stages/<n>-<name>/metrics.jsonl``, else the model's own."""
    root = Path(model_dir)
    files = sorted(root.glob("stages/*/metrics.jsonl")) or [root / "metrics.jsonl"]
    curves = {}
    for f in files:
        if f.is_file():
            rows = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
            name = f.parent.name if f.parent != root else root.name
            curves[name] = [(int(r["step"]), float(r["loss"])) for r in rows if r.get("loss") is not None]
    return curves


def training_page(model_dir: str | Path, page: str | Path, title: str = "Training") -> dict[str, float]:
    """Write ``loss.png`` (beside ``page``'s content, inlined) and the HTML ``page``: loss curve + final metrics.

    Returns the metrics the page shows (``steps``, ``final_loss``, ``tokens``, ``accelerator_seconds``...),
    flat, for KFP Metrics.
    """
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..compare import page_html
    from ..cost import read_cost
    from .outputs import card_summary

    curves = loss_curves(model_dir)
    metrics = {k: v for k, v in card_summary(model_dir).items() if isinstance(v, (int, float))}
    for stage, c in read_cost(model_dir).items():
        metrics |= {f"{stage}.{k}".replace(" ", "_"): v for k, v in c.model_dump().items()}
    with tempfile.TemporaryDirectory() as tmp:
        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=110)
        offset = 0
        for name, points in curves.items():
            if points:
                ax.plot([offset + s for s, _ in points], [v for _, v in points], marker=".", label=name)
                offset += points[-1][0]
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(Path(tmp, "loss.png"))
        plt.close(fig)
        rows = "\n".join(f"| {k} | {v:.6g} |" for k, v in metrics.items())
        text = f"# {title}\n\n![training loss](loss.png)\n\n| metric | value |\n|---|---:|\n{rows}\n"
        Path(page).parent.mkdir(parents=True, exist_ok=True)
        Path(page).write_text(page_html(title, text, Path(tmp)))
    return metrics
