"""Turn one source row into a contract record, following an :class:`~.mapping.ImportMapping`.

Every failure is a :class:`~teacherlm_core.errors.DataError` that names the source file, the
line (or row) and the *source column* at fault, since that is what the user has to fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..errors import DataError
from ..schema import Sample, choices_problem
from .mapping import ImportMapping

__all__ = ["convert_row", "plain"]

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | tuple):
        return None
    text = str(value).strip()
    return text or None


def plain(value: Any) -> Any:
    """Make a kept value JSON-safe (dates, decimals and the like become strings)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def _json_list(value: Any) -> Any:
    """A CSV cell holding a JSON list (how CSV exports store list columns) becomes the list."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            decoded = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # not JSON (or nested past any use): the text stays
            return value
        return decoded if isinstance(decoded, list) else value
    return value


def convert_row(
    m: ImportMapping, row: dict[str, Any], *, label: str, line: int, split: str, row_key: str
) -> dict[str, Any]:
    """One source row as a contract record; raises DataError naming the source column at fault."""

    def err(column: str | None, reason: str) -> DataError:
        return DataError(label, line, column, reason)

    def get(column: str) -> Any:
        if column not in row:
            raise err(column, "column missing from this row")
        return row[column]

    if m.question_template:
        values = {}
        for col in m.template_columns():
            values[col] = _text(get(col))
            if values[col] is None:
                raise err(col, "is empty")
        question = m.question_template.format_map(values)
    elif (question := _text(get(m.question))) is None:  # type: ignore[arg-type]
        raise err(m.question, "is empty")

    choices_field = m.choices if isinstance(m.choices, str) else ",".join(m.choices or [])
    if m.fixed_choices is not None:
        choices = list(m.fixed_choices)
    elif isinstance(m.choices, str):
        raw = _json_list(get(m.choices))
        if not isinstance(raw, list | tuple):
            raise err(m.choices, f"expected a list of options (a JSON list in CSV files), got {raw!r:.60}")
        choices = [_text(c) for c in raw]
        if None in choices:
            raise err(m.choices, f"option {choices.index(None) + 1} is empty")
    else:
        choices = []
        for col in m.choices or []:
            if (opt := _text(get(col))) is None:
                raise err(col, "option is empty")
            choices.append(opt)
    if problem := choices_problem(choices):  # the data contract's check, named by the source's column
        raise err(choices_field, problem)

    answer = _answer(m, get(m.answer), choices, err)
    if m.id:
        if (rid := _text(get(m.id))) is None:
            raise err(m.id, "is empty")
    else:
        rid = f"{m.task}-{row_key}-{line:06d}"
    record: dict[str, Any] = {
        "id": rid,
        "task": m.task,
        "split": split,
        "question": question,
        "choices": choices,
        "answer": answer,
    }
    for out, col in m.keep.items():
        record[out] = plain(_json_list(row.get(col)))
    try:
        Sample.model_validate(record)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise err(".".join(map(str, e["loc"])) or None, e["msg"].removeprefix("Value error, ")) from None
    return record


def _answer(
    m: ImportMapping, value: Any, choices: list[str], err: Callable[[str | None, str], DataError]
) -> str:
    col, fmt = m.answer, m.answer_format
    if value is None or (isinstance(value, str) and not value.strip()):
        raise err(col, "is empty (an unlabeled row?)")
    if fmt == "text":
        text = str(value).strip()
        if text in choices:
            return text
        folded = [c for c in choices if c.casefold() == text.casefold()]
        if len(folded) == 1:
            return folded[0]
        raise err(col, f"{value!r} is not one of the choices {choices}")
    if fmt == "bool":
        key = str(value).strip().casefold()
        if isinstance(value, bool) or key in _TRUE | _FALSE:
            truth = value if isinstance(value, bool) else key in _TRUE
            return choices[0] if truth else choices[1]
        raise err(col, f"expected a boolean (true/false, yes/no, 1/0), got {value!r}")
    if fmt == "letter":
        key = str(value).strip().strip("()").upper()
        if len(key) != 1 or not key.isalpha():
            raise err(col, f"expected a letter A-{chr(64 + len(choices))}, got {value!r}")
        index = ord(key) - ord("A")
    else:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())
        ):
            raise err(col, f"expected an integer index, got {value!r}")
        index = int(value) - m.index_base
    if not 0 <= index < len(choices):
        raise err(col, f"{value!r} is out of range for {len(choices)} choices")
    return choices[index]
