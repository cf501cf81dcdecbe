"""Parent-side preparation of a training stage: everything that can fail fast, before any rank starts.

For each stage this reads and checks the data, builds and packs the training texts, resolves the
start model, decides whether the stage is done / resumes / starts fresh, and writes a
:class:`StageSpec` that the ranks (:mod:`.worker`) execute. A re-run may change only the number
of steps (``max_steps`` / ``epochs``); anything else changes the stage's fingerprint, and its old
checkpoints are refused (student) or discarded (a teacher stage whose upstream changed).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .. import __version__, storage
from ..errors import ConfigError
from ..models import resolve_model as resolve_named
from .config import TextsConfig, TrainConfig
from .ds_config import zero_stage
from .outputs import CHECKPOINT_MARKER, STATE, SUCCESS, StageOutput, fingerprint, verify_checkpoint

__all__ = ["Plan", "StageSpec", "fetch_data", "prepare_stage", "resolve_model"]

log = logging.getLogger(__name__)

# Settings a re-run may change without invalidating the checkpoints.
_STEP_KEYS = {"max_steps", "epochs", "logging_steps", "save_steps", "save_total_limit"}


class StageSpec(BaseModel):
    """What the ranks need to run one stage (written as JSON by the parent, read by every rank)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    output: str
    local: str
    start_model: str
    packed: str
    train: TrainConfig
    deepspeed: dict[str, Any] | None
    fingerprint: str
    steps: dict[str, Any]
    resume_from: str | None = None
    done: bool = False
    card: dict[str, Any] = {}


class Plan(BaseModel):
    """The stages one launch runs, in order, and the world size the ranks must see."""

    model_config = ConfigDict(extra="forbid")

    stages: list[StageSpec]
    world_size: int
    nnodes: int = 1


def _cache_dir(kind: str, key: str) -> Path:
    from ..tracking import workdir

    return workdir() / "train-cache" / kind / hashlib.sha256(key.encode()).hexdigest()[:16]


def fetch_data(uri: str) -> Path:
    """A local path for training data (``s3://`` objects are downloaded once into the work dir)."""
    if not storage.is_remote(uri):
        return Path(uri.removeprefix("file://"))
    local = _cache_dir("data", uri) / Path(uri).name
    storage.copy(uri, local)
    return local


def resolve_model(model: str) -> str:
    """A path ``from_pretrained`` can load: a local dir as is, ``s3://`` downloaded, a named model
    converted (:func:`teacherlm_core.models.resolve_model`), a hub id as is.

    Raises:
        ConfigError: a local-looking path that does not exist, or an empty ``s3://`` prefix.
    """
    model = resolve_named(model)  # a named local model: its converted directory
    if storage.is_remote(model):
        local = _cache_dir("models", model)
        if not storage.download_dir(model, local):
            raise ConfigError("model", [f"{model}: no objects under this prefix"])
        return str(local)
    path = Path(model.removeprefix("file://"))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError("model", [f"{model}: a directory without config.json is not a model"])
        return str(path)
    if model.startswith((".", "/", "~")) or path.exists() or model.count("/") > 1:
        raise ConfigError("model", [f"{model}: no such model directory"])
    return model  # a hub id; from_pretrained fetches it


def _diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def prepare_stage(
    *,
    name: str,
    output: StageOutput,
    model: str,
    start: str | dict[str, Any],
    data: str,
    texts: TextsConfig,
    train: TrainConfig,
    deepspeed: dict[str, Any] | None,
    world_size: int,
    on_conflict: Literal["error", "clear"],
    tokenizer_source: str | None = None,
    write_state: bool = True,
) -> StageSpec:
    """Check, tokenise and pack one stage's data and decide how the stage starts.

    Args:
        name: the stage name (``student``, ``multitask``...).
        output: where the stage writes.
        model: local path of the start weights (may not exist yet when an earlier stage of the
            same launch produces it; ``tokenizer_source`` is then read instead).
        start: the start model's identity for the fingerprint (a model string, or the upstream
            stage's fingerprint and steps).
        data: the data URI (local path or ``s3://``).
        texts / train: the stage's resolved settings.
        deepspeed: the resolved DeepSpeed config, or ``None``.
        world_size: ranks in total (part of the fingerprint: ZeRO shards depend on it).
        on_conflict: what to do when the output holds a run with other settings.
        write_state: write ``train_state.json`` (only node 0 does).
    """
    from .texts import load_training_samples

    local_data = fetch_data(data)
    kinds = texts.kinds()
    per_question = texts.batching == "per_question"
    # per_question: a record without an explanation trains its label only (e.g. a utility filter
    # dropped it); a field that no record has is still an error (the data was not augmented).
    samples = load_training_samples(str(local_data), ["plain"] if per_question else kinds, display=data)
    if per_question:
        _check_some_explained(samples, texts.fields, data)
    identity = {
        "start": start,
        "data_sha256": storage.sha256_file(local_data),
        "texts": texts.model_dump(),
        "train": train.model_dump(exclude=_STEP_KEYS),
        "deepspeed": deepspeed,
        "world_size": world_size,
    }
    fp = fingerprint(identity)
    steps = {"max_steps": train.max_steps, "epochs": None if train.max_steps else train.epochs}

    done, resume_from = _done_or_resume(name, output, identity, steps, train, on_conflict)
    if write_state:
        output.write_json(STATE, {"fingerprint": fp, "identity": identity, "version": __version__})

    # texts -> tokens -> packed blocks (cached by fingerprint: every rank reads the same file)
    packed_path = _cache_dir("packed", fp) / "packed.safetensors"
    counts, stats = _pack_texts(
        name, samples, texts, train, world_size, tokenizer_source or model, packed_path
    )
    card = {
        "stage": name,
        "data": data,
        "data_sha256": identity["data_sha256"],
        "samples": len(samples),
        "texts": counts,
        "texts_config": texts.model_dump(),
        "packing": stats.to_dict(),
        "train": train.model_dump(),
        "world_size": world_size,
        "deepspeed": f"ZeRO-{zero_stage(deepspeed)}" if deepspeed is not None else "none",
        "start": start,
        "teacherlm": __version__,
    }
    return StageSpec(
        name=name,
        output=output.uri,
        local=str(output.local),
        start_model=model,
        packed=str(packed_path),
        train=train,
        deepspeed=deepspeed,
        fingerprint=fp,
        steps=steps,
        resume_from=resume_from,
        done=done,
        card=card,
    )


def _pack_texts(
    name: str,
    samples: list[Any],
    texts: TextsConfig,
    train: TrainConfig,
    world_size: int,
    tokenizer_path: str,
    packed_path: Path,
) -> tuple[dict[str, int], Any]:
    """Build the stage's texts from ``samples``, tokenise and pack them into ``packed_path``.

    Returns:
        ``(texts per kind, packing stats)``.

    Raises:
        ConfigError: too few packed blocks to fill one optimizer step of ``world_size`` ranks.
    """
    from transformers import AutoTokenizer

    from .packing import pack, pack_questions, save_packed, save_questions, tokenize
    from .texts import build_texts, sample_texts

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    per_question = texts.batching == "per_question"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    if per_question:
        rows = [
            [sample_texts(s, ["plain"])[0]]
            + [
                sample_texts(s, [f], texts.explanation_position)[0] if _has(s, f) else None
                for f in texts.fields
            ]
            for s in samples
        ]
        counts = {"plain": len(rows)} | {f: sum(_has(s, f) for s in samples) for f in texts.fields}
        packed = pack_questions(tokenizer, rows, texts.loss, texts.max_length, pad_id)
    else:
        texts_list, counts = build_texts(samples, texts.kinds(), texts.weights, train.seed)
        docs = tokenize(tokenizer, texts_list, texts.loss)
        packed = pack(docs, texts.max_length, pad_id, enabled=texts.pack)
    micro = train.per_device_batch_size * world_size
    # (per_question rows cycle through the questions: a step may hold a question twice)
    if packed.stats.blocks < (1 if per_question else micro):
        raise ConfigError(
            f"stage {name}",
            [
                f"{packed.stats.blocks} packed block(s) of {texts.max_length} tokens cannot fill one step of "
                f"{world_size} rank(s) x per_device_batch_size {train.per_device_batch_size}: "
                "use more data, fewer ranks or a smaller batch"
            ],
        )
    if per_question:
        meta = {
            "fields": list(texts.fields),
            "explanation_weight": texts.explanation_weight,
            "field_rotation": texts.field_rotation,
        }
        save_questions(packed, packed_path, meta)
    else:
        save_packed(packed, packed_path)
    return counts, packed.stats


def _done_or_resume(
    name: str,
    output: StageOutput,
    identity: dict[str, Any],
    steps: dict[str, Any],
    train: TrainConfig,
    on_conflict: Literal["error", "clear"],
) -> tuple[bool, str | None]:
    """Whether the stage in ``output`` is done with these settings, else the local checkpoint to
    resume from (``None``: a fresh start); an output of other settings is refused or cleared.

    Raises:
        ConfigError: ``output`` holds a run of other settings (``on_conflict="error"``), or one
            trained beyond ``train.max_steps``.
    """
    fp = fingerprint(identity)
    state = output.read_json(STATE)
    if state and state.get("fingerprint") != fp:
        changed = _diff(state.get("identity", {}), identity) or ["(unknown)"]
        if on_conflict == "error":
            raise ConfigError(
                output.uri,
                [
                    f"holds a run with other settings (changed: {', '.join(changed)}); a re-run may change "
                    "only max_steps/epochs: use a new output, or delete this one"
                ],
            )
        log.warning("stage %s: settings changed (%s); discarding %s", name, ", ".join(changed), output.uri)
        output.clear()
    success = output.read_json(SUCCESS) if state else None
    done = bool(success and success.get("fingerprint") == fp and success.get("steps") == steps)
    if success and not done and train.max_steps and success.get("global_step", 0) > train.max_steps:
        raise ConfigError(
            output.uri,
            [f"already trained to step {success['global_step']}, beyond max_steps {train.max_steps}"],
        )
    if success and not done and train.lr_scheduler in ("linear", "cosine") and train.schedule_steps is None:
        log.warning(
            "stage %s: the %s schedule's length follows max_steps/epochs, which changed since the last run; "
            "set train.schedule_steps to keep the schedule (and an exact resume)",
            name,
            train.lr_scheduler,
        )
    resume_from = None
    if not done:
        output.reset_mirror()
        _drop_incomplete_checkpoints(output)
        complete = [
            (step, marker)
            for step, marker in output.complete_checkpoints()
            if marker.get("fingerprint") == fp
        ]
        if complete:
            step, marker = complete[-1]
            resume_from = str(output.fetch_checkpoint(step))
            verify_checkpoint(Path(resume_from), marker)  # before anything unpickles it
    return done, resume_from


def _has(sample: Any, field: str) -> bool:
    value = getattr(sample, field, None)
    return isinstance(value, str) and bool(value.strip())


def _check_some_explained(samples: list[Any], fields: list[str], data: str) -> None:
    """A field that no record has means the data was never augmented: say so, as packed batching does."""
    from ..errors import DataError

    absent = [f for f in fields if not any(_has(s, f) for s in samples)]
    if absent:
        raise DataError(
            data,
            None,
            ", ".join(absent),
            f"no record has {', '.join(repr(f) for f in absent)}: augment the data first, or leave them out of texts.fields",
        )


def _drop_incomplete_checkpoints(output: StageOutput) -> None:
    """A local checkpoint without its marker was cut off mid-save; it must not be rotated in."""
    if output.remote or not output.checkpoints.is_dir():
        return
    for ckpt in output.checkpoints.glob("checkpoint-*"):
        if not (ckpt / CHECKPOINT_MARKER).exists():
            shutil.rmtree(ckpt, ignore_errors=True)
