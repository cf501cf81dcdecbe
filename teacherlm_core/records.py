"""Records in and out: one reader for every format (recognised by content), the writers, the quarantine.

A record that breaks the data contract (:mod:`teacherlm_core.schema`) becomes a
:class:`~teacherlm_core.errors.DataError` naming file, line and field; the caller either stops on it
(``on_error="raise"``) or sends it to a :class:`QuarantineWriter` (``on_error="quarantine"``), so
that ``in = out + quarantined`` always holds.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .errors import DataError
from .schema import REQUIRED, Rejected, Sample, to_data_error

__all__ = [
    "GZIP_MAGIC",
    "MAX_DEPTH",
    "PARQUET_MAGIC",
    "UTF8_BOM",
    "ZSTD_MAGIC",
    "QuarantineWriter",
    "UniqueKeys",
    "detect_format",
    "format_of",
    "iter_jsonl_lines",
    "iter_raw_records",
    "load_samples",
    "open_input",
    "read_samples",
    "record_problem",
    "write_jsonl",
    "write_parquet",
]


class QuarantineWriter:
    """Appends rejected records to a JSONL file, one :class:`Rejected` a line.

    The file is opened lazily, so a clean run leaves no quarantine file behind.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.count = 0
        self._fh = None

    def add(self, error: DataError, raw: Any = None) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        rec = Rejected(source=error.path, line=error.line, field=error.field, reason=error.reason, raw=raw)
        self._fh.write(rec.model_dump_json() + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> QuarantineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


UTF8_BOM = b"\xef\xbb\xbf"
PARQUET_MAGIC = b"PAR1"


class _NonStandard:
    """Stands in for a NaN/Infinity while parsing, so the record can say which field held it."""

    def __init__(self, name: str) -> None:
        self.name = name


def _find_value(value: Any, match, where: str = "") -> tuple[str, Any] | None:
    """``(field path, value)`` of the first value in a record, nested ones included, for which ``match`` holds."""
    if match(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if (found := _find_value(item, match, f"{where}.{key}" if where else str(key))) is not None:
            return found
    return None


MAX_DEPTH = 100
"""How deeply a record's objects and lists may nest; deeper is refused (a reader's, a writer's and
the validator's recursion all stay far from Python's limit)."""
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # how a JSON text spells a UTF-16 surrogate
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _Duplicated(dict):
    """A JSON object in which a key appears twice (:class:`UniqueKeys` marks it; never last-wins silently)."""

    duplicate: str


class UniqueKeys:
    """``object_pairs_hook`` for :func:`json.loads` that marks an object holding a key twice.

    ``found`` turns true at the first such object, so a reader walks a record only then.
    """

    def __init__(self) -> None:
        self.found = False

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record = dict(pairs)
        if len(record) == len(pairs):
            return record
        seen: set[str] = set()
        marked = _Duplicated(record)
        marked.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        self.found = True
        return marked


def _depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar: 0), walked without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _holds_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    return isinstance(value, dict) and any(_LONE_SURROGATE.search(k) for k in value)


def record_problem(record: Any, text: str, keys: UniqueKeys) -> tuple[str | None, str] | None:
    """``(field, reason)`` of what makes a parsed JSON value unusable, or ``None``.

    ``text`` is the JSON it was parsed from, with ``keys`` as its ``object_pairs_hook``: they tell
    cheaply whether the slower checks are needed. Refused: nesting past :data:`MAX_DEPTH`, a key
    given twice in one object (which value was meant?), and a lone UTF-16 surrogate (legal JSON,
    but no UTF-8 can hold it, so no output could be written).
    """
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(record) > MAX_DEPTH:
        return None, f"nested more than {MAX_DEPTH} levels deep"
    if keys.found and (found := _find_value(record, lambda v: isinstance(v, _Duplicated))) is not None:
        return found[0] or None, f"key {found[1].duplicate!r} appears twice in one object"
    if _SURROGATE_ESCAPE.search(text):
        lone = _find_value(record, _holds_lone_surrogate)
        if lone is not None:
            return lone[0] or None, "holds a lone UTF-16 surrogate (\\ud800-\\udfff): not text UTF-8 can hold"
    return None


GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def open_input(path: str) -> io.BufferedIOBase:
    """A local file opened for reading bytes, decompressed when it is gzip or zstd (told by content)."""
    fh = open(path, "rb")  # noqa: SIM115 - the caller closes it
    magic = fh.read(4)
    fh.seek(0)
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=fh)  # type: ignore[return-value]
    if magic == ZSTD_MAGIC:
        import pyarrow as pa

        fh.close()
        return io.BufferedReader(pa.CompressedInputStream(pa.OSFile(path), "zstd"))  # type: ignore[arg-type]
    return fh


def _compression(path: str) -> str | None:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    return "gzip" if magic.startswith(GZIP_MAGIC) else "zstd" if magic == ZSTD_MAGIC else None


def detect_format(path: str | os.PathLike[str]) -> Literal["jsonl", "parquet"]:
    """``"parquet"`` or ``"jsonl"``, recognised by the file's content (never its name).

    Parquet starts with ``PAR1``; JSON lines start (after an optional UTF-8 BOM and blank space)
    with ``{``. A JSON line may end in CRLF. JSON lines compressed with gzip or zstd (``.jsonl.gz``,
    ``.jsonl.zst``, as many datasets ship) are recognised by what they hold.

    Raises:
        DataError: no such file, an empty file, or any other content ("unsupported file type").
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, None, None, "no such file")
    try:
        with open_input(path) as fh:
            head = fh.read(4096)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(path, None, None, f"not readable compressed data: {exc}") from exc
    found = format_of(head, path)
    if found == "parquet" and (how := _compression(path)):
        raise DataError(path, None, None, f"a {how}-compressed Parquet file: decompress it first")
    return found


def format_of(head: bytes, path: str) -> Literal["jsonl", "parquet"]:
    """:func:`detect_format` from a file's first bytes (e.g. the first chunk of a stream); ``path`` names it in errors."""
    if not head:
        raise DataError(path, None, None, "file is empty")
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    text = head.removeprefix(UTF8_BOM).lstrip()
    if text.startswith(b"{"):
        return "jsonl"
    if not text:
        raise DataError(path, None, None, "file holds no records (only blank space)")
    what = "a JSON array (write one object a line)" if text.startswith(b"[") else f"starts with {head[:8]!r}"
    raise DataError(
        path, None, None, f"unsupported file type: expected JSON lines or Parquet, this file {what}"
    )


def iter_raw_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any] | DataError, Any]]:
    """Yield ``(line, record_or_error, raw)`` for each line of a JSONL file or row of a Parquet file.

    The one reader of every command (eval, augment, STaR, train, import): the format is
    recognised by content (:func:`detect_format`), JSON lines may be gzip- or zstd-compressed.
    Whole-file problems (missing, empty, an unsupported type, a Parquet file without the required
    columns, compressed data that breaks off) raise :class:`DataError`; per-line problems
    (malformed JSON, NaN/Infinity, not an object, bad UTF-8, a key given twice, nesting past
    :data:`MAX_DEPTH`, a lone surrogate) are yielded so the caller can quarantine them.
    """
    path = str(path)
    if detect_format(path) == "parquet":
        yield from _iter_parquet(path)
        return
    line = 0
    try:
        with open_input(path) as fh:
            for line, item, raw in iter_jsonl_lines(fh, path):
                yield line, item, raw
    except (OSError, EOFError, zlib.error) as exc:
        if _compression(path) is None:
            raise
        raise DataError(path, line + 1, None, f"compressed data breaks off: {exc}") from exc


def iter_jsonl_lines(
    lines: Iterable[bytes], path: str
) -> Iterator[tuple[int, dict[str, Any] | DataError, Any]]:
    """:func:`iter_raw_records` of JSON lines given as byte lines (a file, or a stream from S3).

    ``path`` names the source in errors; line numbers count from 1, blank lines included.
    """
    nonstandard: list[
        _NonStandard
    ] = []  # filled only when a line holds NaN/Infinity: the walk is skipped otherwise
    keys = UniqueKeys()

    def on_constant(name: str) -> _NonStandard:
        nonstandard.append(value := _NonStandard(name))
        return value

    for lineno, raw in enumerate(lines, start=1):
        if lineno == 1:
            raw = raw.removeprefix(UTF8_BOM)
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield (
                lineno,
                DataError(path, lineno, None, f"not valid UTF-8 (byte {exc.start})"),
                raw.decode("utf-8", "replace"),
            )
            continue
        nonstandard.clear()
        keys.found = False
        try:
            record = json.loads(text, parse_constant=on_constant, object_pairs_hook=keys)
        except json.JSONDecodeError as exc:
            yield (
                lineno,
                DataError(path, lineno, None, f"malformed JSON: {exc.msg} at column {exc.colno}"),
                text.rstrip("\n"),
            )
            continue
        except RecursionError:
            reason = f"nested more than {MAX_DEPTH} levels deep"
            yield lineno, DataError(path, lineno, None, reason), text.rstrip("\r\n")
            continue
        if (problem := record_problem(record, text, keys)) is not None:
            yield lineno, DataError(path, lineno, *problem), text.rstrip("\r\n")
            continue
        if nonstandard and (bad := _find_value(record, lambda v: isinstance(v, _NonStandard))) is not None:
            reason = f"non-standard JSON value {bad[1].name} (JSON has no NaN or Infinity; use null)"
            yield lineno, DataError(path, lineno, bad[0] or None, reason), text.rstrip("\r\n")
            continue
        if not isinstance(record, dict):
            yield (
                lineno,
                DataError(path, lineno, None, f"expected a JSON object, got {type(record).__name__}"),
                text.rstrip("\n"),
            )
            continue
        yield lineno, record, record


def _iter_parquet(path: str) -> Iterator[tuple[int, dict[str, Any] | DataError, Any]]:
    import pyarrow.parquet as pq

    from .parquet import read_records

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise DataError(path, None, None, f"not a readable Parquet file: {exc}") from exc
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise DataError(
            path, None, missing[0], f"column missing from the Parquet file (has: {', '.join(names)})"
        )
    for row, record in enumerate(read_records(path), start=1):
        if (bad := _find_value(record, lambda v: isinstance(v, float) and not math.isfinite(v))) is not None:
            reason = f"non-standard number {bad[1]} (JSON has no NaN or Infinity; use null)"
            yield row, DataError(path, row, bad[0], reason), repr(record)
            continue
        yield row, record, record


def read_samples(
    path: str | os.PathLike[str],
    *,
    on_error: Literal["raise", "quarantine"] = "raise",
    quarantine: QuarantineWriter | None = None,
    model: type[Sample] = Sample,
) -> Iterator[tuple[int, Sample]]:
    """Yield ``(line, sample)`` for every valid record; ids must be unique within the file.

    Args:
        path: a local JSONL or Parquet file.
        on_error: ``"raise"`` stops at the first bad record; ``"quarantine"`` hands it to
            ``quarantine`` and goes on.
        quarantine: where rejected records go (required with ``on_error="quarantine"``).
        model: the record model (``Sample`` or ``AugmentedSample``).
    """
    if on_error == "quarantine" and quarantine is None:
        raise ValueError("on_error='quarantine' needs a QuarantineWriter")
    seen: dict[str, int] = {}
    for lineno, item, raw in iter_raw_records(path):
        if isinstance(item, dict):
            try:
                sample = model.model_validate(item)
            except ValidationError as exc:
                item = to_data_error(str(path), lineno, exc)
            else:
                first = seen.setdefault(sample.id, lineno)
                if first == lineno:
                    yield lineno, sample
                    continue
                item = DataError(
                    str(path), lineno, "id", f"duplicate id {sample.id!r} (first seen on line {first})"
                )
        if on_error == "raise":
            raise item
        quarantine.add(item, raw)  # type: ignore[union-attr]


def load_samples(path: str | os.PathLike[str], model: type[Sample] = Sample) -> list[Sample]:
    """Read a whole file strictly; the first bad record raises :class:`DataError`."""
    return [s for _, s in read_samples(path, model=model)]


def _atomic_target(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    from .storage import atomic_temp

    return atomic_temp(path.parent, f".{path.name}.")


def write_jsonl(path: str | os.PathLike[str], records: Iterable[dict[str, Any] | BaseModel]) -> int:
    """Write records as JSONL atomically (temp file + rename); returns the count."""
    path = Path(path)
    fd, tmp = _atomic_target(path)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                rec = rec.to_record() if isinstance(rec, Sample) else rec
                rec = rec.model_dump() if isinstance(rec, BaseModel) else rec
                fh.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n


def write_parquet(path: str | os.PathLike[str], records: Iterable[dict[str, Any] | Sample]) -> int:
    """Write records as one Parquet file atomically, every column of every record kept; returns the count.

    Column types follow the one rule of :mod:`teacherlm_core.parquet` (a column whose values vary in
    type is stored as JSON text, and :func:`read_samples` decodes it back).
    """
    import pyarrow.parquet as pq

    from .parquet import column_types, table

    rows = [r.to_record() if isinstance(r, Sample) else r for r in records]
    path = Path(path)
    fd, tmp = _atomic_target(path)
    os.close(fd)
    try:
        pq.write_table(table(rows, column_types(rows)), tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(rows)
