"""Top-level subcommands: ``tiny-model``, ``evaluate``, ``compare``, ``demo``; sub-apps are registered in :func:`register`."""

from __future__ import annotations

from pathlib import Path

import typer

from ..demo import QUICK, TINY, DemoConfig
from ..stages.params import P
from .options import EngineName
from .progress import console, progress_bar

__all__ = ["register"]


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


def evaluate(
    model: str = typer.Option(
        ..., help="Model: a local path, a hub id, or a named local model (`teacherlm models list`)."
    ),
    data: str = typer.Option(
        ...,
        "--data",
        "-i",
        help="Multiple-choice data: a JSONL/Parquet file, or a dataset directory (its --split file).",
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="Where to write the report JSON (local path or s3:// URI)."
    ),
    engine: EngineName = typer.Option(
        EngineName.auto, help="Inference engine: auto (vLLM where it can run the model, else hf), vllm or hf."
    ),
    eval_batch_size: int = typer.Option(
        32,
        "--eval-batch-size",
        "--batch-size",
        help="Sequences per forward pass (hf) or cap on running sequences (vllm).",
    ),
    split: str = typer.Option("test", help="Which split of a dataset directory."),
    name: str = typer.Option("", help="The model's name in the report (default: --model)."),
    revision: str = typer.Option(None, help="Hub revision of the model."),
) -> None:
    """Zero-shot rank classification: score each answer letter by log-likelihood, pick the best.

    Writes {"model", "tasks": {name: {"accuracy", "n"}}, "overall", "samples": [...]} to OUTPUT and
    logs the accuracies to MLflow (MLFLOW_TRACKING_URI or a local store). Matches
    lm-evaluation-harness's HF backend on the same model and data.
    """
    from ..stages.evaluate import evaluate as evaluate_stage

    report = evaluate_stage(
        model,
        data,
        output,
        name=name,
        split=split,
        engine=engine.value,
        eval_batch_size=eval_batch_size,
        revision=revision,
        progress=progress_bar,
    )
    _print_report(report)
    console.print(f"report written to {output}")


def compare(
    reports: list[Path] = typer.Argument(
        ..., help="Eval report JSON files, one per model (their names label them)."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Directory for report.md/.html, plots, summary.json."
    ),
    title: str = typer.Option("teacherlm: plain vs augmented students", help="Report title."),
    augmented: str = typer.Option(
        "",
        "--augmented",
        help="The augmented dataset (merge output dir or URI): the report then shows its summary.",
    ),
    price_per_accelerator_hour: float = typer.Option(
        P.price_per_accelerator_hour,
        "--price-per-accelerator-hour",
        min=0,
        help="Price of one accelerator-hour, for each model's cost per 1,000 samples (from the reports' cost).",
    ),
) -> None:
    """Compare models' eval reports: accuracy per task and the gain of each over the plain student."""
    from ..stages.compare import compare as compare_stage

    summary = compare_stage(
        [str(r) for r in reports],
        str(output),
        title=title,
        augmented=augmented,
        price_per_accelerator_hour=price_per_accelerator_hour,
    )
    for key, value in summary["metrics"].items():
        console.print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    console.print(f"report: {output / 'report.md'}")


def _print_report(report) -> None:
    from rich.table import Table

    table = Table(title=f"rank classification: {report.model}")
    for col in ("task", "accuracy", "n"):
        table.add_column(col, justify="right" if col != "task" else "left")
    for name, acc in report.tasks.items():
        table.add_row(name, f"{acc.accuracy:.3f}", str(acc.n))
    table.add_row("[bold]overall", f"[bold]{report.overall.accuracy:.3f}", f"[bold]{report.overall.n}")
    console.print(table)


_DEMO = DemoConfig()  # the demo's defaults, one place


def _dflt(name: str) -> str:
    """A demo option's default in its help: the DemoConfig's, and the quick check's with --teacher tiny."""
    return f" Default {getattr(_DEMO, name)}; with --teacher tiny {QUICK[name]}."


def demo(
    workdir: Path = typer.Option(
        Path("teacherlm-work"),
        envvar="TEACHERLM_WORKDIR",
        help="Local artifact dir; each run writes under WORKDIR/<run-id>/, MLflow under WORKDIR/mlflow.db.",
    ),
    teacher: str = typer.Option(
        _DEMO.teacher,
        help="The teacher's base model: a named model (teacherlm models list), a local path, or 'tiny' "
        "(random init: fast, but its explanations are word salad).",
    ),
    per_task: int = typer.Option(
        None, help=f"Built-in samples per task family (split 70/15/15).{_dflt('per_task')}"
    ),
    test_per_task: int = typer.Option(
        None, help=f"Held-out test items per task family (the students' comparison).{_dflt('test_per_task')}"
    ),
    tasks: str = typer.Option(
        None,
        help=f"Built-in task families, comma-separated (the knowledge families and the control).{_dflt('tasks')}",
    ),
    seed: int = typer.Option(_DEMO.seed, help="Seed for data, model weights and generation."),
    engine: EngineName = typer.Option(EngineName.hf, help="Engine for STaR, augmentation and evaluation."),
    teacher_steps: int = typer.Option(
        None, help=f"Optimizer steps of teacher stage 1 (multi-task).{_dflt('teacher_steps')}"
    ),
    student_steps: int = typer.Option(None, help=f"Optimizer steps of each student.{_dflt('student_steps')}"),
    max_new_tokens: int = typer.Option(
        None, help=f"Token budget of each explanation and STaR rationale.{_dflt('max_new_tokens')}"
    ),
    num_shards: int = typer.Option(_DEMO.num_shards, help="Augmentation shards (the pipeline's fan-out)."),
    ablation: bool = typer.Option(False, help="Also train one student per explanation field."),
    deepspeed: str = typer.Option("none", help="zero2, zero3 or none for the training stages."),
    nproc_per_node: int = typer.Option(
        1, "--nproc-per-node", help="Training ranks (gloo on CPU); 2 with --deepspeed zero2 shows ZeRO."
    ),
) -> None:
    """Run the end_to_end pipeline locally (KFP local runner) on the built-in data: teacher data, STaR,
    teacher stages on a real small LM (SmolLM2-135M-Instruct, shipped in a wheel: no downloads),
    augmentation shards, then three students (tiny, from scratch, the same questions at every
    step): plain, teacher-augmented and gold-augmented, scored on about 240 held-out items of the
    knowledge families (facts only explanations state) and a negative control, per family with
    95% intervals and paired tests. The first run also converts the model (about 1 min);
    --teacher tiny for a quick check."""
    import os

    from rich.table import Table

    from ..demo import DemoConfig, run_demo
    from ..tracking import default_tracking_uri

    os.environ["TEACHERLM_WORKDIR"] = str(workdir.resolve())
    given = {
        "tasks": tasks,
        "per_task": per_task,
        "test_per_task": test_per_task,
        "teacher_steps": teacher_steps,
        "student_steps": student_steps,
        "max_new_tokens": max_new_tokens,
    }
    preset = QUICK if teacher == TINY else {k: getattr(_DEMO, k) for k in QUICK}
    cfg = DemoConfig(
        teacher=teacher,
        seed=seed,
        engine=engine.value,
        num_shards=num_shards,
        ablation=ablation,
        deepspeed=deepspeed,
        nproc_per_node=nproc_per_node,
        **{k: preset[k] if v is None else v for k, v in given.items()},
    )
    console.rule("[bold]teacherlm demo: the end_to_end pipeline on the KFP local runner")
    summary = run_demo(workdir, cfg)
    tasks = Table(title="pipeline tasks", title_justify="left")
    for col in ("task", "seconds", "status"):
        tasks.add_column(col, justify="right" if col == "seconds" else "left")
    for t in summary["pipeline_tasks"]:
        tasks.add_row(t["task"], "-" if t["seconds"] is None else f"{t['seconds']:.1f}", t["status"])
    console.print(tasks)
    explained = summary["explanations"]
    samples = Table(
        title="the teacher's explanations (one sample per task)", title_justify="left", show_lines=True
    )
    for col in ("task", "question (gold)", "fundamentals", "chain of thought", "common mistakes"):
        samples.add_column(col, overflow="fold")
    for task, t in explained["tasks"].items():
        for x in t["samples"]:
            samples.add_row(
                f"{task}\nCoT reaches gold: {t['cot_reaches_gold']}/{t['records']}",
                f"{x['question']} ({x['answer']})",
                *(str(x.get(f) or "") for f in ("fundamentals", "chain_of_thought")),
                str(x.get("common_mistakes") or ""),
            )
    console.print(samples)
    a = summary["augmented"]
    reasons = "; ".join(f"{q['count']} x {q['reason']}" for q in explained["quarantine"]) or "none"
    console.print(
        f"augmented records: {a['output']} of {a['input']} ({a['quarantined']} quarantined: {reasons})"
    )
    models = Table(
        title=f"zero-shot accuracy ({summary['test_items']} held-out test items)", title_justify="left"
    )
    for col in ("model", "accuracy", "95% CI", "difference to plain (95% CI), McNemar p"):
        models.add_column(col, justify="left" if col == "model" else "right")
    for name, acc in summary["accuracy"].items():
        lo, hi = summary["intervals"].get(name, (None, None))
        pair = summary["paired"].get(name)
        models.add_row(
            name,
            f"{acc:.3f}",
            "" if lo is None else f"{lo:.3f}-{hi:.3f}",
            ""
            if not pair
            else f"{pair['difference']:+.3f} ({pair['interval'][0]:+.3f} to {pair['interval'][1]:+.3f}), "
            f"p={pair['p_value']:.3f}",
        )
    console.print(models)
    for pair in summary["paired"].values():
        console.print(f"{pair['verdict']}.")
    families = Table(
        title="per family: accuracy [95% CI], difference to plain on the same items (McNemar p)",
        title_justify="left",
    )
    names = [n for n in ("plain", "augmented", "gold") if n in summary["accuracy"]]
    for col in ("family", *names):
        families.add_column(col, justify="left" if col == "family" else "right")
    for task, accs in summary["tasks"].items():
        cells = []
        for name in names:
            lo, hi = summary["task_intervals"][task].get(name, (0.0, 0.0))
            pair = summary["task_paired"].get(task, {}).get(name)
            extra = "" if not pair else f"\n{pair['difference']:+.3f} (p={pair['p_value']:.2g})"
            cells.append(f"{accs.get(name, float('nan')):.3f} [{lo:.2f}, {hi:.2f}]{extra}")
        families.add_row(task, *cells)
    console.print(families)
    console.print(
        f"report: {summary['report']} (+ {', '.join(Path(p).name for p in summary['plots'])})", soft_wrap=True
    )
    uri, parent = default_tracking_uri(), summary["mlflow_run_id"]
    experiment = ""
    if parent:
        import mlflow

        experiment = mlflow.MlflowClient(uri).get_run(parent).info.experiment_id
    runs = "teacherlm runs" if workdir == Path("teacherlm-work") else f"teacherlm runs --tracking-uri {uri}"
    console.print(
        f"took {summary['seconds']['total']:.0f} s; MLflow: {uri} (parent run {parent}); browse with "
        f"`mlflow ui --backend-store-uri {uri}` and open "
        f"http://127.0.0.1:5000/#/experiments/{experiment or '0'}/runs?workflowType=machine_learning "
        f"(MLflow 3's UI starts in its GenAI view); `{runs}` lists the runs",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    from .augment import app as augment_app
    from .data import app as data_app
    from .models import app as models_app
    from .pipeline import app as pipeline_app
    from .train import app as train_app

    app.command("tiny-model")(tiny_model)
    app.command("evaluate")(evaluate)
    app.command("eval", hidden=True)(evaluate)  # the earlier name
    app.command("compare")(compare)
    app.command("demo")(demo)
    app.command("runs")(runs)
    app.add_typer(data_app, name="data")
    app.add_typer(models_app, name="models")
    app.add_typer(train_app, name="train")
    app.add_typer(augment_app, name="augment")
    app.add_typer(pipeline_app, name="pipeline")


def runs(
    limit: int = typer.Option(10, "--limit", "-n", min=1, help="How many pipeline runs, newest first."),
    tracking_uri: str = typer.Option(
        "", "--tracking-uri", help="MLflow store; default MLFLOW_TRACKING_URI, else WORKDIR/mlflow.db."
    ),
) -> None:
    """Recent pipeline runs from the MLflow store: each stage's status, key results, datasets and registered model version."""
    from rich.console import Console
    from rich.table import Table

    from ..errors import TeacherLMError
    from ..runs import recent_runs

    console = Console()  # the table is the command's output: stdout

    from ..tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_file():
        raise TeacherLMError(
            f"no MLflow store at {uri[len('sqlite:///') :]} (run `teacherlm demo`, or pass --tracking-uri)"
        )
    try:
        found = recent_runs(limit, tracking_uri=uri)
    except Exception as exc:
        raise TeacherLMError(
            f"cannot read the MLflow store {uri}: {type(exc).__name__}: {str(exc)[:300]}"
        ) from None
    if not found:
        console.print("no pipeline runs in this MLflow store yet (run `teacherlm demo`)")
        return
    table = Table(
        "pipeline run", "stage", "status", "result", "datasets", "registered model", title="teacherlm runs"
    )
    for r in found:
        table.add_row(
            f"[bold]{r['name']}[/]",
            f"started {r['started']} UTC",
            r["status"],
            "",
            "",
            "",
            end_section=not r["stages"],
        )
        for i, s in enumerate(r["stages"]):
            model = " ".join(
                filter(None, [s["registered_model"], s["champion"] and f"(champion: {s['champion']})"])
            )
            table.add_row(
                "",
                s["name"],
                s["status"],
                s["result"],
                ", ".join(s["datasets"]),
                model,
                end_section=i == len(r["stages"]) - 1,
            )
    console.print(table)
