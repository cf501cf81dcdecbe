"""The data contract: ``Sample`` and ``AugmentedSample``, and validated JSONL/Parquet I/O.

One JSON object a line (or a Parquet file with the same columns). A record that breaks the
contract becomes a :class:`~teacherlm_core.errors.DataError` naming file, line and field; the
caller either stops on it (``on_error="raise"``) or sends it to a :class:`QuarantineWriter`
(``on_error="quarantine"``), so that ``in = out + quarantined`` always holds.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from .errors import DataError

__all__ = [
    "FIELDS",
    "MAX_CHOICES",
    "PARQUET_MAGIC",
    "SCHEMA_VERSION",
    "UTF8_BOM",
    "AnnotatedSample",
    "AugmentedSample",
    "NonBlankStr",
    "QuarantineWriter",
    "Rejected",
    "Sample",
    "choices_problem",
    "detect_format",
    "format_of",
    "iter_jsonl_lines",
    "iter_raw_records",
    "load_samples",
    "read_samples",
    "to_data_error",
    "write_jsonl",
    "write_parquet",
]

SCHEMA_VERSION = "1"
FIELDS = ("fundamentals", "chain_of_thought", "common_mistakes")
REQUIRED = ("id", "task", "question", "answer")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonBlankStr = Annotated[str, AfterValidator(_not_blank)]
"""A string with something besides whitespace (the data contract's required text fields)."""

MAX_CHOICES = 26  # the prompt formats letter the options (A) to (Z)


def choices_problem(choices: list[str]) -> str | None:
    """What makes ``choices`` break the data contract (``None``: nothing).

    Two to :data:`MAX_CHOICES` options, none of them blank, no two alike: an option that appears
    twice would make the gold letter ambiguous, whatever a model answers.
    """
    if len(choices) < 2:
        return f"needs two or more options, got {len(choices)}"
    if len(choices) > MAX_CHOICES:
        return f"{len(choices)} options, but the prompt format can letter at most {MAX_CHOICES}, (A) to (Z)"
    for i, option in enumerate(choices, start=1):
        if not option.strip():
            return f"option {i} is empty"
    seen: set[str] = set()
    for option in choices:
        if option in seen:
            return f"options are not distinct: {option!r} appears twice"
        seen.add(option)
    return None


class Sample(BaseModel):
    """One question. Unknown fields are kept (``extra="allow"``) and written back out."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    id: NonBlankStr
    task: NonBlankStr
    question: NonBlankStr
    choices: list[str] | None = None
    answer: NonBlankStr

    @model_validator(mode="after")
    def _answer_among_choices(self) -> Sample:
        if self.choices is not None:
            if problem := choices_problem(self.choices):
                raise ValueError(f"choices: {problem}")
            if self.answer not in self.choices:
                raise ValueError(f"answer: {self.answer!r} is not one of the choices")
        return self

    @property
    def answer_index(self) -> int:
        """Index of the gold answer in ``choices`` (multiple choice only)."""
        if self.choices is None:
            raise ValueError(f"sample {self.id!r} has no choices")
        return self.choices.index(self.answer)

    def to_record(self) -> dict[str, Any]:
        """The sample as a plain dict, unknown fields included, ``None`` choices left out."""
        record = self.model_dump()
        if record.get("choices") is None:
            record.pop("choices", None)
        return record


class AnnotatedSample(Sample):
    """A sample with its three explanations, whoever wrote them (annotated seed data)."""

    fundamentals: NonBlankStr
    chain_of_thought: NonBlankStr
    common_mistakes: NonBlankStr


class AugmentedSample(AnnotatedSample):
    """A sample with the teacher's three explanations, and which teacher wrote them."""

    teacher: str


class Rejected(BaseModel):
    """A quarantined record: where it came from, why, and the raw text or record."""

    source: str
    line: int | None
    field: str | None
    reason: str
    raw: Any = None


def to_data_error(path: str, line: int, exc: ValidationError) -> DataError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"]
    if not loc and ": " in msg:  # a model-level check names its field in the message
        field, _, msg = msg.removeprefix("Value error, ").partition(": ")
        return DataError(path, line, field, msg)
    field = ".".join(loc) or None
    if err["type"] == "missing":
        msg = "is missing"
    return DataError(path, line, field, msg.removeprefix("Value error, "))


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


def detect_format(path: str | os.PathLike[str]) -> Literal["jsonl", "parquet"]:
    """``"parquet"`` or ``"jsonl"``, recognised by the file's content (never its name).

    Parquet starts with ``PAR1``; JSON lines start (after an optional UTF-8 BOM and blank space)
    with ``{``. A JSON line may end in CRLF.

    Raises:
        DataError: no such file, an empty file, or any other content ("unsupported file type").
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DataError(path, None, None, "no such file")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    return format_of(head, path)


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
    recognised by content (:func:`detect_format`). Whole-file problems (missing, empty, an
    unsupported type, a Parquet file without the required columns) raise :class:`DataError` at
    once; per-line problems (malformed JSON, NaN/Infinity, not an object, bad UTF-8) are yielded so
    the caller can quarantine them.
    """
    path = str(path)
    if detect_format(path) == "parquet":
        yield from _iter_parquet(path)
        return
    with open(path, "rb") as fh:
        yield from iter_jsonl_lines(fh, path)


def iter_jsonl_lines(
    lines: Iterable[bytes], path: str
) -> Iterator[tuple[int, dict[str, Any] | DataError, Any]]:
    """:func:`iter_raw_records` of JSON lines given as byte lines (a file, or a stream from S3).

    ``path`` names the source in errors; line numbers count from 1, blank lines included.
    """
    nonstandard: list[
        _NonStandard
    ] = []  # filled only when a line holds NaN/Infinity: the walk is skipped otherwise

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
        try:
            record = json.loads(text, parse_constant=on_constant)
        except json.JSONDecodeError as exc:
            yield (
                lineno,
                DataError(path, lineno, None, f"malformed JSON: {exc.msg} at column {exc.colno}"),
                text.rstrip("\n"),
            )
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
