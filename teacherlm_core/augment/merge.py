"""Merge finished shards into the augmented dataset, its manifest and its dataset card.

``OUT/data/*.parquet`` (one file per shard, one unified schema, so
``datasets.load_dataset("parquet", data_dir=OUT/data)`` loads it), ``OUT/quarantine/*.jsonl``,
``OUT/manifest.json`` and ``OUT/README.md``. Merging is deterministic and idempotent.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import __version__, storage
from ..errors import DataError, TeacherLMError
from ..models import provenance
from ..parquet import table
from ..redaction import redact_document
from ..schema import SCHEMA_VERSION
from ..signals import sigterm_as_exit
from .config import CARD, MANIFEST, AugmentConfig, shard_name
from .lock import LOCK, merge_lock
from .plan import load_plan_record

__all__ = ["LOCK", "ROW_GROUP", "add_card_section", "load_plan", "merge", "merge_lock"]

ROW_GROUP = 2048  # records per Parquet row group: what the merge holds in memory at once


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


class _Output:
    """One output file written as it streams: to a temp file beside it (locally) or in a temp dir
    (for S3), then put in place whole by :meth:`commit`; its sha256 is computed on the way."""

    def __init__(self, uri: str, root: str):
        self.uri = uri
        local = not storage.is_remote(uri)
        folder = root if local else None  # the run's root: same file system, and no empty data/ left
        if folder:
            os.makedirs(folder, exist_ok=True)
        fd, self.tmp = storage.atomic_temp(folder, f".merge-{os.getpid()}-")
        os.close(fd)
        self.local = local

    def commit(self) -> str:
        digest = storage.sha256_file(self.tmp)
        if self.local:
            os.makedirs(os.path.dirname(self.uri), exist_ok=True)
            os.replace(self.tmp, self.uri)
        else:
            storage.copy(self.tmp, self.uri)
            os.unlink(self.tmp)
        return digest

    def discard(self) -> None:
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _part_lines(uri: str, sha256: str) -> Iterator[bytes]:
    """The lines of a part file, streamed; its checksum is checked after the last line."""
    digest = hashlib.sha256()
    for line in storage.iter_lines(uri):
        digest.update(line)
        if line.strip():
            yield line if line.endswith(b"\n") else line + b"\n"
    if digest.hexdigest() != sha256:
        raise TeacherLMError(f"{uri}: checksum mismatch with its marker (file changed after it was written)")


class _ParquetShard:
    """A shard's Parquet file, written a row group (``ROW_GROUP`` records) at a time."""

    def __init__(self, uri: str, root: str, columns: dict[str, str]):
        self.out, self.columns, self.rows, self.writer, self.count = _Output(uri, root), columns, [], None, 0

    def add(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        if len(self.rows) >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        import pyarrow.parquet as pq

        if not self.rows:
            return
        t = table(self.rows, self.columns)
        if self.writer is None:
            self.schema = t.schema
            self.writer = pq.ParquetWriter(self.out.tmp, t.schema)
        elif t.schema != self.schema:  # the struct column is inferred per batch
            t = t.cast(self.schema)
        self.writer.write_table(t)
        self.count += len(self.rows)
        self.rows = []

    def close(self) -> str | None:
        """The file's sha256 once in place, or ``None`` (and no file) when the shard has no records."""
        self.flush()
        if self.writer is None:
            self.out.discard()
            return None
        self.writer.close()
        return self.out.commit()


def merge(output: str, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Merge every shard of the run under ``output``; every shard must have its ``_SUCCESS``.

    One merge of an output at a time (:func:`~teacherlm_core.augment.lock.merge_lock`, locally and on
    S3); a second is refused in one line. Ctrl-C or SIGTERM at any point leaves no lock and no temp
    file behind, and the next merge writes every record once.

    Streams: each part file is read a line at a time and written on at once (to ``train.jsonl``,
    its shard's Parquet file a row group at a time, or its shard's quarantine file), so memory is
    bounded by a row group (``ROW_GROUP`` records), whatever the dataset's size; the statistics
    come from the shards' markers and are checked against the records actually read.
    ``progress`` is called with each shard's record count (augmented + quarantined) once it is merged.

    Raises:
        TeacherLMError: a shard unfinished, or a part file changed after its marker was written.
        DataError: every input record was quarantined (the manifest and quarantine are written first).
    """
    with sigterm_as_exit(), merge_lock(output) as check:  # SIGTERM runs the cleanup below, too
        return _merge(output, progress, check)


def _merge(output: str, progress: Callable[[int], None] | None, check: Callable[[], None]) -> dict[str, Any]:
    cfg, plan = load_plan(output)
    fingerprint = plan["fingerprint"]
    successes = _finished_shards(cfg, fingerprint, output)
    if not storage.is_remote(output):  # temps of a merge killed mid-way (kill -9): nothing else cleans them
        storage.remove_stale_temps(output, ".merge-")
    files: dict[str, dict[str, Any]] = {}
    quarantined_total, n_out = 0, 0
    reasons: Counter[str] = Counter()  # only read when nothing was augmented
    train = _Output(storage.join(output, "train.jsonl"), output)
    try:
        with open(train.tmp, "wb") as train_fh:
            for i, done in enumerate(successes):
                shard_dir = cfg.shard_dir(i)
                rel_data = f"data/{shard_name(i, cfg.num_shards)}.parquet"
                rel_q = f"quarantine/{shard_name(i, cfg.num_shards)}.jsonl"
                data = _ParquetShard(storage.join(output, rel_data), output, plan["columns"])
                quarantine = _Output(storage.join(output, rel_q), output)
                n_rejected = 0
                with open(quarantine.tmp, "wb") as q_fh:
                    for part in done["parts"]:
                        for name, meta in sorted(part["files"].items()):
                            for line in _part_lines(storage.join(shard_dir, name), meta["sha256"]):
                                record = json.loads(line)
                                if name.endswith(".quarantine.jsonl"):
                                    q_fh.write(line)
                                    n_rejected += 1
                                    if len(reasons) < 10_000:
                                        reasons[record["reason"].split(" (after")[0][:120]] += 1
                                else:
                                    train_fh.write(line)
                                    data.add(record)
                sha = data.close()
                if sha is not None:
                    files[rel_data] = {"records": data.count, "sha256": sha}
                if n_rejected:
                    files[rel_q] = {"records": n_rejected, "sha256": quarantine.commit()}
                else:
                    quarantine.discard()
                if (data.count, n_rejected) != (done["out"], done["quarantined"]):
                    raise TeacherLMError(
                        f"{shard_dir}: its parts hold {data.count} records and {n_rejected} quarantined, "
                        f"its _SUCCESS says {done['out']} and {done['quarantined']}"
                    )
                n_out += data.count
                quarantined_total += n_rejected
                if progress:
                    progress(data.count + n_rejected)
        files["train.jsonl"] = {"records": n_out, "sha256": train.commit()}
    finally:
        # Every temp file of this process, however the merge ends (Ctrl-C, SIGTERM, an error), even
        # one an interrupt hit between its creation and the line that would have tracked it.
        folder = tempfile.gettempdir() if storage.is_remote(output) else output
        for stray in Path(folder).glob(f".merge-{os.getpid()}-*.tmp"):
            stray.unlink(missing_ok=True)
    manifest = _manifest(cfg, plan, successes, files)
    n_in = manifest["counts"]["input"]
    if n_in != n_out + quarantined_total:
        raise AssertionError(
            f"counts do not reconcile: in={n_in} out={n_out} quarantined={quarantined_total}"
        )
    check()  # still this output's one merge (an S3 lease not lost while stalled)
    manifest = redact_document(manifest)  # nothing secret in a manifest or card (URL credentials, keys)
    storage.write_text(storage.join(output, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True))
    storage.write_text(storage.join(output, CARD), dataset_card(manifest))
    _remove_orphaned_temp_files(output)
    if n_out == 0:  # a complete record of the failure is written; nothing downstream can use it
        top = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
        raise DataError(
            storage.join(output, "quarantine"),
            None,
            None,
            f"every one of the {n_in} input records was quarantined, nothing was augmented ({top})",
        )
    return manifest


def _finished_shards(cfg: AugmentConfig, fingerprint: str, output: str) -> list[dict[str, Any]]:
    """Every shard's ``_SUCCESS`` record, in shard order.

    Raises:
        TeacherLMError: a shard unfinished, or finished for another plan (naming them and how to run them).
    """
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
            "run them (`teacherlm augment --shard-index I` into this output, or `teacherlm augment shard "
            "--shard-index I` and merge its output too); finished shards and parts are skipped"
        )
    return successes


def _manifest(
    cfg: AugmentConfig,
    plan: dict[str, Any],
    successes: list[dict[str, Any]],
    files: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The output's ``manifest.json``: counts, chain-of-thought consistency, tokens, every shard and
    file with its sha256, the run's config, identity and columns (before redaction)."""
    n_out = files["train.jsonl"]["records"]
    quarantined_total = sum(meta["records"] for rel, meta in files.items() if rel.startswith("quarantine/"))
    n_in = sum(d["in"] for d in successes)
    checked = sum(d["cot_checked"] for d in successes)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "augmented",
        "dry_run": cfg.dry_run,
        "teacherlm_version": __version__,
        "input": cfg.input,
        "teacher": cfg.teacher_label,
        "teacher_origin": provenance(cfg.teacher),
        "fields": list(cfg.fields),
        "counts": {"input": n_in, "output": n_out, "quarantined": quarantined_total},
        "chain_of_thought_consistency": {
            "checked": checked,
            "consistent": sum(d["cot_consistent"] for d in successes),
            "rate": (sum(d["cot_consistent"] for d in successes) / checked) if checked else None,
        },
        "tokens_generated": sum(d["tokens"] for d in successes),
        "tokens_kept": sum(d.get("tokens_kept", d["tokens"]) for d in successes),
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
        "fingerprint": plan["fingerprint"],
    }


def _remove_orphaned_temp_files(output: str) -> None:
    """Delete the ``*.tmp`` files that writers killed mid-write (``kill -9``, an evicted pod) left
    in a local output: every shard is complete and the manifest written, so none is in use by a
    run that counts (a straggling duplicate writer of a finished shard loses its write, nothing
    else). Object stores have none: their writes are whole objects."""
    if storage.is_remote(output):
        return
    root = Path(output)
    # Only where a run writes, and only our temp names (".<target>.<random>.tmp"): an --output that
    # also holds other things keeps them.
    places = [root, root / "data", root / "quarantine", root / "inputs", *root.glob("shards/*")]
    for place in places:
        for path in place.glob(".*.tmp"):
            if path.is_file():
                path.unlink(missing_ok=True)


_DRY_RUN_NOTE = """
> **Dry run: not training data.** Every explanation is a deterministic placeholder written without
> a model (`teacherlm augment --dry-run`), to check storage, sharding, fan-out and merge at scale.
"""


def add_card_section(output: str, heading: str, markdown: str) -> str:
    """Append ``## heading`` and ``markdown`` to the dataset card of ``output``; returns the card's URI."""
    uri = storage.join(output, CARD)
    storage.write_text(uri, storage.read_text(uri) + f"\n## {heading}\n\n{markdown}\n")
    return uri


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
{_DRY_RUN_NOTE if m.get("dry_run") else ""}
Every sample of `{m["input"]}` with explanations written by the teacher **{m["teacher"]}**{origin}, as in
TeacherLM (arXiv 2310.19019): {", ".join(f"`{f}`" for f in m["fields"])}. The teacher is
answer-conditioned: it explains the gold answer, it does not guess it.

| | count |
|---|---:|
| input records | {c["input"]} |
| augmented | {c["output"]} |
| quarantined (see `quarantine/`, each with its line and reason) | {c["quarantined"]} |
| generated tokens | {m["tokens_generated"]} |
| kept tokens (the explanations' text; the rest was a stop string or past it) | {m["tokens_kept"]} |
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

Engine: `{m["identity"]["engine"]["name"]}`. Settings: `{json.dumps({k: m["config"][k] for k in ("max_new_tokens", "temperature", "top_p", "seed", "max_retries", "num_shards")})}`
"""
