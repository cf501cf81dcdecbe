"""STaR rounds (Zelikman et al., 2022): turn annotated questions into teacher-written rationales.

    teacherlm data star --model runs/r1/models/teacher --input runs/r1/data --output runs/r1/star --rounds 3

Each round, for every input sample that has no kept rationale yet:

1. **generate** -- the teacher continues ``Q: {question} (A) ... (B) ... A: Let's think step by step.``
   without seeing the answer. The rationale is kept (``star_source="generated"``) when its final
   answer ("... So the answer is (B)." / "... is false.") is the gold one.
2. **rationalise** -- for the others the teacher continues the answer-conditioned prompt
   ``Q: ... A: The answer is (B). Let's think step by step.`` (DESIGN's teacher format). The
   rationale is kept (``star_source="rationalized"``) when it is well-formed: not empty, not an echo
   of the prompt, not garbled (control characters, U+FFFD), with at least ``min_words`` words of
   reasoning before its conclusion, and concluding with the gold answer (the same checks apply to
   step 1's rationales).
   A rationalisation that stops without a conclusion gets ``So the answer is {gold}.`` appended
   (``star_conclusion_appended=True``): the hint fixed the answer, so the sentence adds no
   information, and it gives every kept rationale the same ending as the gold chains of thought.
   One cut by ``max_new_tokens`` first loses its unfinished last sentence; if nothing complete is
   left, it fails. One that concludes with a *wrong* answer always fails.
3. a sample failing both is retried in the next round (with new seeds, or a retrained teacher);
   after the last round it goes to ``quarantine/failed.jsonl`` with the reasons and every attempt.

Each phase of a round is ONE ``engine.generate`` call over all its prompts (vLLM batches them
continuously). Seeds are per request, derived from ``(seed, sample id, round, kind)``, so a rerun
with the same inputs reproduces every file byte for byte; with ``temperature=0`` decoding is greedy.

With a ``train_fn`` the teacher is retrained between rounds on everything kept so far
(``rounds/round-NN/train.jsonl``) and the next round loads the model path it returns.

Output directory::

    train.jsonl                 kept records in input order: every input field, chain_of_thought = the
                                kept rationale, star_round, star_source, star_teacher, star_conclusion_appended
    quarantine/failed.jsonl     samples without a kept rationale after the last round (reason + attempts)
    quarantine/rejected.jsonl   input rows that break the data contract (line + reason)
    rounds/round-NN/            with a train_fn only: the kept set it retrained on (train.jsonl), its config, model
    manifest.json               rounds, counts, sha256 of every file, schema version, provenance

``counts.in = kept + failed + invalid`` always holds.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .answers import SENTENCE_END, Conclusion, parse_answer, same_answer
from .data.manifest import MANIFEST, QUARANTINE, file_entry, sha256_file, write_json
from .engines import Engine, Generation, GenerationParams, get_engine
from .errors import ConfigError, DataError, EngineError, TeacherLMError
from .prompts import FIELD_SUFFIX, collapse_ws, question_text, teacher_prompt
from .schema import SCHEMA_VERSION, QuarantineWriter, Rejected, Sample, read_samples, write_jsonl

__all__ = [
    "FAILED",
    "KEPT",
    "Conclusion",
    "StarConfig",
    "TrainFn",
    "Verdict",
    "generate_prompt",
    "judge",
    "parse_answer",
    "rationalize_prompt",
    "request_seed",
    "run_star",
    "subprocess_train_fn",
]

KEPT = "train.jsonl"
FAILED = "quarantine/failed.jsonl"
TRAIN_COMMAND = (sys.executable, "-m", "teacherlm_core", "train", "teacher")
# A teacher trained on one-line records may run on into the next question; cut it there.
STOP = (" Q:", "\nQ:")

GENERATE_TEMPLATE = "Q: {question} (A) {choice_0} (B) {choice_1} ... A: Let's think step by step."
RATIONALIZE_TEMPLATE = (
    "Q: {question} (A) {choice_0} (B) {choice_1} ... A: The answer is ({letter}). Let's think step by step."
)

TrainFn = Callable[[Path, int], str]  # (kept_dir, round) -> path of the retrained teacher
EngineFactory = Callable[[str], Engine]  # model path -> engine
# (description, total) -> context manager yielding advance(n); cli.progress.progress_bar fits
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class StarConfig:
    """Settings of a STaR run.

    Attributes:
        rounds: the most rounds to run; the run stops early once every sample is kept.
        max_new_tokens: token budget of each rationale.
        seed: base seed; each request's seed derives from it (see :func:`request_seed`).
        temperature: 0 is greedy (then a retry without retraining repeats the same answer).
        top_p: nucleus sampling (ignored when greedy).
        min_words: words of reasoning a kept rationale needs before its conclusion sentence.
    """

    rounds: int = 1
    max_new_tokens: int = 128
    seed: int = 0
    temperature: float = 0.7
    top_p: float = 0.95
    min_words: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.rounds < 1:
            problems.append(f"rounds: must be at least 1, got {self.rounds}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens: must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.min_words < 0:
            problems.append(f"min_words: must be >= 0, got {self.min_words}")
        if problems:
            raise ConfigError("star config", problems)


# -- prompts and seeds ---------------------------------------------------------------------------
def generate_prompt(sample: Sample) -> str:
    """The answer-free prompt: ``Q: {question} (A) ... A: Let's think step by step.``"""
    return f"{question_text(sample)} A:{FIELD_SUFFIX['chain_of_thought']}"


def rationalize_prompt(sample: Sample) -> str:
    """The hinted prompt: ``Q: ... A: The answer is (B). Let's think step by step.``"""
    return teacher_prompt(sample, "chain_of_thought")


def request_seed(seed: int, sample_id: str, round_: int, kind: str) -> int:
    """A 31-bit seed that depends only on ``(seed, sample id, round, kind)``, not on batch order."""
    digest = hashlib.sha256(f"{seed}/{sample_id}/{round_}/{kind}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


# -- parsing and judging -------------------------------------------------------------------------


def _is_echo(text: str, sample: Sample) -> bool:
    low = text.lower()
    return (
        low.startswith("q:")
        or collapse_ws(sample.question).lower() in low
        or FIELD_SUFFIX["chain_of_thought"].strip().lower() in low
    )


def _is_garbled(text: str) -> bool:
    return "\ufffd" in text or any(unicodedata.category(ch) == "Cc" for ch in text)


def _sentence_start(text: str, pos: int) -> int:
    """Where the sentence holding ``pos`` starts (its conclusion sentence's start)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text, 0, pos)]
    return ends[-1] if ends else 0


@dataclass(frozen=True)
class Verdict:
    """The judgement of one generation: ``rationale`` is what would be kept, ``reason`` why not."""

    kept: bool
    rationale: str = ""
    reason: str = ""
    appended: bool = False


def judge(generation: Generation, sample: Sample, *, hinted: bool, min_words: int = 3) -> Verdict:
    """Decide whether a generation is a rationale to keep (see the module docstring for the rules).

    The kept rationale is whitespace-collapsed and ends right after its conclusion: anything the
    teacher wrote after its final answer is dropped.
    """
    text = collapse_ws(generation.text)
    cut = generation.finish_reason == "length"
    if not text:
        return Verdict(False, reason="empty output")
    if _is_echo(text, sample):
        return Verdict(False, reason="echoes the prompt")
    if _is_garbled(text):
        return Verdict(False, reason="garbled text (control characters or undecodable bytes)")
    concl = parse_answer(text, sample.choices)
    if concl is None:
        if not hinted:
            tail = " (cut at max_new_tokens)" if cut else ""
            return Verdict(False, reason=f"no final answer ('the answer is ...') found{tail}")
        body = text[: _sentence_start(text, len(text))] if cut else text
        if cut and not body:
            return Verdict(False, reason="cut at max_new_tokens before one complete sentence")
        if len(body.split()) < min_words:
            return Verdict(False, reason=f"fewer than {min_words} words of reasoning")
        if not SENTENCE_END.search(body[-1:]):
            body += "."
        return Verdict(True, f"{body} So the answer is {sample.answer}.", appended=True)
    if not same_answer(concl.answer, sample):
        return Verdict(False, reason=f"concludes with {concl.answer!r}, gold is {sample.answer!r}")
    reasoning = text[: _sentence_start(text, concl.start)]
    if len(reasoning.split()) < min_words:
        return Verdict(False, reason=f"fewer than {min_words} words of reasoning before the conclusion")
    rationale = text[: concl.end].rstrip()
    if not SENTENCE_END.search(rationale[-1:]):
        rationale += "."
    return Verdict(True, rationale)


# -- training between rounds ---------------------------------------------------------------------
def _train_config(config: str | Path) -> tuple[Path, dict[str, Any]]:
    """Find the teacher config (a file, or a name shipped with the recipe) and read it."""
    import yaml

    path = Path(config)
    if not path.is_file():
        try:
            from .train.config import shipped_config_path

            path = shipped_config_path(str(config))
        except ImportError:
            pass
    if not path.is_file():
        raise ConfigError("--train-between-rounds", [f"{config}: no such config file"])
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise ConfigError(
            str(path), ["stages: a teacher config needs at least one stage (STaR sets its data)"]
        )
    return path, raw


def _trained_model(out: Path) -> str | None:
    """The retrained teacher in a recipe output: ``out`` itself, or from ``out/stages.json`` the
    chain-of-thought specialist if there is one, else the last stage."""
    import json

    if (out / "config.json").is_file():
        return str(out)
    if not (out / "stages.json").is_file():
        return None
    stages = json.loads((out / "stages.json").read_text(encoding="utf-8"))
    cot = [s for s in stages if s["stage"].endswith("chain-of-thought")]
    return (cot or stages)[-1]["output"] if stages else None


def subprocess_train_fn(config: str | Path, command: Sequence[str] = TRAIN_COMMAND) -> TrainFn:
    """A ``train_fn`` that runs ``teacherlm train teacher --config ROUND_CONFIG --output DIR``.

    ``ROUND_CONFIG`` (written to ``KEPT_DIR/teacher.yaml``) is ``config`` with the first stage's
    ``data`` set to the kept set, ``KEPT_DIR/train.jsonl``; ``DIR`` is ``KEPT_DIR/model``. The
    model path returned is ``DIR`` if it holds a model, else the stage :func:`_trained_model` picks
    from ``DIR/stages.json``. Where the next round starts from (the base model, as in STaR, or the
    last teacher) is the config's ``model``.

    Checks now, before any generation, that the config is readable and the command exists;
    raises :class:`TeacherLMError` when training is unavailable.
    """
    import yaml

    path, raw = _train_config(config)
    shown = " ".join(command[2:] if command[:1] == (sys.executable,) else command)
    try:
        probe = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=300)
    except OSError as exc:
        probe = subprocess.CompletedProcess(command, 127, "", str(exc))
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).splitlines()
        why = next(
            (ln.strip(" │╭╮╰╯─") for ln in reversed(lines) if any(c.isalnum() for c in ln)), "no output"
        )
        raise TeacherLMError(
            f"training between rounds is unavailable: `{shown}` is not in this installation ({why}); "
            "run STaR without --train-between-rounds"
        )

    def train(kept_dir: Path, round_: int) -> str:
        kept_dir, out = Path(kept_dir).resolve(), Path(kept_dir).resolve() / "model"
        stages = [dict(raw["stages"][0], data=str(kept_dir / KEPT)), *raw["stages"][1:]]
        round_config = kept_dir / "teacher.yaml"
        header = f"# STaR round {round_}: {path} with stages.0.data set to the kept set\n"
        round_config.write_text(
            header + yaml.safe_dump(raw | {"output": str(out), "stages": stages}, sort_keys=False)
        )
        done = subprocess.run([*command, "--config", str(round_config), "--output", str(out)])
        if done.returncode != 0:
            raise TeacherLMError(f"retraining after round {round_} failed (exit {done.returncode}): {shown}")
        model = _trained_model(out)
        if model is None:
            raise TeacherLMError(f"retraining after round {round_} left no model (nor stages.json) in {out}")
        return model

    return train


PHASES = (("generate", "generated", generate_prompt), ("rationalize", "rationalized", rationalize_prompt))


# -- the run -------------------------------------------------------------------------------------
def _input_file(path: Path, split: str) -> Path:
    if path.is_dir():
        for ext in ("jsonl", "parquet"):
            if (path / f"{split}.{ext}").is_file():
                return path / f"{split}.{ext}"
        raise DataError(str(path), None, None, f"no {split}.jsonl or {split}.parquet in this directory")
    return path


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
        out = engine.generate(prompts, params)
    else:
        with progress(description, len(prompts)) as advance:
            out = engine.generate(prompts, params, progress=advance)  # type: ignore[call-arg]
    if len(out) != len(prompts):
        raise EngineError(
            f"engine {engine.name!r} returned {len(out)} generations for {len(prompts)} prompts"
        )
    return out


def _label(model: str, root: Path) -> str:
    """A model as records name it: relative to the output dir when trained there (stable bytes)."""
    if not (Path(model).is_absolute() or Path(model).exists()):  # a hub id
        return model
    try:
        return Path(model).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return model


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
        engine: ``"vllm"`` or ``"hf"`` (used by the default ``load_engine``).
        revision: hub revision of ``model``.
        split: which split file of a data directory to read.
        load_engine: ``model path -> Engine``; default ``get_engine(engine, path, ...)``. Tests
            pass fakes here.
        train_fn: ``(kept_dir, round) -> new model path``, called after each round but the last
            while samples remain and something is kept (see :func:`subprocess_train_fn`);
            ``kept_dir`` holds ``train.jsonl``, everything kept so far.
        train_config: the training config, recorded in the provenance.
        progress: ``(description, total) -> context manager yielding advance(n)``.
    """
    cfg = config or StarConfig()
    out = Path(output)
    source = _input_file(Path(input), split)
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

    kept: dict[int, dict[str, Any]] = {}
    attempts: dict[int, list[dict[str, Any]]] = defaultdict(list)
    last_reason: dict[int, str] = {}
    rounds: list[dict[str, int]] = []
    teachers: list[dict[str, Any]] = []
    pending = list(range(len(samples)))
    current, eng, engine_name = model, None, engine
    for r in range(1, cfg.rounds + 1):
        if not pending:
            break
        if eng is None:
            eng = load_engine(current)
            engine_name = getattr(eng, "name", engine)
        label = _label(current, out) + (f"@{revision}" if revision and current == model else "")
        teachers.append({"round": r, "model": label})
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
                    kept[i] = samples[i].to_record() | {
                        "chain_of_thought": v.rationale,
                        "star_round": r,
                        "star_source": source_name,
                        "star_teacher": label,
                        "star_conclusion_appended": v.appended,
                    }
                    tally[source_name] += 1
                    continue
                attempts[i].append(
                    {"round": r, "kind": kind, "text": gen.text, "finish_reason": gen.finish_reason}
                    | {"reason": v.reason}
                )
                reasons[i].append(f"{kind}: {v.reason}")
                still.append(i)
            retry = still
        pending = retry
        last_reason.update({i: "; ".join(reasons[i]) for i in pending})
        rounds.append(
            {
                "round": r,
                "correct": tally["generated"],
                "rationalized": tally["rationalized"],
                "failed": len(pending),
            }
        )
        if train_fn is not None and pending and r < cfg.rounds and kept:
            kept_dir = out / "rounds" / f"round-{r:02d}"
            write_jsonl(kept_dir / KEPT, [kept[i] for i in sorted(kept)])
            current, eng = train_fn(kept_dir, r), None  # drop the old engine before loading the new one

    files: dict[str, dict[str, Any]] = {}
    n_kept = write_jsonl(out / KEPT, [kept[i] for i in sorted(kept)])
    files[KEPT] = file_entry(out, out / KEPT, n_kept)
    if pending:
        failed = [
            Rejected(
                source=str(source),
                line=lines[i],
                field="chain_of_thought",
                reason=f"no kept rationale after {len(rounds)} round(s); last: {last_reason[i]}",
                raw=samples[i].to_record() | {"star_attempts": attempts[i]},
            )
            for i in pending
        ]
        files[FAILED] = file_entry(out, out / FAILED, write_jsonl(out / FAILED, failed))
    if rejected.count:
        files[QUARANTINE] = file_entry(out, out / QUARANTINE, rejected.count)

    by_source = Counter(rec["star_source"] for rec in kept.values())
    tasks: dict[str, Counter[str]] = defaultdict(Counter)
    for i, s in enumerate(samples):
        tasks[s.task]["in"] += 1
        tasks[s.task]["kept" if i in kept else "failed"] += 1
    counts = {
        "in": len(samples) + rejected.count,
        "kept": len(kept),
        "failed": len(pending),
        "invalid": rejected.count,
        "generated": by_source["generated"],
        "rationalized": by_source["rationalized"],
        "conclusion_appended": sum(rec["star_conclusion_appended"] for rec in kept.values()),
        "tasks": {t: {k: c[k] for k in ("in", "kept", "failed")} for t, c in sorted(tasks.items())},
    }
    if counts["in"] != counts["kept"] + counts["failed"] + counts["invalid"]:  # pragma: no cover
        raise AssertionError(f"STaR counts do not reconcile: {counts}")
    input_manifest = source.parent / MANIFEST
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "star",
        "rounds": rounds,
        "counts": counts,
        "files": files,
        "config": asdict(cfg),
        "provenance": {
            "teacher": {"model": model, "revision": revision},
            "teachers": teachers,
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
