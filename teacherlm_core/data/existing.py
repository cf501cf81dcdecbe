"""A user's own dataset, already in the data contract, taken into a pipeline run.

``teacherlm data import`` (or any tool) writes a dataset directory with one file per split
(``train.jsonl``, ``test.parquet``...). The pipelines take such a directory as a URI in place of
the built-in suite (``seed_data`` for the teacher, ``task_data`` for augmentation and the
students' evaluation); :func:`copy_dataset` checks it record by record and writes the run's own
copy, with the same layout and a manifest, so every later stage reads a checked, checksummed
snapshot and not a location that may change under it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .. import __version__, storage
from ..errors import DataError
from ..records import QuarantineWriter, read_samples, write_jsonl
from ..schema import SCHEMA_VERSION, AnnotatedSample, Sample
from .manifest import MANIFEST, QUARANTINE, clean_outputs, count_records, file_entry, write_json
from .splits import SPLIT_FORMATS
from .tasks.base import SPLITS

__all__ = ["copy_dataset"]


def _split_files(root: Path) -> dict[str, Path]:
    """``{split: file}`` of a dataset directory (JSONL before Parquet), or a file as its ``train`` split."""
    if root.is_file():
        return {"train": root}
    found = {}
    for split in SPLITS:
        for ext in SPLIT_FORMATS:
            if (root / f"{split}.{ext}").is_file():
                found[split] = root / f"{split}.{ext}"
                break
    return found


def copy_dataset(
    source: str, output_dir: str | Path, *, annotated: bool = False, require: tuple[str, ...] = ("train",)
) -> dict[str, Any]:
    """Check the dataset at ``source`` record by record and write its splits into ``output_dir``.

    Args:
        source: a dataset directory (``{split}.jsonl`` or ``{split}.parquet`` for train,
            validation, test), or one file (its ``train`` split); a local path or an ``s3://`` URI.
        output_dir: where ``{split}.jsonl``, ``quarantine/rejected.jsonl`` (when a record is
            rejected) and ``manifest.json`` go.
        annotated: every record must carry the three explanations (seed data for the teacher).
        require: splits that must be present with at least one valid record.

    Every column of a valid record is kept as it is; a rejected record goes to quarantine with
    its file, line, field and reason, so ``records.in == out + quarantined``.

    Returns:
        The manifest (``kind: "source"``, ``source``, ``records``, ``counts``, ``files``).

    Raises:
        DataError: the source is missing or holds none of the required splits, or a required split
            keeps no valid record.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_outputs(out)
    model = AnnotatedSample if annotated else Sample
    with tempfile.TemporaryDirectory(prefix="teacherlm-source-") as tmp:
        if storage.is_remote(source):
            root = Path(tmp)
            if not storage.download_dir(source, tmp):  # not a prefix: one object, its train split
                root = Path(tmp) / source.rstrip("/").rsplit("/", 1)[-1]
                root.write_bytes(storage.read_bytes(source))
        else:
            root = Path(source)
            if not root.exists():
                raise DataError(
                    source, None, None, "no such dataset (a directory with train.jsonl, or a file)"
                )
        files = _split_files(root)
        missing = [s for s in require if s not in files]
        if missing:
            raise DataError(
                source, None, None, f"no {missing[0]}.jsonl or {missing[0]}.parquet in this dataset"
            )
        kept: dict[str, list[dict[str, Any]]] = {}
        n_in = 0
        parts = []
        with QuarantineWriter(out / QUARANTINE) as quarantine:
            for split, path in files.items():
                rejected = quarantine.count
                rows = {line: raw for line, raw in _raw_rows(path)}
                records = []
                for line, _ in read_samples(path, on_error="quarantine", quarantine=quarantine, model=model):
                    record = dict(rows[line])
                    record["split"] = split
                    records.append(record)
                n_in += len(records) + quarantine.count - rejected
                kept[split] = records
                label = source if root.is_file() else storage.join(source, path.name)
                parts.append(
                    {
                        "label": label,
                        "split": split,
                        "sha256": storage.sha256_file(path),
                        "rows": len(records) + quarantine.count - rejected,
                    }
                )
            n_quarantined = quarantine.count
    empty = [s for s in require if not kept.get(s)]
    if empty:
        where = f"; see {out / QUARANTINE}" if n_quarantined else ""
        raise DataError(source, None, None, f"no valid record in its {empty[0]} split{where}")
    written = {}
    for split, records in kept.items():
        path = out / f"{split}.jsonl"
        written[path.name] = file_entry(out, path, write_jsonl(path, records)) | {
            "split": split,
            "format": "jsonl",
        }
    all_records = [r for records in kept.values() for r in records]
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "source",
        "generator": {"name": "teacherlm-copy-dataset", "package_version": __version__},
        "source": {"uri": source, "parts": parts, "annotated": annotated},
        "tasks": sorted({r["task"] for r in all_records if r.get("task")}),
        "counts": count_records(all_records),
        "records": {"in": n_in, "out": len(all_records), "quarantined": n_quarantined, "duplicates": 0},
        "files": written,
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def _raw_rows(path: Path):
    """``(line, raw record)`` of every parseable line: the columns a valid record keeps as they are."""
    from ..records import iter_raw_records

    for line, item, _ in iter_raw_records(path):
        if isinstance(item, dict):
            yield line, item
