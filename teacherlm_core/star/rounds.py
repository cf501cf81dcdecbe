"""The STaR loop: per round, generate, judge, rationalise the failures, keep, retrain; then the manifest."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..data.manifest import MANIFEST, QUARANTINE, file_entry, sha256_file, write_json
from ..data.splits import split_file
from ..engines import Engine, Generation, GenerationParams, generate_servable, get_engine, request_seed
from ..errors import ConfigError, DataError
from ..records import QuarantineWriter, read_samples, write_jsonl
from ..schema import SCHEMA_VERSION, Rejected, Sample
from .config import FAILED, KEPT, STOP, EngineFactory, ProgressFactory, StarConfig, TrainFn
from .judge import judge, restates_only
from .prompts import GENERATE_TEMPLATE, RATIONALIZE_TEMPLATE, generate_prompt, rationalize_prompt

__all__ = ["PHASES", "run_star"]

PHASES = (("generate", "generated", generate_prompt), ("rationalize", "rationalized", rationalize_prompt))


def _generate(
    engine: Engine,
    prompts: list[str],
    params: list[GenerationParams],
    progress: ProgressFactory | None,
    description: str,
) -> list[Generation]:
    if not prompts:
        return []
    if progress is None:
        return generate_servable(engine, prompts, params)
    with progress(description, len(prompts)) as advance:
        return generate_servable(engine, prompts, params, progress=advance)


def _label(model: str, root: Path) -> str:
    """A model as records name it: relative to the output dir when trained there (stable bytes)."""
    if not (Path(model).is_absolute() or Path(model).exists()):  # a hub id
        return model
    try:
        return Path(model).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return model


@dataclass
class _StarState:
    """What the rounds have found so far, per sample index."""

    kept: dict[int, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    last_reason: dict[int, str] = field(default_factory=dict)
    rounds: list[dict[str, int]] = field(default_factory=list)
    teachers: list[dict[str, Any]] = field(default_factory=list)


def _run_round(
    r: int,
    eng: Engine,
    samples: list[Sample],
    pending: list[int],
    label: str,
    cfg: StarConfig,
    state: _StarState,
    progress: ProgressFactory | None,
) -> list[int]:
    """Round ``r`` over the ``pending`` samples: generate, judge, rationalise the failures; returns
    the samples still without a kept rationale (``state`` gains the kept ones and the attempts)."""
    tally: Counter[str] = Counter()
    reasons: dict[int, list[str]] = defaultdict(list)
    retry = pending
    for kind, source_name, prompt_fn in PHASES:
        params = [
            GenerationParams(
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=request_seed(cfg.seed, samples[i].id, r, kind),
                stop=STOP,
            )
            for i in retry
        ]
        prompts = [prompt_fn(samples[i]) for i in retry]
        gens = _generate(eng, prompts, params, progress, f"round {r}: {kind} ({len(retry)})")
        still = []
        for i, gen in zip(retry, gens, strict=True):
            v = judge(gen, samples[i], hinted=kind == "rationalize", min_words=cfg.min_words)
            if v.kept:
                state.kept[i] = samples[i].to_record() | {
                    "chain_of_thought": v.rationale,
                    "star_round": r,
                    "star_source": source_name,
                    "star_teacher": label,
                    "star_conclusion_appended": v.appended,
                }
                tally[source_name] += 1
                continue
            state.attempts[i].append(
                {
                    "round": r,
                    "kind": kind,
                    "text": gen.text,
                    "finish_reason": gen.finish_reason,
                    "reason": v.reason,
                }
            )
            reasons[i].append(f"{kind}: {v.reason}")
            still.append(i)
        retry = still
    state.last_reason.update({i: "; ".join(reasons[i]) for i in retry})
    state.rounds.append(
        {
            "round": r,
            "correct": tally["generated"],
            "rationalized": tally["rationalized"],
            "failed": len(retry),
        }
    )
    return retry


def _counts(
    samples: list[Sample], state: _StarState, pending: list[int], invalid: int, min_words: int
) -> dict:
    """The manifest's counts: ``in = kept + failed + invalid``, by source and by task."""
    kept = state.kept
    by_source = Counter(rec["star_source"] for rec in kept.values())
    tasks: dict[str, Counter[str]] = defaultdict(Counter)
    for i, s in enumerate(samples):
        tasks[s.task]["in"] += 1
        tasks[s.task]["kept" if i in kept else "failed"] += 1
    counts = {
        "in": len(samples) + invalid,
        "kept": len(kept),
        "failed": len(pending),
        "invalid": invalid,
        "generated": by_source["generated"],
        "rationalized": by_source["rationalized"],
        "conclusion_appended": sum(rec["star_conclusion_appended"] for rec in kept.values()),
        # kept rationales that reach gold with reasoning of their own: min_words besides the answer
        "reasoned": sum(
            not restates_only(rec["chain_of_thought"], samples[i], min_words) for i, rec in kept.items()
        ),
        "tasks": {t: {k: c[k] for k in ("in", "kept", "failed")} for t, c in sorted(tasks.items())},
    }
    if counts["in"] != counts["kept"] + counts["failed"] + counts["invalid"]:  # pragma: no cover
        raise AssertionError(f"STaR counts do not reconcile: {counts}")
    return counts


def _write_outputs(
    out: Path,
    source: Path,
    lines: list[int],
    samples: list[Sample],
    state: _StarState,
    pending: list[int],
    invalid: int,
) -> dict[str, dict[str, Any]]:
    """``train.jsonl`` (kept), ``quarantine/failed.jsonl`` (with every attempt); their file entries."""
    files = {
        KEPT: file_entry(
            out, out / KEPT, write_jsonl(out / KEPT, [state.kept[i] for i in sorted(state.kept)])
        )
    }
    if pending:
        failed = [
            Rejected(
                source=str(source),
                line=lines[i],
                field="chain_of_thought",
                reason=f"no kept rationale after {len(state.rounds)} round(s); last: {state.last_reason[i]}",
                raw=samples[i].to_record() | {"star_attempts": state.attempts[i]},
            )
            for i in pending
        ]
        files[FAILED] = file_entry(out, out / FAILED, write_jsonl(out / FAILED, failed))
    if invalid:
        files[QUARANTINE] = file_entry(out, out / QUARANTINE, invalid)
    return files


def run_star(
    input: str | Path,
    output: str | Path,
    model: str,
    *,
    config: StarConfig | None = None,
    engine: str = "vllm",
    revision: str | None = None,
    split: str = "train",
    load_engine: EngineFactory | None = None,
    train_fn: TrainFn | None = None,
    train_config: str | None = None,
    progress: ProgressFactory | None = None,
) -> dict[str, Any]:
    """Run STaR rounds over ``input`` and write the kept teacher data to ``output``; returns the manifest.

    Args:
        input: a data directory (its ``{split}.jsonl`` or ``.parquet``) or a JSONL/Parquet file.
        output: the output directory (created; our files from an earlier run are replaced).
        model: the teacher, a local path or hub id.
        config: rounds, token budget, seed, sampling (:class:`StarConfig`).
        engine: ``"auto"``, ``"vllm"`` or ``"hf"`` (used by the default ``load_engine``).
        revision: hub revision of ``model``.
        split: which split file of a data directory to read.
        load_engine: ``model path -> Engine``; default ``get_engine(engine, path, ...)``. Tests
            pass fakes here.
        train_fn: ``(kept_dir, round) -> new model path``, called after each round but the last
            while samples remain and something is kept (see :func:`subprocess_train_fn`);
            ``kept_dir`` holds ``train.jsonl``, everything kept so far.
        train_config: the training config, recorded in the provenance.
        progress: ``(description, total) -> context manager yielding advance(n)``.

    Raises:
        ConfigError: ``output`` would overwrite ``input``.
        DataError: no valid record to run STaR on.
    """
    cfg = config or StarConfig()
    out = Path(output)
    source = split_file(input, split)
    if source.resolve() in {(out / KEPT).resolve(), (out / FAILED).resolve()}:
        raise ConfigError("--output", [f"{out} would overwrite the input {source}; choose another directory"])
    for name in (MANIFEST, KEPT, FAILED, QUARANTINE):  # manifest first: no stale "complete" marker
        (out / name).unlink(missing_ok=True)
    if load_engine is None:
        load_engine = lambda path: get_engine(engine, path, revision=revision, seed=cfg.seed)  # noqa: E731

    with QuarantineWriter(out / QUARANTINE) as rejected:
        rows = list(read_samples(source, on_error="quarantine", quarantine=rejected))
    if not rows:
        raise DataError(str(source), None, None, "no valid records to run STaR on")
    out.mkdir(parents=True, exist_ok=True)  # only now: bad input leaves no empty output dir behind
    lines = [line for line, _ in rows]
    samples = [s for _, s in rows]

    state = _StarState()
    pending = list(range(len(samples)))
    current, eng, engine_name = model, None, engine
    for r in range(1, cfg.rounds + 1):
        if not pending:
            break
        if eng is None:
            eng = load_engine(current)
            engine_name = getattr(eng, "name", engine)
        label = _label(current, out) + (f"@{revision}" if revision and current == model else "")
        state.teachers.append({"round": r, "model": label})
        pending = _run_round(r, eng, samples, pending, label, cfg, state, progress)
        if train_fn is not None and pending and r < cfg.rounds and state.kept:
            kept_dir = out / "rounds" / f"round-{r:02d}"
            write_jsonl(kept_dir / KEPT, [state.kept[i] for i in sorted(state.kept)])
            current, eng = train_fn(kept_dir, r), None  # drop the old engine before loading the new one

    files = _write_outputs(out, source, lines, samples, state, pending, rejected.count)
    input_manifest = source.parent / MANIFEST
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "star",
        "rounds": state.rounds,
        "counts": _counts(samples, state, pending, rejected.count, cfg.min_words),
        "files": files,
        "config": asdict(cfg),
        "provenance": {
            "teacher": {"model": model, "revision": revision},
            "teachers": state.teachers,
            "engine": engine_name,
            "seed": cfg.seed,
            "max_new_tokens": cfg.max_new_tokens,
            "input": {
                "path": str(source),
                "sha256": sha256_file(source),
                "manifest_sha256": sha256_file(input_manifest) if input_manifest.is_file() else None,
            },
            "train_config": train_config,
            "prompts": {"generate": GENERATE_TEMPLATE, "rationalize": RATIONALIZE_TEMPLATE},
            "package_version": __version__,
        },
    }
    write_json(out / MANIFEST, manifest)
    return manifest
