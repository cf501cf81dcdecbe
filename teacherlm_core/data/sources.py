"""Read the rows of an import source: a local file, a ``datasets`` directory, or a Hub id.

Every reader yields ``(line, row_or_error, raw)`` like :func:`teacherlm_core.schema.iter_raw_records`:
``line`` is the 1-based line of a JSONL/CSV file, the record number of a JSON array or the row
of a Parquet file or ``datasets`` split. A broken row is yielded as a
:class:`~teacherlm_core.errors.DataError` (so it can be quarantined); a broken whole file raises.

Supported sources:

* ``*.jsonl`` / ``*.json`` (JSON Lines, or one JSON array of objects), ``*.csv`` / ``*.tsv``,
  ``*.parquet``;
* a directory written by ``datasets.Dataset(Dict).save_to_disk`` (``datasets.load_from_disk``),
  or any other directory of data files (``datasets.load_dataset(path)``, split names inferred);
* otherwise a Hugging Face Hub id such as ``tasksource/ecqa`` (``datasets.load_dataset``, needs
  network access the first time, then the local cache).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..schema import PARQUET_MAGIC, UTF8_BOM, iter_raw_records

__all__ = ["FILE_SUFFIXES", "Row", "SourcePart", "open_source"]

Row = tuple[int, dict[str, Any] | DataError, Any]
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


@dataclass
class SourcePart:
    """One readable part of a source (a file, or one split of a dataset).

    Attributes:
        label: how errors name it: the path, or ``<source>[<split>]``.
        split: the source's own split name; ``None`` for a plain file.
        columns: the column names when known before reading rows (CSV header, Parquet schema,
            ``datasets`` features); ``None`` for JSON, where every row says its own keys.
        header_line: the line an error about a missing column points at (CSV: 1).
        rows: the row iterator.
    """

    label: str
    split: str | None
    columns: list[str] | None
    header_line: int | None
    rows: Iterator[Row]


def open_source(
    source: str, *, hub_config: str | None = None, hub_revision: str | None = None
) -> list[SourcePart]:
    """Open ``source`` and return its parts; a missing or unreadable source raises DataError."""
    path = Path(source)
    if path.is_dir():
        return _open_dataset_dir(source)
    if path.is_file():
        if path.stat().st_size == 0:
            raise DataError(source, None, None, "file is empty")
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            return [_open_csv(source, "\t" if suffix == ".tsv" else ",")]
        if suffix in (".json", ".jsonl", ".parquet"):  # which of them is told by the content, not the name
            if _is_parquet(source):
                return [_open_parquet(source)]
            return [SourcePart(source, None, None, None, _json_rows(source))]
        raise DataError(
            source, None, None, f"unknown file type {suffix!r} (use one of {', '.join(FILE_SUFFIXES)})"
        )
    if (
        path.suffix.lower() in FILE_SUFFIXES
        or "\\" in source
        or source.startswith((".", "/"))
        or not _HUB_ID.match(source)
    ):
        raise DataError(source, None, None, "no such file or directory")
    return _open_hub(source, hub_config, hub_revision)


def _is_parquet(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def _json_rows(path: str) -> Iterator[Row]:
    with open(path, "rb") as fh:
        head = fh.read(4096).removeprefix(UTF8_BOM).lstrip()
    if not head.startswith(b"["):
        yield from iter_raw_records(path)
        return
    try:
        with open(path, encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(path, line, None, f"not a valid JSON array: {exc}") from exc
    for i, rec in enumerate(data, start=1):
        if isinstance(rec, dict):
            yield i, rec, rec
        else:
            yield i, DataError(path, i, None, f"expected a JSON object, got {type(rec).__name__}"), rec


def _open_csv(path: str, delimiter: str) -> SourcePart:
    fh = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by the generator
    try:
        reader = csv.DictReader(fh, delimiter=delimiter)
        columns = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as exc:
        fh.close()
        raise DataError(path, 1, None, f"unreadable CSV header: {exc}") from exc
    if not columns:
        fh.close()
        raise DataError(path, 1, None, "CSV file has no header row")

    def rows() -> Iterator[Row]:
        with fh:
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:  # the decoder cannot resynchronise: stop here
                    raise DataError(path, reader.line_num + 1, None, f"not valid UTF-8: {exc}") from exc
                except csv.Error as exc:  # the bad line is consumed; the next one is read normally
                    reason = f"malformed CSV row: {exc}"
                    yield reader.line_num, DataError(path, reader.line_num, None, reason), None
                    continue
                extra = row.pop(None, None) or []  # type: ignore[call-overload]  # values past the header
                missing = sum(v is None for v in row.values())
                if extra or missing:
                    reason = (
                        f"row has {len(columns) + len(extra) - missing} fields, the header has {len(columns)}"
                    )
                    yield (
                        reader.line_num,
                        DataError(path, reader.line_num, None, reason),
                        row | {"_extra": extra},
                    )
                    continue
                yield reader.line_num, row, row

    return SourcePart(path, None, columns, 1, rows())


def _open_parquet(path: str) -> SourcePart:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(path, None, None, f"not a readable Parquet file: {exc}") from exc

    def rows() -> Iterator[Row]:
        n = 0
        for batch in pf.iter_batches():
            for rec in batch.to_pylist():
                n += 1
                yield n, rec, rec

    return SourcePart(path, None, list(pf.schema_arrow.names), None, rows())


def _dataset_parts(source: str, ds: Any) -> list[SourcePart]:
    import datasets

    if isinstance(ds, datasets.Dataset):
        ds = {None: ds}
    parts = []
    for split, d in ds.items():
        label = source if split is None else f"{source}[{split}]"
        parts.append(
            SourcePart(
                label, split, list(d.column_names), None, ((i, r, r) for i, r in enumerate(d, start=1))
            )
        )
    return parts


def _open_dataset_dir(source: str) -> list[SourcePart]:
    import datasets

    path = Path(source)
    saved = (path / "dataset_dict.json").exists() or (path / "state.json").exists()
    try:
        ds = datasets.load_from_disk(source) if saved else datasets.load_dataset(source)
    except Exception as exc:  # datasets raises many types; the user needs the message
        how = "load_from_disk" if saved else "load_dataset"
        raise DataError(source, None, None, f"cannot read this directory with datasets.{how}: {exc}") from exc
    return _dataset_parts(source, ds)


def _open_hub(source: str, config: str | None, revision: str | None) -> list[SourcePart]:
    import datasets

    try:
        ds = datasets.load_dataset(source, config, revision=revision)
    except Exception as exc:  # offline, unknown id, gated, ...
        raise DataError(
            source, None, None, f"not a local file, and loading it from the Hugging Face Hub failed: {exc}"
        ) from exc
    return _dataset_parts(source, ds)
