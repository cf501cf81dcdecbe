"""Nothing lost at the edges: every column of every record survives the merge, whatever the records hold.

Heterogeneous records in several orders (a column present only in later rows, open questions
without ``choices``, nested values, a column whose type varies between records), one or two shards:
every input column of every record is compared, row for row, with the merged Parquet and with
``train.jsonl``.
"""

from __future__ import annotations

import itertools
import json

import pyarrow.parquet as pq
import pytest
from fake_engines import ScriptedEngine

from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.parquet import read_records
from teacherlm_core.records import load_samples, write_parquet
from teacherlm_core.schema import FIELDS

pytestmark = pytest.mark.timeout(120)

# fmt: off
KINDS = [
    {"question": "Is ice cold?", "choices": ["yes", "no"], "answer": "yes"},
    {"question": "Name the capital of France.", "answer": "Paris"},  # open question: no choices
    {
        "question": "2 + 2?",
        "choices": ["3", "4", "5"],
        "answer": "4",
        "source": "arith.v2",
    },  # source: later only
    {
        "question": "Pick red.",
        "choices": ["red", "blue"],
        "answer": "red",
        "meta": {"difficulty": 2, "tags": ["colour", "easy"]},
        "extra": [1, 2],
    },
    {"question": "Is 3 odd?", "choices": ["true", "false"], "answer": "true", "extra": "three"},
    {"question": "How many legs has a cat?", "choices": ["2", "4"], "answer": "4", "extra": 7, "score": 0.5},
]
# fmt: on


def _records(order: tuple[int, ...]) -> list[dict]:
    return [{"id": f"r{i}-{k}", "task": "mixed", **KINDS[i]} for k, i in enumerate(order)]


def _orders() -> list[tuple[int, ...]]:
    every = list(itertools.permutations(range(len(KINDS))))
    return [every[0], every[-1], *every[1 :: len(every) // 4]]  # first, reversed, and a spread between


@pytest.mark.parametrize("num_shards", [1, 2])
@pytest.mark.parametrize("order", _orders(), ids=lambda o: "".join(map(str, o)))
def test_every_input_column_of_every_record_survives_the_merge(tmp_path, order, num_shards):
    from teacherlm_core.augment import merge_gathered

    records = _records(order)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = AugmentConfig(model="scripted-teacher", input=str(src), output=str(tmp_path / "run"), engine="hf",
                        num_shards=num_shards, temperature=0.0)  # fmt: skip
    manifest = augment(cfg, engine=lambda: ScriptedEngine())
    assert manifest["counts"] == {"input": len(records), "output": len(records), "quarantined": 0}

    merged = {}
    for path in sorted((tmp_path / "run" / "data").glob("*.parquet")):
        merged |= {r["id"]: r for r in read_records(path)}
    assert sorted(merged) == sorted(r["id"] for r in records)
    for record in records:
        row = merged[record["id"]]
        for key, value in record.items():
            assert row[key] == value, f"{record['id']}.{key}: {row[key]!r} != {value!r}"
        for key in set(row) - set(record) - {*FIELDS, "teacher", "generation", "cot_consistent"}:
            assert row[key] is None, f"{record['id']}.{key}: a column it did not have holds {row[key]!r}"
        assert all(row[f] for f in FIELDS)  # augmented, not only kept

    # The pipeline's merge of separate shard tasks also writes train.jsonl: every value as it came in.
    for i in range(num_shards):
        task = tmp_path / f"task{i}"
        (task / "shards").mkdir(parents=True)
        (task / "plan.json").write_text((tmp_path / "run" / "plan.json").read_text())
        shard = next(
            p for p in (tmp_path / "run" / "shards").iterdir() if p.name.startswith(f"shard-{i:05d}")
        )
        (task / "shards" / shard.name).symlink_to(shard)
    merge_gathered([str(tmp_path / f"task{i}") for i in range(num_shards)], tmp_path / "gathered")
    rows = {s.id: s.to_record() for s in load_samples(tmp_path / "gathered" / "train.jsonl")}
    for record in records:
        for key, value in record.items():
            assert rows[record["id"]][key] == value, f"train.jsonl {record['id']}.{key}"


def test_the_type_rule_is_in_the_plan_before_any_generation(tmp_path):
    """A column whose type varies is stored as JSON text in Parquet: decided from the input, at plan time."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _records((3, 4, 5, 2))))
    cfg = AugmentConfig(model="scripted-teacher", input=str(src), output=str(tmp_path / "run"), engine="hf",
                        num_shards=2, temperature=0.0)  # fmt: skip

    def no_engine():
        raise RuntimeError("no engine")

    with pytest.raises(RuntimeError, match="no engine"):  # planned, then stopped before any generation
        augment(cfg, 0, engine=no_engine)
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["columns"]["extra"] == "json" and plan["columns"]["meta"] == "json"
    assert plan["columns"]["source"] == "string" and plan["columns"]["score"] == "double"


def test_write_parquet_keeps_every_column(tmp_path):
    """schema.write_parquet (data import --format parquet, data build --format both) has the same rule."""
    for order in _orders():
        records = _records(order)
        write_parquet(tmp_path / "x.parquet", records)
        back = {r["id"]: r for r in read_records(tmp_path / "x.parquet")}
        for record in records:
            for key, value in record.items():
                assert back[record["id"]][key] == value, (order, record["id"], key)
        assert str(pq.read_schema(tmp_path / "x.parquet").field("choices").type) == "list<element: string>"


def test_the_reader_decodes_json_columns_back(tmp_path):
    records = _records((3, 4, 5))
    write_parquet(tmp_path / "x.parquet", records)
    samples = {s.id: s.to_record() for s in load_samples(tmp_path / "x.parquet")}
    assert [samples[r["id"]]["extra"] for r in records] == [[1, 2], "three", 7]
