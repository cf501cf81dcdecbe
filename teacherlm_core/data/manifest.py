"""Writing a built dataset: split files, the dedup report and ``manifest.json``.

Layout of an output directory::

    train.jsonl  validation.jsonl  test.jsonl     (and/or .parquet with the same columns)
    dedup.jsonl                                   removed and flagged duplicates, with the id they duplicate
    quarantine/rejected.jsonl                     rejected rows (imports only, when there are any)
    manifest.json                                 counts, sha256 of every file, schema version, provenance

Every hashed file is a pure function of the inputs (no timestamps, stable ordering, sorted
JSON keys in the manifest), so rebuilding with the same inputs reproduces every checksum.
The manifest is written last and atomically: its presence marks a complete build.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..schema import write_jsonl, write_parquet
from ..storage import sha256_file
from .tasks.base import SPLITS

__all__ = [
    "DEDUP_REPORT",
    "FORMATS",
    "MANIFEST",
    "QUARANTINE",
    "clean_outputs",
    "count_records",
    "file_entry",
    "read_manifest",
    "sha256_file",
    "write_json",
    "write_splits",
]

FORMATS = ("jsonl", "parquet")
MANIFEST = "manifest.json"
DEDUP_REPORT = "dedup.jsonl"
QUARANTINE = "quarantine/rejected.jsonl"


def file_entry(root: Path, path: Path, records: int) -> dict[str, Any]:
    """The manifest entry of one written file."""
    return {
        "path": path.relative_to(root).as_posix(),
        "records": records,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


def count_records(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``{"total": n, "splits": {split: n}, "tasks": {task: {split: n}}}``, keys in a stable order."""
    splits: Counter[str] = Counter()
    tasks: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in records:
        splits[rec["split"]] += 1
        tasks[rec["task"]][rec["split"]] += 1
    return {
        "total": sum(splits.values()),
        "splits": {s: splits[s] for s in _split_order(splits)},
        "tasks": {t: {s: c[s] for s in _split_order(c)} for t, c in sorted(tasks.items())},
    }


def _split_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def clean_outputs(output_dir: Path) -> None:
    """Remove what an earlier build wrote here (only our own file names), so nothing stale survives."""
    for split in SPLITS:
        for fmt in FORMATS:
            (output_dir / f"{split}.{fmt}").unlink(missing_ok=True)
    for name in (MANIFEST, DEDUP_REPORT, QUARANTINE):
        (output_dir / name).unlink(missing_ok=True)


def write_splits(
    output_dir: Path, records: list[dict[str, Any]], formats: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Write one file per split and format; returns the manifest ``files`` entries."""
    formats = list(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be among {FORMATS}, got {formats}")
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_split[rec["split"]].append(rec)
    files: dict[str, dict[str, Any]] = {}
    for split in _split_order(by_split):
        for fmt in formats:
            path = output_dir / f"{split}.{fmt}"
            writer = write_jsonl if fmt == "jsonl" else write_parquet
            n = writer(path, by_split[split])
            files[path.name] = file_entry(output_dir, path, n) | {"split": split, "format": fmt}
    return files


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), keys sorted so equal content gives equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(output_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Load ``manifest.json`` from a built dataset directory."""
    with open(Path(output_dir) / MANIFEST, encoding="utf-8") as fh:
        return json.load(fh)
