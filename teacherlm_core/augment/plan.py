"""An augmentation run's plan: its identity and its columns, fixed when the run starts.

``OUT/plan.json`` holds:

* ``identity``: everything the generated text depends on: the input's content
  (:func:`~teacherlm_core.storage.content_id`: sha256 locally, ETag + size on S3), the teacher
  (:func:`~teacherlm_core.models.model_identity`: its files' content, or hub id + revision), the
  engine and its endpoint (credentials removed), and every generation setting;
* ``fingerprint``: a hash of the identity; every part marker and ``_SUCCESS`` carries it;
* ``columns``: the Parquet type of every column the merged dataset will have
  (:mod:`teacherlm_core.parquet`'s rule, computed from the whole input before any generation);
* ``inputs``: per shard, the records, bytes and sha256 of its input file
  (``OUT/inputs/<shard>.jsonl``, or the given split's, :mod:`.split`), written in the same single
  pass over the input.

A dry run (``dry_run``: placeholder text, no model) is part of the identity, so a dry run's
output and a real run's can never be mixed or resumed one from the other.

A re-run with any part of the identity changed is refused, naming what changed; nothing of an
old run is ever served for a changed input.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from .. import storage
from ..errors import ConfigError, TeacherLMError
from ..models import model_identity
from ..redaction import redact_document, strip_url_credentials
from ..schema import FIELDS
from .config import AugmentConfig, public_endpoint
from .split import load_split, write_split

__all__ = [
    "OUTPUT_COLUMNS",
    "SETTINGS",
    "check_plan",
    "ensure_plan",
    "identity",
    "load_plan_record",
    "new_plan",
    "plan_fingerprint",
    "public_endpoint",
]

# The settings that shape the generated text (not where the run writes, nor how fast it goes).
SETTINGS = (
    "fields",
    "num_shards",
    "part_size",
    "max_new_tokens",
    "temperature",
    "top_p",
    "seed",
    "max_retries",
    "dry_run",
)
OUTPUT_COLUMNS = {
    **dict.fromkeys(FIELDS, "string"),
    "teacher": "string",
    "generation": "struct",
    "cot_consistent": "bool",
}


def _stat(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _input_id(cfg: AugmentConfig, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """The input's content id; for a local file whose inode, size and times are those recorded at
    planning, the recorded one (so a shard task never re-reads the whole input to hash it); with a
    split, the one its ``split.json`` recorded (the input itself is not read)."""
    if cfg.split:
        return load_split(cfg.split, cfg.num_shards)["input"]
    if (
        recorded
        and not storage.is_remote(cfg.input)
        and os.path.isfile(cfg.input)
        and recorded.get("input_stat") == _stat(cfg.input)
        and recorded["identity"]["input"]["uri"] == strip_url_credentials(cfg.input)
    ):
        return recorded["identity"]["input"]
    return {"uri": strip_url_credentials(cfg.input), **storage.content_id(cfg.input)}


def identity(cfg: AugmentConfig, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the run's output depends on (see the module docstring); ``recorded``: the plan on record."""
    return {
        "input": _input_id(cfg, recorded),
        "teacher": model_identity(cfg.teacher, cfg.revision),
        "engine": {
            "name": "dry-run" if cfg.dry_run else cfg.engine,
            "endpoint": public_endpoint(cfg.base_url) if cfg.engine == "openai" else None,
        },
        "settings": {k: getattr(cfg, k) for k in SETTINGS} | {"fields": list(cfg.fields)},
    }


def plan_fingerprint(ident: dict[str, Any]) -> str:
    """A short hash of an identity: what every part marker and ``_SUCCESS`` of the run carries."""
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def new_plan(cfg: AugmentConfig, ident: dict[str, Any], progress=None) -> dict[str, Any]:
    """The plan of a new run: the given split's, else after writing every shard's input (one
    streaming pass over the input) into ``OUT/inputs``."""
    if cfg.split:
        record = load_split(cfg.split, cfg.num_shards)
    else:
        record = write_split(cfg.input, cfg.num_shards, cfg.inputs_uri, ident["input"], progress)
    columns, inputs = record["columns"], record["inputs"]
    plan = {
        "fingerprint": plan_fingerprint(ident),
        "identity": ident,
        "num_shards": cfg.num_shards,
        "config": cfg.public(),
        "columns": columns | OUTPUT_COLUMNS,
        "inputs": inputs,
    }
    return redact_document(plan)


def ensure_plan(cfg: AugmentConfig, ident: dict[str, Any] | None = None, progress=None) -> dict[str, Any]:
    """The run's plan: the recorded one when it matches, else a new one (split, then ``plan.json``).

    Shard tasks racing to plan the same run write the same files (atomic, identical), so the
    race is harmless.

    Raises:
        ConfigError: the output holds a run of another input, teacher, engine or settings.
        TeacherLMError: the output holds a plan of an older teacherlm (no per-shard inputs).
    """
    ident = ident or identity(cfg, load_plan_record(cfg.output))
    plan = check_plan(cfg, ident)
    if plan is None:
        plan = new_plan(cfg, ident, progress)
        if not cfg.split and not storage.is_remote(cfg.input):
            plan["input_stat"] = _stat(cfg.input)
        storage.write_text(cfg.plan_uri, json.dumps(plan, indent=1, sort_keys=True))
    elif "inputs" not in plan:
        raise TeacherLMError(f"{cfg.plan_uri}: written by an older teacherlm; use a new --output")
    return plan


def _changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "files":
            out += _changes(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}" if key == "files" else f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def load_plan_record(output: str) -> dict[str, Any] | None:
    """``OUT/plan.json`` as written (``None`` when there is none)."""
    uri = storage.join(output, "plan.json")
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def check_plan(cfg: AugmentConfig, ident: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded plan when it matches ``ident``; ``None`` when there is none yet.

    Raises:
        ConfigError: the output holds a run of another input, teacher, engine or settings.
    """
    old = load_plan_record(cfg.output)
    if old is None:
        return None
    if "identity" not in old:
        raise TeacherLMError(f"{cfg.plan_uri}: written by an older teacherlm; use a new --output")
    if old["fingerprint"] != plan_fingerprint(ident):
        changed = _changes(old["identity"], ident)
        what = "; ".join(c.replace("files", "weights (files changed)") for c in changed) or "the plan"
        raise ConfigError(
            cfg.plan_uri,
            [
                f"{cfg.output} holds a run of another input, teacher, engine or settings (changed: {what}); "
                f"nothing of it is reused: write to a new --output, or delete {cfg.output} to start over"
            ],
        )
    return old
