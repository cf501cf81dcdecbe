"""``teacherlm demo``: the main job end to end on the embedded default, no downloads.

Built-in annotated data, tiny models built on the fly, a local artifact dir and a local SQLite
MLflow store (or ``MLFLOW_TRACKING_URI``). One MLflow parent run, one nested run per stage.
The stages that exist so far run here in order; the ``end_to_end`` KFP pipeline replaces this
linear runner when it lands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]


def run_demo(
    workdir: str | Path, *, per_task: int = 60, seed: int = 0, engine: str = "vllm", progress=None
) -> dict[str, Any]:
    """Run the demo under ``workdir/<run-id>/``; returns a summary (paths, counts, accuracies)."""
    from .data import build_builtin
    from .engines import get_engine
    from .evaluate import evaluate, load_eval_samples
    from .report import write_report
    from .schema import load_samples
    from .tiny import build_tiny_model
    from .tracking import Tracker

    run_id = time.strftime("demo-%Y%m%d-%H%M%S")
    root = Path(workdir).resolve() / run_id
    timings: dict[str, float] = {}
    with Tracker("teacherlm-demo", run_name=run_id, tags={"teacherlm.run_id": run_id}) as tracker:
        tracker.log_params({"per_task": per_task, "seed": seed, "engine": engine, "root": str(root)})

        t = time.perf_counter()
        with tracker.stage("data", params={"per_task": per_task, "seed": seed}):
            manifest = build_builtin(root / "data", per_task=per_task, seed=seed)
            tracker.log_metrics(
                {"records": manifest["records"]["out"], "duplicates": manifest["records"]["duplicates"]}
            )
            tracker.log_artifact(root / "data" / "manifest.json")
        timings["data"] = time.perf_counter() - t

        t = time.perf_counter()
        with tracker.stage("tiny-model", params={"preset": "tiny", "seed": seed}):
            corpus = [
                " ".join(
                    str(r.to_record().get(k, ""))
                    for k in ("question", "fundamentals", "chain_of_thought", "common_mistakes")
                )
                for r in load_samples(root / "data" / "train.jsonl")
            ]
            teacher = build_tiny_model(
                root / "models" / "teacher-base", preset="tiny", seed=seed, corpus=corpus
            )
        timings["tiny-model"] = time.perf_counter() - t

        t = time.perf_counter()
        with tracker.stage("eval", params={"model": "teacher-base", "engine": engine}):
            samples = load_eval_samples(str(root / "data" / "test.jsonl"))
            report = evaluate(
                get_engine(engine, str(teacher)), samples, str(root / "eval" / "teacher-base.json"),
                model_name="teacher-base", progress=progress,
            )  # fmt: skip
            tracker.log_metrics(
                {"accuracy": report.overall.accuracy}
                | {f"accuracy.{k}": v.accuracy for k, v in report.tasks.items()}
            )
        timings["eval"] = time.perf_counter() - t

        notes = (
            f"Run `{run_id}`: built-in suite ({manifest['records']['out']} samples, seed {seed}), "
            f"a random-init tiny teacher, zero-shot rank classification on the test split with the {engine} engine. "
            "An untrained model sits near chance; trained teachers and students come with the training stages."
        )
        md = write_report({"teacher-base": report}, root / "report", title="teacherlm demo", notes=notes)
        tracker.log_artifact(md)
        tracker.log_artifact(root / "report" / "accuracy.png")
    summary = {
        "run_id": run_id,
        "root": str(root),
        "records": manifest["records"],
        "accuracy": {"teacher-base": report.overall.accuracy},
        "report": str(md),
        "mlflow_run_id": tracker.run_id,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
