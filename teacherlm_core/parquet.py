"""Records as Parquet, losing nothing: the one rule for a column's type.

JSON records may hold anything in any column: a column present only in later records, nested
values, a value whose type changes from record to record. Parquet needs one type per column, so
every writer of teacherlm (``data build/import --format parquet``, the augmentation merge) uses
:func:`column_types` over *all* records and this rule:

* the data contract's columns have fixed types: ``id``, ``task``, ``question``, ``answer`` and
  the explanation fields are strings, ``choices`` a list of strings;
* another column whose non-null values are all strings, all booleans, all integers, all numbers
  (integers and floats: ``double``) or all lists of strings gets that Arrow type;
* teacherlm's own ``generation`` column (the same keys in every record of a run) is a struct;
* any other column (objects, other lists, or more than one kind of value) is stored as **JSON
  text** and named in the file's metadata (``teacherlm.json_columns``); :func:`read_records`
  decodes it, so a round trip gives back every value as it was.

A record without a column holds null there. Columns keep their first-seen order, contract
columns first. The augmentation computes the rule from its input when it plans (before any
generation) and records it in ``plan.json``, so every shard's file gets the same schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["CONTRACT", "JSON_COLUMNS_KEY", "ColumnKinds", "column_types", "read_records", "table"]

JSON_COLUMNS_KEY = b"teacherlm.json_columns"
_STRING = (
    "id",
    "task",
    "question",
    "answer",
    "fundamentals",
    "chain_of_thought",
    "common_mistakes",
    "teacher",
)
CONTRACT: dict[str, str] = {
    "id": "string",
    "task": "string",
    "question": "string",
    "choices": "list<string>",
    "answer": "string",
    **{c: "string" for c in _STRING[4:]},
}
_NATIVE = {
    frozenset({"str"}): "string",
    frozenset({"bool"}): "bool",
    frozenset({"int"}): "int64",
    frozenset({"float"}): "double",
    frozenset({"int", "float"}): "double",
    frozenset({"list_str"}): "list<string>",
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list_str" if all(isinstance(v, str) for v in value) else "list"
    return "object"


_SCALAR = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str"}


class ColumnKinds:
    """The kinds of value seen per column, in first-seen column order (streaming: one record at a time)."""

    def __init__(self) -> None:
        self.kinds: dict[str, set[str]] = {}

    def add(self, record: dict[str, Any]) -> None:
        kinds = self.kinds
        for key, value in record.items():
            kind = _SCALAR.get(type(value)) or _kind(value)  # the common scalar types without a call
            seen = kinds.get(key)
            if seen is None:
                kinds[key] = {kind}
            elif kind not in seen:
                seen.add(kind)

    def types(self) -> dict[str, str]:
        """Column -> Arrow type name (``string``, ``int64``...) or ``json``, by the rule above."""
        out = {c: t for c, t in CONTRACT.items() if c in self.kinds}
        for column, kinds in self.kinds.items():
            if column not in out:
                seen = frozenset(kinds - {"null"})
                out[column] = _NATIVE.get(seen, "json") if seen else "string"
        return out


def column_types(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    """:meth:`ColumnKinds.types` of ``records``."""
    kinds = ColumnKinds()
    for record in records:
        kinds.add(record)
    return kinds.types()


def _arrow_type(name: str):
    import pyarrow as pa

    return {
        "string": pa.string(),
        "bool": pa.bool_(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "list<string>": pa.list_(pa.string()),
        "json": pa.string(),
    }[name]


def table(records: list[dict[str, Any]], types: dict[str, str]):
    """A ``pyarrow.Table`` of ``records`` with exactly the columns of ``types`` (see the rule above).

    Raises:
        KeyError: a record has a column that ``types`` does not name.
    """
    import pyarrow as pa

    unknown = {k for r in records for k in r} - set(types)
    if unknown:
        raise KeyError(f"columns not in the planned schema: {sorted(unknown)}")
    arrays, fields = [], []
    for column, name in types.items():
        values = [r.get(column) for r in records]
        if name == "json":
            values = [
                None if v is None else json.dumps(v, ensure_ascii=False, allow_nan=False) for v in values
            ]
        elif name == "double":
            values = [None if v is None else float(v) for v in values]
        array = pa.array(values) if name == "struct" else pa.array(values, type=_arrow_type(name))
        arrays.append(array)
        fields.append(pa.field(column, array.type))
    json_columns = [c for c, t in types.items() if t == "json"]
    schema = pa.schema(fields, metadata={JSON_COLUMNS_KEY: json.dumps(json_columns).encode()})
    return pa.Table.from_arrays(arrays, schema=schema)


def read_records(path) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file as records, JSON columns decoded (a null ``choices`` is left out: no options)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    meta = pf.schema_arrow.metadata or {}
    json_columns = set(json.loads(meta.get(JSON_COLUMNS_KEY, b"[]")))
    for batch in pf.iter_batches():
        for row in batch.to_pylist():
            record = {
                k: (json.loads(v) if k in json_columns and v is not None else v) for k, v in row.items()
            }
            if record.get("choices", 0) is None:
                del record["choices"]
            yield record
