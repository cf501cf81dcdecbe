"""Merge finished shards into the augmented dataset, its manifest and its dataset card.

``OUT/data/*.parquet`` (one file per shard, one unified schema, so
``datasets.load_dataset("parquet", data_dir=OUT/data)`` loads it), ``OUT/quarantine/*.jsonl``,
``OUT/manifest.json`` and ``OUT/README.md``. Merging is deterministic and idempotent.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from typing import Any

from .. import __version__, storage
from ..errors import DataError, TeacherLMError
from ..models import provenance
from ..parquet import table
from ..redaction import redact_document
from ..schema import SCHEMA_VERSION
from .config import AugmentConfig, shard_name
from .plan import load_plan_record

__all__ = ["load_plan", "merge"]


def load_plan(output: str) -> tuple[AugmentConfig, dict[str, Any]]:
    """The run's config and its ``plan.json`` (identity, fingerprint, columns).

    Raises:
        TeacherLMError: no run under ``output``, or one written by an older teacherlm.
    """
    plan = load_plan_record(output)
    if plan is None:
        raise TeacherLMError(
            f"{storage.join(output, 'plan.json')}: no augmentation run here (run `teacherlm augment` first)"
        )
    if "columns" not in plan:
        raise TeacherLMError(
            f"{storage.join(output, 'plan.json')}: written by an older teacherlm; augment again into a new --output"
        )
    return AugmentConfig.model_validate(plan["config"]), plan


def _read_jsonl(uri: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def merge(output: str) -> dict[str, Any]:
    """Merge every shard of the run under ``output``; every shard must have its ``_SUCCESS``."""
    import pyarrow.parquet as pq

    cfg, plan = load_plan(output)
    fingerprint = plan["fingerprint"]
    successes, missing = [], []
    for i in range(cfg.num_shards):
        uri = storage.join(cfg.shard_dir(i), "_SUCCESS")
        done = json.loads(storage.read_text(uri)) if storage.exists(uri) else None
        if done is None or done.get("fingerprint") != fingerprint:
            missing.append(i)
        successes.append(done)
    if missing:
        raise TeacherLMError(
            f"{output}: cannot merge, {len(missing)} of {cfg.num_shards} shard(s) unfinished: {missing[:20]}; "
            "re-run `teacherlm augment` (finished shards and parts are skipped)"
        )
    records_by_shard, rejected_by_shard, files = [], [], {}
    quarantined_total = 0
    for i, done in enumerate(successes):
        shard_dir, records, rejected = cfg.shard_dir(i), [], []
        for part in done["parts"]:
            for name, meta in sorted(part["files"].items()):
                blob = storage.read_bytes(storage.join(shard_dir, name))
                if hashlib.sha256(blob).hexdigest() != meta["sha256"]:
                    raise TeacherLMError(
                        f"{storage.join(shard_dir, name)}: checksum mismatch with its marker (file changed after it was written)"
                    )
                rows = [json.loads(x) for x in blob.decode().splitlines() if x.strip()]
                (rejected if name.endswith(".quarantine.jsonl") else records).extend(rows)
        records_by_shard.append(records)
        rejected_by_shard.append(rejected)
        if rejected:
            blob = b"".join(
                json.dumps(r, ensure_ascii=False, allow_nan=False).encode() + b"\n" for r in rejected
            )
            rel = f"quarantine/{shard_name(i, cfg.num_shards)}.jsonl"
            storage.write_bytes(storage.join(output, rel), blob)
            files[rel] = {"records": len(rejected), "sha256": hashlib.sha256(blob).hexdigest()}
            quarantined_total += len(rejected)
    for i, records in enumerate(records_by_shard):
        if not records:
            continue
        buf = io.BytesIO()
        pq.write_table(table(records, plan["columns"]), buf)
        rel = f"data/{shard_name(i, cfg.num_shards)}.parquet"
        storage.write_bytes(storage.join(output, rel), buf.getvalue())
        files[rel] = {"records": len(records), "sha256": hashlib.sha256(buf.getvalue()).hexdigest()}
    # Every augmented record exactly as it came in and out (JSON keeps what Parquet types cannot).
    blob = b"".join(
        json.dumps(r, ensure_ascii=False, allow_nan=False).encode() + b"\n"
        for records in records_by_shard
        for r in records
    )
    storage.write_bytes(storage.join(output, "train.jsonl"), blob)
    files["train.jsonl"] = {
        "records": sum(map(len, records_by_shard)),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    n_in = sum(d["in"] for d in successes)
    n_out = sum(len(r) for r in records_by_shard)
    checked = sum(d["cot_checked"] for d in successes)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "augmented",
        "teacherlm_version": __version__,
        "input": cfg.input,
        "teacher": cfg.teacher,
        "teacher_origin": provenance(cfg.model),
        "fields": list(cfg.fields),
        "counts": {"input": n_in, "output": n_out, "quarantined": quarantined_total},
        "chain_of_thought_consistency": {
            "checked": checked,
            "consistent": sum(d["cot_consistent"] for d in successes),
            "rate": (sum(d["cot_consistent"] for d in successes) / checked) if checked else None,
        },
        "tokens_generated": sum(d["tokens"] for d in successes),
        "shards": [
            {
                "shard": i,
                "in": d["in"],
                "out": d["out"],
                "quarantined": d["quarantined"],
                "parts": {
                    name: meta["sha256"] for p in d["parts"] for name, meta in sorted(p["files"].items())
                },
            }
            for i, d in enumerate(successes)
        ],
        "files": files,
        "config": cfg.public(),
        "identity": plan["identity"],
        "columns": plan["columns"],
        "fingerprint": fingerprint,
    }
    if n_in != n_out + quarantined_total:
        raise AssertionError(
            f"counts do not reconcile: in={n_in} out={n_out} quarantined={quarantined_total}"
        )
    manifest = redact_document(manifest)  # nothing secret in a manifest or card (URL credentials, keys)
    storage.write_text(storage.join(output, "manifest.json"), json.dumps(manifest, indent=1, sort_keys=True))
    storage.write_text(storage.join(output, "README.md"), dataset_card(manifest))
    if n_out == 0:  # a complete record of the failure is written; nothing downstream can use it
        reasons = Counter(r["reason"].split(" (after")[0][:120] for rows in rejected_by_shard for r in rows)
        top = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
        raise DataError(
            storage.join(output, "quarantine"), None, None,
            f"every one of the {n_in} input records was quarantined, nothing was augmented ({top})",
        )  # fmt: skip
    return manifest


def dataset_card(m: dict[str, Any]) -> str:
    c, cot = m["counts"], m["chain_of_thought_consistency"]
    rate = f"{cot['rate']:.1%}" if cot["rate"] is not None else "n/a"
    o = m.get("teacher_origin")
    origin = f" (from {o['origin']}; licence {o['licence']})" if o else ""
    return f"""---
configs:
- config_name: default
  data_files: data/*.parquet
tags: [teacherlm, augmented, explanations]
---
# Augmented dataset (teacherlm {m["teacherlm_version"]})

Every sample of `{m["input"]}` with explanations written by the teacher **{m["teacher"]}**{origin}, as in
TeacherLM (arXiv 2310.19019): {", ".join(f"`{f}`" for f in m["fields"])}. The teacher is
answer-conditioned: it explains the gold answer, it does not guess it.

| | count |
|---|---:|
| input records | {c["input"]} |
| augmented | {c["output"]} |
| quarantined (see `quarantine/`, each with its line and reason) | {c["quarantined"]} |
| generated tokens | {m["tokens_generated"]} |
| chain of thought concluding with the gold answer | {cot["consistent"]} / {cot["checked"]} ({rate}) |

Columns: every input column, the explanation fields, `teacher`, `generation` (engine, seed,
sampling settings, attempts and tokens per field) and `cot_consistent` (true / false / null when
the chain of thought names no answer; filter on it as STaR does). A column whose values are not
all of one Parquet type (objects, mixed types) is stored as JSON text and listed in the files'
metadata (`teacherlm.json_columns`): {", ".join(f"`{c}`" for c, t in m["columns"].items() if t == "json") or "none"}.
`train.jsonl` holds every record as JSON, every value as it came in.

```python
import datasets
ds = datasets.load_dataset("parquet", data_dir="data")["train"]
```

Settings: `{json.dumps({k: m["config"][k] for k in ("max_new_tokens", "temperature", "top_p", "seed", "max_retries", "num_shards")})}`
"""
