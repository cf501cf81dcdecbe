"""Writing a built dataset: split files, the dedup report and ``manifest.json``.

Layout of an output directory::

    train.jsonl  validation.jsonl  test.jsonl     (and/or .parquet with the same columns)
    dedup.jsonl                                   removed and flagged duplicates, with the id they duplicate
    quarantine/rejected.jsonl                     rejected rows (imports only, when there are any)
    manifest.json                                 counts, sha256 of every file, schema version, provenance

Every hashed file is a pure function of the inputs (no timestamps, stable ordering, sorted
JSON keys in the manifest), so rebuilding with the same inputs reproduces every checksum.
The manifest is written last and atomically: its presence marks a complete build.

:class:`SplitWriter` streams: records are appended to per-split files in a work directory (JSONL
hashed as it is written; Parquet written afterwards from that JSONL a row group at a time, once
the split's column types are known), counted as they pass, and moved into place together.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from ..parquet import ColumnKinds
from ..storage import atomic_temp, sha256_file
from .tasks.base import SPLITS

__all__ = [
    "DEDUP_REPORT",
    "FORMATS",
    "MANIFEST",
    "QUARANTINE",
    "ROW_GROUP",
    "JsonlFile",
    "RecordCounts",
    "SplitWriter",
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
ROW_GROUP = 4096  # records per Parquet row group: what a Parquet split file holds in memory at once


def file_entry(root: Path, path: Path, records: int) -> dict[str, Any]:
    """The manifest entry of one written file."""
    return {
        "path": path.relative_to(root).as_posix(),
        "records": records,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
    }


class RecordCounts:
    """``{"total": n, "splits": {split: n}, "tasks": {task: {split: n}}}``, one record at a time."""

    def __init__(self) -> None:
        self.splits: Counter[str] = Counter()
        self.tasks: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, rec: dict[str, Any]) -> None:
        self.splits[rec["split"]] += 1
        self.tasks[rec["task"]][rec["split"]] += 1

    def result(self) -> dict[str, Any]:
        """The counts, keys in a stable order."""
        return {
            "total": sum(self.splits.values()),
            "splits": {s: self.splits[s] for s in _split_order(self.splits)},
            "tasks": {t: {s: c[s] for s in _split_order(c)} for t, c in sorted(self.tasks.items())},
        }


def count_records(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """:meth:`RecordCounts.result` of ``records``."""
    counts = RecordCounts()
    for rec in records:
        counts.add(rec)
    return counts.result()


def _split_order(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [s for s in SPLITS if s in names] + sorted(names - set(SPLITS))


def clean_outputs(output_dir: Path, *, keep_quarantine: bool = False) -> None:
    """Remove what an earlier build wrote here (only our own file names, and the work directories
    ``.import-*`` / ``.write-*`` of a build that was killed), so nothing stale survives."""
    for pattern in (".import-*", ".write-*"):
        for stale in output_dir.glob(pattern):
            shutil.rmtree(stale, ignore_errors=True)
    for split in SPLITS:
        for fmt in FORMATS:
            (output_dir / f"{split}.{fmt}").unlink(missing_ok=True)
    for name in (MANIFEST, DEDUP_REPORT) if keep_quarantine else (MANIFEST, DEDUP_REPORT, QUARANTINE):
        (output_dir / name).unlink(missing_ok=True)


class JsonlFile:
    """A JSONL file written a record at a time, its sha256 computed as it goes."""

    def __init__(self, path: Path):
        self.path, self.count, self.sha256 = path, 0, hashlib.sha256()
        self._fh: IO[bytes] = path.open("wb")

    def add(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, ensure_ascii=False, allow_nan=False).encode() + b"\n"
        self._fh.write(line)
        self.sha256.update(line)
        self.count += 1

    def close(self) -> None:
        """Flush to disk (fsync) and close."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def move_to(self, root: Path, name: str) -> dict[str, Any]:
        """Close, move to ``root / name`` (atomic on one filesystem); returns its manifest entry."""
        if not self._fh.closed:
            self.close()
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, path)
        return {
            "path": path.relative_to(root).as_posix(),
            "records": self.count,
            "bytes": path.stat().st_size,
            "sha256": self.sha256.hexdigest(),
        }


class SplitWriter:
    """Kept records to one file per split and format, streamed; nothing appears in the output
    directory before :meth:`commit`.

    Args:
        work: an existing work directory on the output's filesystem (the caller removes it).
        formats: ``"jsonl"`` and/or ``"parquet"``.

    Attributes:
        counts: :class:`RecordCounts` of every record added.

    Raises:
        ValueError: ``formats`` is empty or names an unknown format.
    """

    def __init__(self, work: Path, formats: Iterable[str]):
        self.formats = list(formats)
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats must be among {FORMATS}, got {self.formats}")
        self.work = work
        self.counts = RecordCounts()
        self._files: dict[str, JsonlFile] = {}
        self._kinds: dict[str, ColumnKinds] = defaultdict(ColumnKinds)

    def add(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` to its split (``rec["split"]``); splits may come in any order."""
        split = rec["split"]
        out = self._files.get(split)
        if out is None:
            out = self._files[split] = JsonlFile(self.work / f"out-{len(self._files)}.jsonl")
        out.add(rec)
        if "parquet" in self.formats:
            self._kinds[split].add(rec)
        self.counts.add(rec)

    def commit(self, output_dir: Path) -> dict[str, dict[str, Any]]:
        """Write the Parquet files (if asked), move every file into ``output_dir``; returns the
        manifest ``files`` entries, splits in their stable order."""
        staged: dict[str, Path] = {}
        for split, out in self._files.items():
            out.close()
            if "parquet" in self.formats:
                staged[split] = self._parquet(out.path, self._kinds[split].types())
        files: dict[str, dict[str, Any]] = {}
        for split in _split_order(self._files):
            for fmt in self.formats:
                name = f"{split}.{fmt}"
                if fmt == "jsonl":
                    entry = self._files[split].move_to(output_dir, name)
                else:
                    os.replace(staged[split], output_dir / name)
                    entry = file_entry(output_dir, output_dir / name, self._files[split].count)
                files[name] = entry | {"split": split, "format": fmt}
        return files

    def _parquet(self, jsonl: Path, types: dict[str, str]) -> Path:
        import pyarrow.parquet as pq

        from ..parquet import table

        path, writer, schema = jsonl.with_suffix(".parquet"), None, None
        with jsonl.open(encoding="utf-8") as fh:
            while rows := [json.loads(line) for line in itertools.islice(fh, ROW_GROUP)]:
                t = table(rows, types)
                if writer is None:
                    schema, writer = t.schema, pq.ParquetWriter(path, t.schema)
                elif t.schema != schema:
                    t = t.cast(schema)
                writer.write_table(t)
        writer.close()
        return path


def write_splits(
    output_dir: Path, records: Iterable[dict[str, Any]], formats: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Write one file per split and format (streamed by :class:`SplitWriter`); returns the
    manifest ``files`` entries.

    Raises:
        ValueError: ``formats`` is empty or names an unknown format.
    """
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".write-") as work:
        writer = SplitWriter(Path(work), formats)
        for rec in records:
            writer.add(rec)
        return writer.commit(output_dir)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), keys sorted so equal content gives equal bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = atomic_temp(path.parent, f".{path.name}.")
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
