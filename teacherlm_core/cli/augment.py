"""``teacherlm augment``: sharded, resumable teacher generation; ``teacherlm augment merge``."""

from __future__ import annotations

from enum import Enum

import typer

from ..stages.params import P
from .options import EngineName
from .progress import console

__all__ = ["app"]

app = typer.Typer(
    help="Write fundamentals, chain of thought and common mistakes for every sample of a dataset.",
    invoke_without_command=True,
    no_args_is_help=True,
)


DRY_RUN_TEACHER = "none"  # the teacher a dry run names when none is given (it never loads one)


class AugmentEngine(str, Enum):
    auto = "auto"
    vllm = "vllm"
    hf = "hf"
    openai = "openai"
    batch = "batch"


@app.callback()
def run(
    ctx: typer.Context,
    teacher: str = typer.Option(
        None,
        "--teacher",
        "--model",
        help="Teacher model: local path or hub id (the served name for --engine openai); not needed with --dry-run.",
    ),
    input: str = typer.Option(
        None,
        "--data",
        "--input",
        "-i",
        help="Dataset to augment: JSONL or Parquet file (local or s3:// URI), or a dataset directory (its train split).",
    ),
    output: str = typer.Option(
        None, "--output", "-o", help="Output root: local dir or s3:// prefix (resumes what is there)."
    ),
    num_shards: int = typer.Option(1, help="Split the dataset into this many shards."),
    shard_index: int = typer.Option(
        None, help="Do this shard only (a pipeline's fan-out task); default: all shards, then merge."
    ),
    engine: AugmentEngine = typer.Option(
        AugmentEngine.auto,
        help="auto (default: vLLM where it can run the teacher here, else HF, said once; decided when the run "
        "is planned and recorded in plan.json, so a resumed run keeps that engine), vllm, hf, openai (an "
        "OpenAI-compatible server), or batch (--export-batch, --batch-results).",
    ),
    fields: str = typer.Option(P.fields, help="Comma-separated fields to write."),
    max_new_tokens: int = typer.Option(256, help="Token limit per explanation."),
    temperature: float = typer.Option(0.7, help="Sampling temperature (0: greedy; no retries then)."),
    top_p: float = typer.Option(0.95, help="Nucleus sampling."),
    seed: int = typer.Option(
        0, help="Base seed; each request's seed derives from (seed, sample id, field, attempt)."
    ),
    tensor_parallel_size: int = typer.Option(1, help="GPUs per vLLM engine, for big teachers."),
    max_retries: int = typer.Option(2, help="Fresh-seed retries of a bad generation before quarantine."),
    part_size: int = typer.Option(512, help="Samples per part: the unit written atomically and resumed."),
    revision: str = typer.Option(None, help="Hub revision of the teacher."),
    base_url: str = typer.Option(
        None, envvar="OPENAI_BASE_URL", help="--engine openai: the server, e.g. http://vllm:8000/v1."
    ),
    api_key_env: str = typer.Option(
        "OPENAI_API_KEY", help="--engine openai: environment variable holding the API key."
    ),
    max_concurrency: int = typer.Option(32, help="--engine openai: requests in flight."),
    export_batch: str = typer.Option(
        None,
        help="--engine batch: write the shard's requests still to generate as an OpenAI batch file, and stop.",
    ),
    batch_results: str = typer.Option(
        None,
        help="--engine batch: the batch's results file (JSONL, local or s3://) to import as the shard's output.",
    ),
    stall_timeout: float = typer.Option(
        1800, help="Seconds the engine may return nothing before the run ends (exit 75) to be resumed."
    ),
    track: bool = typer.Option(True, help="Log per-shard metrics to MLflow."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Write deterministic placeholder explanations without loading a model: checks storage, sharding, "
        "fan-out and merge at full scale before paying for GPUs. Marked in the plan and manifest; never mixed "
        "with a real run's output (use another --output for the real run).",
    ),
) -> None:
    """Augment a dataset (all shards then merge, or one shard with --shard-index).

    Re-running the same command resumes: finished shards and parts are skipped, so a killed or
    retried job never loses or duplicates a sample.
    """
    if ctx.invoked_subcommand is not None:
        return
    if dry_run and not teacher:  # placeholder text: no teacher is loaded, none need be named
        teacher = DRY_RUN_TEACHER
    missing = [
        name for name, value in (("--teacher", teacher), ("--data", input), ("--output", output)) if not value
    ]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)}")
    from pydantic import ValidationError

    from ..augment import AugmentConfig, augment, resolve_engine
    from ..errors import ConfigError
    from ..tracking import Tracker

    if "://" not in input:  # a dataset directory (as `data build` / `data import` write it): its train split
        from ..data.splits import split_file

        input = str(split_file(input, "train"))
    if shard_index is not None and not 0 <= shard_index < max(num_shards, 1):  # before anything is written
        raise ConfigError("--shard-index", [f"must be in [0, {num_shards}), got {shard_index}"])
    try:
        cfg = AugmentConfig(
            teacher=teacher,
            input=input,
            output=output,
            num_shards=num_shards,
            engine=engine.value,
            fields=fields,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            max_retries=max_retries,
            part_size=part_size,
            revision=revision,
            base_url=base_url,
            api_key_env=api_key_env,
            max_concurrency=max_concurrency,
            dry_run=dry_run,
            stall_timeout_s=stall_timeout,
            batch_results=batch_results,
        )
    except ValidationError as exc:  # every problem at once, named by its flag
        problems = [f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("augment options", problems) from None
    if export_batch:  # requests out, nothing generated: the batch engine runs elsewhere
        from ..augment.batch import export_batch as write_requests

        if cfg.engine != "batch" or shard_index is None:
            raise ConfigError("--export-batch", ["needs --engine batch and --shard-index"])
        n = write_requests(cfg, shard_index, export_batch)
        typer.echo(f"{n} requests of {shard_name_or_all(cfg, shard_index)} written to {export_batch}")
        return
    # "auto" becomes the engine that runs, before the plan records it (a resumed run: the recorded one)
    asked_auto = cfg.engine == "auto" and not cfg.dry_run
    cfg, factory = resolve_engine(cfg)
    if asked_auto:  # which engine runs, in the default output (the plan records it too)
        console.print(f"engine: {cfg.engine} (auto)")
    with Tracker(run_name=f"augment {shard_name_or_all(cfg, shard_index)}", enabled=track) as tracker:
        tracker.log_params({"stage": "augment", **cfg.public(), "shard_index": shard_index})
        from ..augment.plan import ensure_plan
        from .progress import progress_bar

        with progress_bar("plan: split the input by shard", None) as advance:
            seen = [0]

            def planned(n: int) -> None:
                advance(n - seen[0])
                seen[0] = n

            ensure_plan(cfg, progress=planned)  # one streaming pass; a no-op when planned already
        with _bar(cfg) as on_part:
            result = augment(cfg, shard_index, engine=factory, on_part=on_part, tracker=tracker)
    _summary(result, shard_index)


def shard_name_or_all(cfg, shard_index) -> str:
    from ..augment import shard_name

    return "all shards" if shard_index is None else shard_name(shard_index, cfg.num_shards)


def _bar(cfg):
    """A progress bar over samples: samples/s, tokens/s, quarantined."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar():
        columns = (
            TextColumn("[bold]augment"),
            BarColumn(),
            TextColumn("{task.completed} samples"),
            TextColumn("[cyan]{task.fields[rate]}"),
            TimeElapsedColumn(),
        )
        totals = {"tokens": 0, "quarantined": 0}
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("augment", total=None, rate="")

            def on_part(stats) -> None:
                totals["tokens"] += stats.tokens
                totals["quarantined"] += stats.quarantined
                progress.advance(task, stats.samples + stats.quarantined)
                elapsed = progress.tasks[task].elapsed or 1e-9
                progress.update(
                    task,
                    rate=f"{progress.tasks[task].completed / elapsed:,.1f} samples/s  {totals['tokens'] / elapsed:,.0f} tok/s  "
                    f"{totals['quarantined']} quarantined" + ("  (resumed)" if stats.skipped else ""),
                )

            yield on_part

    return bar()


def _summary(result: dict, shard_index: int | None) -> None:
    if shard_index is not None:
        console.print(
            f"shard {shard_index}: in {result['in']}, out {result['out']}, quarantined {result['quarantined']}"
        )
        return
    c = result["counts"]
    rate = result["chain_of_thought_consistency"]["rate"]
    dry = " [yellow](dry run: placeholder text, not training data)[/]" if result.get("dry_run") else ""
    console.print(
        f"[green]augmented[/] {c['output']} of {c['input']} samples ({c['quarantined']} quarantined){dry}; "
        f"chain of thought consistent with the gold answer: {'n/a' if rate is None else f'{rate:.1%}'}"
    )


@app.command("plan")
def plan_cmd(
    data: str = typer.Option(
        ...,
        "--data",
        "--input",
        "-i",
        help="The dataset to augment: a directory with train.jsonl/.parquet, or the file.",
    ),
    num_shards: int = typer.Option(P.num_shards, help="How many shards to split it into."),
    split: str | None = typer.Option(
        None,
        help="Write the split here (split.json + one input file per shard, for `augment shard --split`); "
        "default: only check the dataset.",
    ),
    work_root: str = typer.Option(
        P.work_root,
        help="Shared storage (s3:// prefix): the shard files go there, SPLIT gets only split.json.",
    ),
) -> None:
    """Split the dataset to augment by shard (one streaming pass); print the shard indices a pipeline fans out over.

    Each `augment shard --split SPLIT` then reads only its own shard's records. The run's plan
    (identity and column types, plan.json) is fixed by the first shard that runs."""
    from ..stages.augment_plan import augment_plan
    from .progress import progress_bar

    shards = augment_plan(data, num_shards)  # the dataset checked before anything is shown or written
    if split is not None:
        with progress_bar("plan: split the input by shard", None) as advance:
            seen = [0]

            def planned(n: int) -> None:
                advance(n - seen[0])
                seen[0] = n

            shards = augment_plan(data, num_shards, split=split, work_root=work_root, progress=planned)
    # On stdout, for a shell loop: for i in $(teacherlm augment plan ...)
    print(" ".join(map(str, shards)))


@app.command("shard")
def shard_cmd(
    teacher: str = typer.Option(
        ..., "--teacher", "--model", help="The trained teacher: local path or hub id."
    ),
    split: str = typer.Option(
        ..., help="The split `augment plan --split` wrote; the shard reads only its own file."
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="This shard's output directory: plan.json + shards/<shard>/."
    ),
    shard_index: int = typer.Option(..., help="Which shard, 0 <= shard_index < num_shards."),
    num_shards: int | None = typer.Option(
        None, help="Shards in the plan (default: the split's; given, must match)."
    ),
    fields: str = typer.Option(P.fields, help="Comma-separated explanation fields to write."),
    max_new_tokens: int = typer.Option(P.max_new_tokens, help="Token limit per explanation."),
    temperature: float = typer.Option(P.temperature, help="Sampling temperature (0: greedy, no retries)."),
    seed: int = typer.Option(P.seed, help="Base seed; each request's seed derives from it."),
    engine: EngineName = typer.Option(
        EngineName(P.engine),
        help="vllm (the pipeline's default), hf, or auto (vLLM where it can run the teacher here, else HF, "
        "said once; recorded in plan.json, which a resumed shard keeps).",
    ),
    tensor_parallel_size: int = typer.Option(P.tensor_parallel_size, help="GPUs per vLLM engine."),
    work_root: str = typer.Option(P.work_root, help="Shared storage (s3:// prefix) to write to as it goes."),
    dry_run: bool = typer.Option(
        P.dry_run, help="Placeholder explanations, no model loaded (checks storage, fan-out and merge)."
    ),
) -> None:
    """One shard of a pipeline's fan-out, exactly as its 'augment shard' task runs it (the pipeline's
    settings; for --top-p, --part-size, --max-retries or an OpenAI-compatible engine use
    `teacherlm augment --shard-index I`)."""
    from ..stages.augment_shard import augment_shard

    counts = augment_shard(
        teacher,
        split,
        output,
        shard_index=shard_index,
        num_shards=num_shards,
        fields=fields,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        engine=engine.value,
        tensor_parallel_size=tensor_parallel_size,
        work_root=work_root,
        dry_run=dry_run,
    )
    _summary(counts, shard_index)


@app.command("merge")
def merge_cmd(
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        help="The run's output root (local dir or s3:// prefix), or with --shards the directory to merge into.",
    ),
    shards: list[str] = typer.Option(
        [],
        "--shards",
        help="Outputs of separate `augment shard` runs (repeatable); default: the shards under OUTPUT.",
    ),
) -> None:
    """Merge finished shards into data/*.parquet, quarantine/, manifest.json and README.md."""
    from ..stages.augment_merge import augment_merge

    _summary(augment_merge(output, shards), None)


@app.command("utility")
def utility_cmd(
    data: str = typer.Option(
        ..., "--data", "-i", help="An augmented dataset (directory with train.jsonl/.parquet, or the file)."
    ),
    scorer: str = typer.Option(
        ...,
        help="Scoring model (path, named model such as smollm2-135m-instruct, or hub id); "
        "not the teacher, which wrote with the answer in view.",
    ),
    output: str = typer.Option(
        ..., "--output", "-o", help="Output directory: train.jsonl, quarantine/, utility.json, README.md."
    ),
    min_utility: float | None = typer.Option(
        None, help="Keep records whose utility (mean over fields, nats) is at least this."
    ),
    top_share: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Keep this share (0-1] of the records with the highest utility."
    ),
    engine: EngineName = typer.Option(EngineName.hf, help="Engine of the scorer."),
    batch_size: int = typer.Option(32, help="Sequences per forward pass."),
) -> None:
    """Score how much each explanation helps a scorer pick the gold answer, with the answer masked out of
    the explanation (leakage-aware), flag explanations that state the answer, and optionally keep only
    the useful records. Utility = log p(gold | question + masked explanation) - log p(gold | question)."""
    from rich.table import Table

    from ..augment.utility import utility_filter
    from .progress import progress_bar

    with progress_bar("scoring explanations (log-likelihood requests)", None) as advance:
        summary = utility_filter(
            data,
            scorer,
            output,
            engine=engine.value,
            min_utility=min_utility,
            top_share=top_share,
            batch_size=batch_size,
            progress=advance,
        )
    table = Table(title=f"explanation utility (nats), scorer {scorer}", title_justify="left")
    for col in ("field", "scored", "mean", "median", "helped", "leaks"):
        table.add_column(col, justify="left" if col == "field" else "right")
    for field, s in summary["fields"].items():
        cell = lambda v, p=False: "-" if v is None else (f"{v:.0%}" if p else f"{v:+.3f}")  # noqa: E731
        table.add_row(
            field,
            str(s["scored"]),
            cell(s["mean"]),
            cell(s["median"]),
            cell(s["helped"], True),
            cell(s["leaks"], True),
        )
    console.print(table)
    c = summary["counts"]
    console.print(f"{c['in']} records: {c['kept']} kept in {output}/train.jsonl, {c['filtered']} filtered")
