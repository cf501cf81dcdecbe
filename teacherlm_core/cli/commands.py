"""Top-level subcommands: ``tiny-model``, ``eval``; sub-apps are registered in :func:`register`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from .progress import console, progress_bar

__all__ = ["register"]


class EngineName(str, Enum):
    vllm = "vllm"
    hf = "hf"


def tiny_model(
    out_dir: Path = typer.Argument(..., help="Directory to save the model and tokenizer in."),
    seed: int = typer.Option(0, help="Seed for the random weights."),
    preset: str = typer.Option(
        "tiny", help="'tiny' (~0.6M parameters, tests) or 'small' (~20M, benchmarks)."
    ),
) -> None:
    """Build a random-init Llama and a locally trained BPE tokenizer (no downloads)."""
    from ..tiny import build_tiny_model

    path = build_tiny_model(out_dir, preset=preset, seed=seed)
    console.print(f"[green]saved[/] tiny model ({preset}, seed {seed}) to {path}")


def eval_cmd(
    model: str = typer.Option(..., help="Model path or hub id (a local path needs no network)."),
    data: str = typer.Option(..., help="Multiple-choice JSONL or Parquet file (local path or s3:// URI)."),
    output: str = typer.Option(..., help="Where to write the report JSON (local path or s3:// URI)."),
    engine: EngineName = typer.Option(EngineName.vllm, help="Inference engine: vllm (default) or hf."),
    batch_size: int = typer.Option(
        32, help="Sequences per forward pass (hf) or cap on running sequences (vllm)."
    ),
    revision: str = typer.Option(None, help="Hub revision of the model."),
    track: bool = typer.Option(
        True, help="Log params and accuracies to MLflow (MLFLOW_TRACKING_URI or a local store)."
    ),
) -> None:
    """Zero-shot rank classification: score each answer letter by log-likelihood, pick the best.

    Writes {"model", "tasks": {name: {"accuracy", "n"}}, "overall", "samples": [...]} to OUTPUT.
    Matches lm-evaluation-harness's HF backend on the same model and data.
    """
    from ..engines import get_engine
    from ..evaluate import evaluate, load_eval_samples
    from ..tracking import Tracker

    samples = load_eval_samples(data)  # bad input fails before a model is loaded
    eng = get_engine(engine.value, model, batch_size=batch_size, revision=revision)
    n_choices = sum(len(s.choices or []) for s in samples)
    with Tracker(run_name=f"eval {Path(model).name}", enabled=track) as tracker:
        tracker.log_params(
            {"stage": "eval", "model": model, "data": data, "engine": engine.value, "batch_size": batch_size}
        )
        with progress_bar("scoring choices", n_choices) as advance:
            report = evaluate(eng, samples, output, model_name=model, progress=advance)
        tracker.log_metrics(
            {"accuracy": report.overall.accuracy}
            | {f"accuracy.{t}": a.accuracy for t, a in report.tasks.items()}
        )
    _print_report(report)
    console.print(f"report written to {output}")


def _print_report(report) -> None:
    from rich.table import Table

    table = Table(title=f"rank classification: {report.model}")
    for col in ("task", "accuracy", "n"):
        table.add_column(col, justify="right" if col != "task" else "left")
    for name, acc in report.tasks.items():
        table.add_row(name, f"{acc.accuracy:.3f}", str(acc.n))
    table.add_row("[bold]overall", f"[bold]{report.overall.accuracy:.3f}", f"[bold]{report.overall.n}")
    console.print(table)


def demo(
    workdir: Path = typer.Option(
        Path("teacherlm-work"),
        envvar="TEACHERLM_WORKDIR",
        help="Local artifact dir; each run writes under WORKDIR/<run-id>/.",
    ),
    per_task: int = typer.Option(60, help="Built-in samples per task family (split 70/15/15)."),
    seed: int = typer.Option(0, help="Seed for data and model weights."),
    engine: EngineName = typer.Option(EngineName.vllm, help="Inference engine for the eval stage."),
) -> None:
    """Run the main job end to end on the embedded default: built-in data, tiny models built on
    the fly, a local artifact dir and a local MLflow store. No downloads."""
    import os

    from rich.table import Table

    from ..demo import run_demo
    from ..tracking import default_tracking_uri

    os.environ["TEACHERLM_WORKDIR"] = str(workdir.resolve())
    console.rule("[bold]teacherlm demo")
    with progress_bar("demo: scoring choices", None) as advance:
        summary = run_demo(workdir, per_task=per_task, seed=seed, engine=engine.value, progress=advance)
    table = Table(title=f"teacherlm demo {summary['run_id']}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, secs in summary["seconds"].items():
        table.add_row(stage, f"{secs:.1f}")
    console.print(table)
    for name, acc in summary["accuracy"].items():
        console.print(f"zero-shot accuracy of {name}: [bold]{acc:.3f}[/]")
    console.print(f"records in/out/quarantined: {summary['records']}")
    console.print(f"report: {summary['report']}")
    console.print(
        f"MLflow: {default_tracking_uri()} (run {summary['mlflow_run_id']}); browse with `mlflow ui --backend-store-uri {default_tracking_uri()}`"
    )


def register(app: typer.Typer) -> None:
    from .augment import app as augment_app
    from .data import app as data_app

    app.command("tiny-model")(tiny_model)
    app.command("eval")(eval_cmd)
    app.command("demo")(demo)
    app.add_typer(data_app, name="data")
    app.add_typer(augment_app, name="augment")
