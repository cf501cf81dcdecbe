"""``teacherlm data``: build the built-in annotated suite, import a real dataset, run STaR.

    teacherlm data build --output runs/r1/data --per-task 200 --seed 0
    teacherlm data import --source tasksource/ecqa --mapping ecqa --output runs/r1/ecqa
    teacherlm data star --model runs/r1/models/teacher --data runs/r1/data --output runs/r1/star --rounds 3
    teacherlm data tasks

``build`` and ``import`` write split files, ``dedup.jsonl`` and ``manifest.json`` (counts, sha256,
schema version, provenance); ``star`` writes the kept teacher data, its quarantine and a manifest
with per-round counts (see :mod:`teacherlm_core.star`). User errors raise :class:`~teacherlm_core.errors.DataError` or
:class:`~teacherlm_core.errors.ConfigError`, which the main CLI prints as one line (exit 2).
The library is imported inside the commands so ``teacherlm --help`` stays instant.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from ..stages.params import P
from .options import EngineName

__all__ = ["app"]

app = typer.Typer(
    help=(
        "Build teacher data: the built-in annotated task suite (gold fundamentals, chain of thought and "
        "common mistakes) or an import of a real dataset, deduplicated, with a manifest; expand it "
        "with STaR rounds."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_FORMATS = {"jsonl": ("jsonl",), "parquet": ("parquet",), "both": ("jsonl", "parquet")}
_SPLIT_SOURCE = re.compile(r"^(train|validation|test)=(.+)$")

FORMAT_HELP = "Output format: jsonl, parquet or both."
OUTPUT_HELP = "Output directory (created); files of an earlier build there are replaced."
NEAR_HELP = "MinHash Jaccard similarity at which two records are near-duplicates (1.0 turns it off)."


def _formats(value: str) -> tuple[str, ...]:
    if value not in _FORMATS:
        raise typer.BadParameter(f"must be one of {', '.join(_FORMATS)}", param_hint="--format")
    return _FORMATS[value]


def _progress():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), transient=True)


def _summary(manifest: dict[str, Any], output: Path, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    splits = list(manifest["counts"]["splits"])
    table = Table(title=title, title_justify="left")
    table.add_column("task")
    for split in splits:
        table.add_column(split, justify="right")
    for task, by_split in manifest["counts"]["tasks"].items():
        table.add_row(task, *(str(by_split.get(s, 0)) for s in splits))
    table.add_row("[bold]total[/bold]", *(f"[bold]{manifest['counts']['splits'][s]}[/bold]" for s in splits))
    console = Console()
    console.print(table)
    rec, dedup = manifest["records"], manifest["dedup"]
    removed = dedup["removed"]
    console.print(
        f"in {rec['in']} = out {rec['out']} + quarantined {rec['quarantined']} + duplicates {rec['duplicates']} "
        f"(exact {removed['exact']}, normalized {removed['normalized']}, near {removed['near']}; "
        f"{dedup['flagged_near']} near pairs inside a split flagged, kept)"
    )
    if manifest.get("shortfall"):
        console.print(f"[yellow]fewer distinct items than requested:[/yellow] {manifest['shortfall']}")
    if manifest.get("quarantine"):
        console.print(f"[yellow]quarantined rows:[/yellow] {output / manifest['quarantine']['path']}")
    console.print(f"manifest: {output / 'manifest.json'}")


@app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help=OUTPUT_HELP)],
    tasks: Annotated[
        str | None,
        typer.Option(
            "--tasks",
            metavar="A,B",
            help="Comma-separated task families (default: the eight paper-style families; list every family with 'teacherlm data tasks').",
        ),
    ] = None,
    per_task: Annotated[
        int,
        typer.Option(
            "--per-task", min=3, help="Items per family, split 70/15/15 into train/validation/test."
        ),
    ] = P.per_task,
    test_per_task: Annotated[
        int,
        typer.Option(
            "--test-per-task",
            min=0,
            help="Test items per family instead of 15% of --per-task (0: the 15%); train and validation "
            "stay the same, so a larger held-out set costs no training data.",
        ),
    ] = P.test_per_task,
    seed: Annotated[
        int,
        typer.Option(
            "--data-seed", "--seed", help="Random seed: the same seed and options give byte-identical files."
        ),
    ] = 0,
    fmt: Annotated[str, typer.Option("--format", metavar="jsonl|parquet|both", help=FORMAT_HELP)] = "jsonl",
    near_threshold: Annotated[
        float, typer.Option("--near-threshold", min=0.0, max=1.0, help=NEAR_HELP)
    ] = 0.8,
) -> None:
    """Generate the built-in annotated suite (held-out templates/entities per split) with a manifest."""
    from ..data.tasks import get_families
    from ..stages.data_build import data_build

    names = [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None
    families = get_families(names)
    with _progress() as progress:
        bar = progress.add_task("generating", total=len(families) + 1)

        def step(name: str, advance: int) -> None:
            progress.update(bar, advance=advance, description=name)

        manifest = data_build(
            output,
            tasks=",".join(f.name for f in families),
            per_task=per_task,
            test_per_task=test_per_task,
            data_seed=seed,
            formats=_formats(fmt),
            near_threshold=near_threshold,
            progress=step,
        )
    _summary(manifest, output, f"built-in suite, seed {seed}")


@app.command("import")
def import_(
    source: Annotated[
        list[str],
        typer.Option(
            "--source",
            "-s",
            metavar="PATH_OR_DATASET",
            help=(
                "A local .jsonl/.json/.csv/.tsv/.parquet file, a datasets directory (save_to_disk) or a Hugging "
                "Face Hub id; or SPLIT=PATH (repeatable) for a dataset shipped as one file per split."
            ),
        ),
    ],
    mapping: Annotated[
        str,
        typer.Option(
            "--mapping",
            "-m",
            metavar="FILE_OR_NAME",
            help="Mapping YAML file, or a built-in mapping: ecqa, strategyqa, creak, mmlu.",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help=OUTPUT_HELP)],
    split: Annotated[
        str, typer.Option(help="Output split of a single-file source: train, validation or test.")
    ] = "train",
    fmt: Annotated[str, typer.Option("--format", metavar="jsonl|parquet|both", help=FORMAT_HELP)] = "jsonl",
    near_threshold: Annotated[
        float, typer.Option("--near-threshold", min=0.0, max=1.0, help=NEAR_HELP)
    ] = 0.8,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad row instead of quarantining it.")
    ] = False,
) -> None:
    """Import a real dataset through a column mapping, quarantining bad rows, with a manifest."""
    from ..data.importer import STEP_EXACT, STEP_NEAR, import_dataset
    from ..errors import ConfigError

    matches = [_SPLIT_SOURCE.match(s) for s in source]
    if len(source) == 1 and not matches[0]:
        spec: Any = source[0]
    elif all(matches):
        spec = {m.group(1): m.group(2) for m in matches if m}
        if len(spec) != len(source):
            raise ConfigError("--source", ["each split may be given only once"])
    else:
        raise ConfigError(
            "--source", ["give one source, or one SPLIT=PATH per split (train, validation, test)"]
        )
    with _progress() as progress:
        bars = {"reading": progress.add_task("reading", total=None)}
        done = {"reading": 0}

        def step(label: str, advance: int) -> None:
            # one bar a step: reading (described by the part being read), then each dedup pass;
            # a step's start completes the bars before it (their count is then their total)
            name = label if label in (STEP_EXACT, STEP_NEAR) else "reading"
            if name not in bars:
                for other, bar in bars.items():
                    progress.update(bar, total=done[other])
                bars[name], done[name] = progress.add_task(name, total=None), 0
            done[name] += advance
            progress.update(bars[name], advance=advance)
            if name == "reading":
                progress.update(bars[name], description=f"reading {label}")

        manifest = import_dataset(
            spec,
            mapping,
            output,
            split=split,
            formats=_formats(fmt),
            on_error="raise" if strict else "quarantine",
            near_threshold=near_threshold,
            progress=step,
        )
    _summary(manifest, output, f"import of {manifest['mapping']['source']}")


@app.command("star")
def star(
    model: Annotated[
        str,
        typer.Option(
            "--teacher-base-model",
            "--model",
            metavar="PATH_OR_ID",
            help="The teacher: a local model dir or a hub id.",
        ),
    ],
    input_: Annotated[
        Path,
        typer.Option(
            "--data",
            "--input",
            "-i",
            metavar="DIR_OR_FILE",
            help=(
                "A data dir as 'teacherlm data build/import' write it (its SPLIT.jsonl, else SPLIT.parquet "
                "is read), or one JSONL/Parquet file."
            ),
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Output dir: train.jsonl (kept), quarantine/, manifest.json; an earlier run's files are replaced.",
        ),
    ],
    rounds: Annotated[
        int,
        typer.Option(
            "--star-rounds",
            "--rounds",
            min=1,
            help="Most STaR rounds; each retries the samples no round has kept yet.",
        ),
    ],
    engine: Annotated[
        EngineName,
        typer.Option(help="Inference engine: auto (vLLM where it can run the model, else hf), vllm or hf."),
    ] = EngineName.auto,
    max_new_tokens: Annotated[
        int,
        typer.Option(
            "--star-max-new-tokens", "--max-new-tokens", min=1, help="Token budget of each rationale."
        ),
    ] = 128,
    seed: Annotated[
        int, typer.Option(help="Base seed; each request's seed derives from (seed, sample id, round, kind).")
    ] = 0,
    temperature: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Sampling temperature (top-p 0.95); 0 is greedy, so retries repeat unless the teacher is retrained.",
        ),
    ] = 0.7,
    split: Annotated[str, typer.Option(help="Which split file of a data dir to read.")] = "train",
    revision: Annotated[str | None, typer.Option(help="Hub revision of the model.")] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Sequences per forward pass (hf) or cap on running sequences (vllm).")
    ] = 32,
    train_between_rounds: Annotated[
        Path | None,
        typer.Option(
            "--train-between-rounds",
            metavar="CONFIG",
            help=(
                "Retrain the teacher on the kept set before each next round: 'teacherlm train teacher' with "
                "this teacher config (file or shipped name), its first stage's data set to the kept set. "
                "Fails at once if that command is not installed."
            ),
        ),
    ] = None,
) -> None:
    """STaR: the teacher explains each question without the answer; a rationale reaching the gold answer is
    kept, a wrong one is rationalised with the answer as a hint; failures are retried next round."""
    from ..engines import get_engine
    from ..stages.data_star import data_star
    from ..star import subprocess_train_fn
    from .progress import console, progress_bar

    train_fn = subprocess_train_fn(train_between_rounds) if train_between_rounds else None

    def load(path: str):
        console.print(f"loading teacher {path} ({engine.value})")
        return get_engine(engine.value, path, revision=revision, seed=seed, batch_size=batch_size)

    manifest = data_star(
        model,
        input_,
        output,
        star_rounds=rounds,
        star_max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        engine=engine.value,
        revision=revision,
        split=split,
        load_engine=load,
        train_fn=train_fn,
        train_config=str(train_between_rounds) if train_between_rounds else None,
        progress=progress_bar,
    )
    _star_summary(manifest, output)


def _star_summary(manifest: dict[str, Any], output: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    teachers = {t["round"]: t["model"] for t in manifest["provenance"]["teachers"]}
    table = Table(title=f"STaR, seed {manifest['provenance']['seed']}", title_justify="left")
    for col in ("round", "attempted", "correct", "rationalized", "failed"):
        table.add_column(col, justify="right")
    table.add_column("teacher")
    for r in manifest["rounds"]:
        attempted = r["correct"] + r["rationalized"] + r["failed"]
        cells = (r["round"], attempted, r["correct"], r["rationalized"], r["failed"])
        table.add_row(*map(str, cells), teachers.get(r["round"], ""))
    console = Console()
    console.print(table)
    c = manifest["counts"]
    console.print(
        f"in {c['in']} = kept {c['kept']} (generated {c['generated']}, rationalized {c['rationalized']}, "
        f"conclusion appended to {c['conclusion_appended']}) + failed {c['failed']} + invalid {c['invalid']}"
    )
    for name in manifest["files"]:
        if name.startswith("quarantine/"):
            console.print(f"[yellow]quarantined:[/yellow] {output / name}")
    console.print(f"kept: {output / 'train.jsonl'}\nmanifest: {output / 'manifest.json'}")


@app.command("tasks")
def list_tasks() -> None:
    """List the built-in task families."""
    from rich.console import Console
    from rich.table import Table

    from ..data.tasks import FAMILIES

    table = Table("name", "held out by", "description")
    for family in FAMILIES.values():
        table.add_row(family.name, family.holdout, family.description)
    Console().print(table)
