"""Read the rows of an import source: a local file, a ``datasets`` directory, or a Hub id.

Every reader yields ``(line, row_or_error, raw)`` like :func:`teacherlm_core.schema.iter_raw_records`:
``line`` is the 1-based line of a JSONL/CSV file, the record number of a JSON array or the row
of a Parquet file or ``datasets`` split. A broken row is yielded as a
:class:`~teacherlm_core.errors.DataError` (so it can be quarantined); a broken whole file raises.

Supported sources:

* ``*.jsonl`` / ``*.json`` (JSON Lines, or one JSON array of objects), ``*.csv`` / ``*.tsv``,
  ``*.parquet``; the text formats also gzip- or zstd-compressed (``*.jsonl.gz``, ``*.csv.zst``);
* a directory written by ``datasets.Dataset(Dict).save_to_disk`` (``datasets.load_from_disk``),
  or any other directory of data files (``datasets.load_dataset(path)``, split names inferred);
* otherwise a Hugging Face Hub id such as ``tasksource/ecqa`` (``datasets.load_dataset``, needs
  network access the first time, then the local cache).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..records import (
    MAX_DEPTH,
    PARQUET_MAGIC,
    UTF8_BOM,
    UniqueKeys,
    iter_raw_records,
    open_input,
    record_problem,
)

__all__ = ["FILE_SUFFIXES", "Row", "SourcePart", "open_source"]

Row = tuple[int, dict[str, Any] | DataError, Any]
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
COMPRESSED_SUFFIXES = (".gz", ".zst")
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
        if (
            suffix in COMPRESSED_SUFFIXES
        ):  # what it holds is told by the name before (the content is compressed)
            suffix = Path(path.stem).suffix.lower()
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
        path.suffix.lower() in FILE_SUFFIXES + COMPRESSED_SUFFIXES
        or "\\" in source
        or source.startswith((".", "/"))
        or not _HUB_ID.match(source)
    ):
        raise DataError(source, None, None, "no such file or directory")
    return _open_hub(source, hub_config, hub_revision)


def _is_parquet(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def _read_input(path: str, size: int = -1) -> bytes:
    try:
        with open_input(path) as fh:
            return fh.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, None, None, f"not readable compressed data: {exc}") from exc


def _json_rows(path: str) -> Iterator[Row]:
    head = _read_input(path, 4096).removeprefix(UTF8_BOM).lstrip()
    if not head.startswith(b"["):
        yield from iter_raw_records(path)
        return
    keys = UniqueKeys()
    try:
        text = _read_input(path).decode("utf-8-sig")
        data = json.loads(text, object_pairs_hook=keys)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise DataError(path, line, None, f"not a valid JSON array: {exc}") from exc
    except RecursionError as exc:
        raise DataError(path, None, None, f"not a usable JSON array: nested past {MAX_DEPTH} levels") from exc
    if not isinstance(data, list):
        raise DataError(path, None, None, f"expected a JSON array, got {type(data).__name__}")
    for i, rec in enumerate(data, start=1):
        if not isinstance(rec, dict):
            yield i, DataError(path, i, None, f"expected a JSON object, got {type(rec).__name__}"), rec
        elif (problem := record_problem(rec, text, keys)) is not None:
            yield i, DataError(path, i, *problem), json.dumps(rec, ensure_ascii=True)
        else:
            yield i, rec, rec


_UNDECODABLE = re.compile("[\udc80-\udcff]")  # what ``surrogateescape`` turns a byte that is not UTF-8 into


class _BadBytes(Exception):
    """A physical line that is not valid UTF-8 (raised through the csv reader to :class:`_Lines`' caller)."""


class _Lines:
    """The physical lines of a text file, numbered, for a csv reader; lines can be pushed back.

    Each line is decoded on its own, so a byte that is not UTF-8 costs its line only and is
    reported on its own line (not where a decoder's chunk began). ``taken`` holds the lines the
    reader pulled for the record being read.
    """

    def __init__(self, fh: Any, path: str):
        self.fh, self.path = fh, path
        self.number = 0
        self.pending: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.pending:
            line = self.pending.popleft()
        else:
            try:
                text = self.fh.readline()
            except (OSError, EOFError, zlib.error) as exc:  # compressed data that breaks off
                raise DataError(
                    self.path, self.number + 1, None, f"compressed data breaks off: {exc}"
                ) from exc
            if not text:
                raise StopIteration
            self.number += 1
            line = (self.number, text)
        self.taken.append(line)
        if bad := _UNDECODABLE.search(line[1]):
            offset = len(line[1][: bad.start()].encode("utf-8", "surrogateescape"))
            raise _BadBytes(f"not valid UTF-8 (byte {offset} of the line)")
        return line[1]


def _printable(line: str) -> str:
    """A physical line as quarantine text: without its line end, undecodable bytes as U+FFFD."""
    return line.rstrip("\r\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _open_csv(path: str, delimiter: str) -> SourcePart:
    """A CSV/TSV file as one part; every physical record is one row (or one quarantined error).

    A record the csv module reads over several lines (a quoted field holding newlines) and that
    turns out malformed (an unbalanced quote, a wrong number of fields, a line that is not UTF-8)
    costs only its first line: that line is quarantined and the lines after it are read again as
    records of their own. So a stray quote can never swallow the rest of the file unseen, and
    ``in`` counts the records in the file, not what the parser happened to return.
    """
    # surrogateescape: an undecodable byte becomes a lone surrogate, found per line by _Lines
    fh = io.TextIOWrapper(open_input(path), encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _Lines(fh, path)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        columns = next(reader, [])
    except (_BadBytes, csv.Error) as exc:
        fh.close()
        raise DataError(path, 1, None, f"unreadable CSV header: {exc}") from exc
    if not columns:
        fh.close()
        raise DataError(path, 1, None, "CSV file has no header row")

    def rows() -> Iterator[Row]:
        with fh:
            while True:
                lines.taken.clear()
                try:
                    fields = next(reader)
                    problem = None
                except StopIteration:
                    if not lines.taken:
                        return
                    fields, problem = [], "malformed CSV row: unexpected end of file"
                except _BadBytes as exc:
                    fields, problem = [], str(exc)
                except csv.Error as exc:
                    fields, problem = [], f"malformed CSV row: {exc}"
                if not fields and problem is None:
                    continue  # a blank line
                if problem is None and len(fields) != len(columns):
                    problem = f"row has {len(fields)} fields, the header has {len(columns)}"
                first, text = lines.taken[0]
                if problem is None:
                    row = dict(zip(columns, fields, strict=True))
                    yield first, row, row
                    continue
                if len(lines.taken) > 1:  # a record over several lines: set aside its first line only
                    last = lines.taken[-1][0]
                    problem += (
                        f" (read as one record from line {first} to {last}: an unbalanced quote?"
                        " Only this line is set aside, the lines after it are read again)"
                    )
                    lines.pending.extendleft(reversed(lines.taken[1:]))
                    raw: Any = _printable(text)
                elif fields:
                    raw = dict(zip(columns, fields, strict=False)) | {"_extra": fields[len(columns) :]}
                else:
                    raw = _printable(text)
                yield first, DataError(path, first, None, problem), raw

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
