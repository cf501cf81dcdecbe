"""Import a real dataset: ``teacherlm data import --source S --mapping M --output DIR``.

Rows are read from the source (:mod:`.sources`), turned into contract records by the mapping
(:mod:`.mapping`, :mod:`.convert`), checked, deduplicated (:mod:`.dedup`) and written with a manifest
(:mod:`.manifest`). A row that cannot be converted goes to the quarantine file with its file,
line and field, and the manifest reconciles ``in = out + quarantined + duplicates``.

It streams, so TeacherData-2M imports in bounded memory: converted records are spooled to disk
(:class:`~.spool.Spool`) in a work directory ``.import-*`` inside the output directory, ids are
checked for duplicates in a :class:`~teacherlm_core.hashset.SeenIds` table (16 bytes a slot),
dedup streams over the spool (:func:`~.dedup.dedup_stream`) and the kept records stream into the
split files (:class:`~.manifest.SplitWriter`). Nothing reaches the output's own names before
every file is complete; a failed import removes its work directory and anything it wrote but the
quarantine, and the next import removes the work directory of one that was killed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from .. import __version__, storage
from ..errors import ConfigError, DataError
from ..hashset import SeenIds
from ..records import QuarantineWriter
from ..schema import SCHEMA_VERSION
from .convert import convert_row, plain
from .dedup import NEAR_THRESHOLD, STEP_EXACT, STEP_NEAR, dedup_stream
from .manifest import (
    DEDUP_REPORT,
    MANIFEST,
    QUARANTINE,
    JsonlFile,
    SplitWriter,
    clean_outputs,
    file_entry,
    sha256_file,
    write_json,
)
from .mapping import ImportMapping, load_mapping
from .sources import SourcePart, open_source
from .spool import Spool
from .tasks.base import SPLITS

__all__ = [
    "DEFAULT_SPLIT_NAMES",
    "IMPORTER",
    "IMPORTER_VERSION",
    "STEP_EXACT",
    "STEP_NEAR",
    "WORK_PREFIX",
    "import_dataset",
]

IMPORTER = "teacherlm-import"
IMPORTER_VERSION = "1"
DEFAULT_SPLIT_NAMES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
WORK_PREFIX = ".import-"  # the work directory inside the output directory
_LINE_BITS = 40  # a first-seen id's place: part number << 40 | line
Progress = Callable[[str, int], None]


def _plan(
    source: str | Path | Mapping[str, str | Path], m: ImportMapping, split: str
) -> tuple[list[tuple[str, SourcePart]], list[str], str | dict[str, str]]:
    """Which part of the source goes to which output split; returns (plan, skipped splits, spec)."""
    if split not in SPLITS:
        raise ConfigError("--split", [f"must be one of {', '.join(SPLITS)}, got {split!r}"])
    if isinstance(source, Mapping):
        bad = [f"unknown split {s!r} (use {', '.join(SPLITS)})" for s in source if s not in SPLITS]
        if bad:
            raise ConfigError("--source", bad)
        plan = [
            (s, p)
            for s, path in source.items()
            for p in open_source(str(path), hub_config=m.hub_config, hub_revision=m.hub_revision)
        ]
        return plan, [], {s: str(p) for s, p in source.items()}
    plan, skipped = [], []
    for part in open_source(str(source), hub_config=m.hub_config, hub_revision=m.hub_revision):
        if part.split is None:
            plan.append((split, part))
            continue
        names = m.splits if m.splits is not None else DEFAULT_SPLIT_NAMES
        if part.split in names:
            plan.append((names[part.split], part))
        else:
            skipped.append(part.split)
    if not plan:
        raise DataError(
            str(source),
            None,
            None,
            f"none of its splits {skipped} is mapped to train/validation/test (set 'splits' in the mapping)",
        )
    return plan, skipped, str(source)


def _read(
    plan: list[tuple[str, SourcePart]],
    m: ImportMapping,
    spool: Spool,
    quarantine: QuarantineWriter,
    on_error: str,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    """Convert every row of the plan into ``spool``; bad rows go to ``quarantine`` (or raise).
    Returns the parts' provenance entries."""
    seen_ids = SeenIds(1 << 16)  # grows with the ids: 16 bytes a slot, not a dict of strings
    parts_info = []
    n = 0
    for p, (out_split, part) in enumerate(plan):
        missing = [c for c in m.required_columns() if part.columns is not None and c not in part.columns]
        if missing:
            reason = f"column missing (the source has: {', '.join(part.columns or [])})"
            raise DataError(part.label, part.header_line, missing[0], reason)
        rows = 0
        for line, item, raw in part.rows:
            rows += 1
            if progress and rows % 500 == 0:
                progress(part.label, 500)
            try:
                if isinstance(item, DataError):
                    raise item
                rec = convert_row(
                    m, item, label=part.label, line=line, split=out_split, row_key=part.split or out_split
                )
                first = seen_ids.first_line(rec["id"], p << _LINE_BITS | line)
                if first != p << _LINE_BITS | line:
                    where = f"{plan[first >> _LINE_BITS][1].label}:{first & ((1 << _LINE_BITS) - 1)}"
                    raise DataError(
                        part.label, line, m.id or "id", f"duplicate id {rec['id']!r} (first seen at {where})"
                    )
            except DataError as exc:
                if on_error == "raise":
                    raise
                quarantine.add(exc, plain(raw))
                continue
            spool.add(n, out_split, rec)
            n += 1
        if progress:
            progress(part.label, rows % 500)
        info = {"label": part.label, "source_split": part.split, "split": out_split, "rows": rows}
        if Path(part.label).is_file():
            info["sha256"] = sha256_file(part.label)
        parts_info.append(info)
    return parts_info


def import_dataset(
    source: str | Path | Mapping[str, str | Path],
    mapping: str | Path | dict[str, Any] | ImportMapping,
    output_dir: str | Path,
    *,
    split: str = "train",
    formats: Sequence[str] = ("jsonl",),
    on_error: Literal["quarantine", "raise"] = "quarantine",
    near_threshold: float = NEAR_THRESHOLD,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Import ``source`` through ``mapping`` into ``output_dir``; returns the manifest.

    Args:
        source: a local JSON/JSONL/CSV/TSV/Parquet file, a ``datasets`` directory, a Hub id, or
            ``{split: path}`` for a dataset shipped as one file per split.
        mapping: a built-in mapping name (``ecqa``, ``strategyqa``, ``creak``, ``mmlu``), a
            YAML path, a dict, or an :class:`ImportMapping`.
        output_dir: where split files, ``dedup.jsonl``, ``quarantine/`` and ``manifest.json`` go.
        split: the output split of a plain file (multi-split sources use the mapping's ``splits``).
        formats: ``"jsonl"`` and/or ``"parquet"``.
        on_error: ``"quarantine"`` bad rows and go on, or ``"raise"`` at the first one.
        near_threshold: MinHash Jaccard threshold for near-duplicates.
        progress: optional ``callback(label, n)``: ``n`` more rows of the part ``label`` read,
            then ``n`` more records through each dedup pass (``label`` :data:`STEP_EXACT`, then
            :data:`STEP_NEAR`).

    Memory stays bounded whatever the source's size (peak RSS 107 MiB at 100k records, 116 MiB
    at 1M and at 2M: ``benchmarks/import_scale.py``); the work directory needs about twice the
    converted records' JSON plus ~700 bytes a record of free disk in ``output_dir`` (about 2.5-3
    GB at 2M records of ~360 bytes) until the import ends.

    Raises:
        ConfigError: a bad mapping or split name. DataError: a missing or unreadable source, a
            column missing from the source's header, a bad row with ``on_error="raise"``, or a
            source where no row survives. ValueError: ``formats`` empty or unknown.
        Whatever the error, the output directory is left with no split file, report or
        manifest (the quarantine stays, for the reasons).
    """
    m, mapping_source = (
        (mapping, "<ImportMapping>") if isinstance(mapping, ImportMapping) else load_mapping(mapping)
    )
    plan, skipped, spec = _plan(source, m, split)
    out = Path(output_dir)
    storage.check_writable(out, directory=True)  # before any row is read
    clean_outputs(out)  # and the work directory of an import that was killed
    work = Path(tempfile.mkdtemp(dir=out, prefix=WORK_PREFIX))
    try:
        return _import(
            plan, skipped, spec, m, mapping_source, out, work, formats, on_error, near_threshold, progress
        )
    except BaseException:
        clean_outputs(out, keep_quarantine=True)  # the quarantine says why, and a DataError points at it
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _import(plan, skipped, spec, m, mapping_source, out, work, formats, on_error, near_threshold, progress):
    writer = SplitWriter(work, formats)  # checks the formats before any reading
    with QuarantineWriter(out / QUARANTINE) as quarantine, Spool(work / "spool") as spool:
        parts_info = _read(plan, m, spool, quarantine, on_error, progress)
    n_in = sum(p["rows"] for p in parts_info)
    if not spool.total:
        where = f"; see {out / QUARANTINE}" if quarantine.count else ""
        raise DataError(
            str(spec), None, None, f"no usable rows: {n_in} read, {quarantine.count} rejected{where}"
        )

    report = JsonlFile(work / DEDUP_REPORT)
    dedup = dedup_stream(spool, work, writer.add, report.add, threshold=near_threshold, progress=progress)
    files = writer.commit(out)
    files[DEDUP_REPORT] = report.move_to(out, DEDUP_REPORT)
    counts = {
        "in": n_in,
        "out": dedup["kept"],
        "quarantined": quarantine.count,
        "duplicates": spool.total - dedup["kept"],
    }
    assert counts["in"] == counts["out"] + counts["quarantined"] + counts["duplicates"], counts
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "import",
        "generator": {"name": IMPORTER, "version": IMPORTER_VERSION, "package_version": __version__},
        "source": {"spec": spec, "parts": parts_info, "skipped_splits": skipped},
        "mapping": {"source": mapping_source, "config": m.model_dump(exclude_none=True)},
        "tasks": [m.task],
        "counts": writer.counts.result(),
        "records": counts,
        "dedup": dedup,
        "files": files,
    }
    if quarantine.count:
        manifest["quarantine"] = file_entry(out, out / QUARANTINE, quarantine.count)
    write_json(out / MANIFEST, manifest)
    return manifest
