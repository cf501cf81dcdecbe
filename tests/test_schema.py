import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from teacherlm_core.errors import DataError
from teacherlm_core.records import QuarantineWriter, load_samples, read_samples, write_jsonl, write_parquet
from teacherlm_core.schema import AugmentedSample, Sample

GOOD = {"id": "q1", "task": "creak", "question": "Is fire hot?", "choices": ["yes", "no"], "answer": "yes"}


def write_lines(path, lines):
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def test_good_records_round_trip_with_unknown_fields(tmp_path):
    rec = GOOD | {"source": "seed", "meta": {"k": 1}}
    path = write_lines(
        tmp_path / "d.jsonl", [json.dumps(rec), json.dumps(GOOD | {"id": "q2", "choices": None})]
    )
    samples = load_samples(path)
    assert [s.id for s in samples] == ["q1", "q2"]
    assert samples[0].to_record() == rec  # unknown fields kept
    assert samples[0].answer_index == 0
    assert "choices" not in samples[1].to_record()
    out = tmp_path / "out.jsonl"
    assert write_jsonl(out, samples) == 2
    assert [s.to_record() for s in load_samples(out)] == [s.to_record() for s in samples]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        (b'{"id": "q1", "task": "t", ', None, "malformed JSON"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "question"}).encode(), "question", "is missing"),
        (json.dumps(GOOD | {"id": 7}).encode(), "id", "string"),
        (json.dumps(GOOD | {"answer": "maybe"}).encode(), "answer", "not one of the choices"),
        (json.dumps(GOOD | {"choices": ["only"], "answer": "only"}).encode(), "choices", "two or more"),
        (json.dumps(GOOD | {"choices": "yes,no"}).encode(), "choices", "list"),
        (json.dumps(GOOD | {"question": "   "}).encode(), "question", "empty"),
        (b'{"id": "q1", "question": "caf\xe9"}', None, "not valid UTF-8"),
        (b"[1, 2]", None, "expected a JSON object"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path, line, field, reason):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD | {"id": "q0"}).encode(), line])
    with pytest.raises(DataError) as info:
        load_samples(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 2, field)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:2: ")


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"id": "q1", "task": "t", "x": ' + DEEP + "}", None, "nested more than"),
        (json.dumps(GOOD)[:-1] + ', "x": ' + "[" * 500 + "]" * 500 + "}", None, "nested more than"),
        (json.dumps(GOOD)[:-1] + ', "note": "\\ud83d"}', "note", "lone UTF-16 surrogate"),
        (json.dumps(GOOD)[:-1] + ', "meta": {"\\udc00": 1}}', "meta", "lone UTF-16 surrogate"),
        (json.dumps(GOOD)[:-1] + ', "answer": "no"}', None, "key 'answer' appears twice"),
        (json.dumps(GOOD)[:-1] + ', "meta": {"k": 1, "k": 2}}', "meta", "key 'k' appears twice"),
    ],
    ids=["deep-100000", "deep-500", "lone-surrogate", "surrogate-key", "duplicate-key", "nested-duplicate"],
)
def test_every_malformed_line_is_quarantined_with_its_line_and_the_rest_is_written(
    tmp_path, line, field, reason
):
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD | {"id": "q0"}), line, json.dumps(GOOD)])
    with QuarantineWriter(tmp_path / "q.jsonl") as q:
        kept = list(read_samples(path, on_error="quarantine", quarantine=q))
    assert [n for n, _ in kept] == [1, 3]
    (rejected,) = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert (rejected["line"], rejected["field"]) == (2, field) and reason in rejected["reason"]
    write_jsonl(tmp_path / "out.jsonl", [s for _, s in kept])


def test_paired_surrogates_are_text(tmp_path):
    path = write_lines(tmp_path / "ok.jsonl", [json.dumps(GOOD | {"question": "Is \U0001f525 hot?"})])
    assert load_samples(path)[0].question == "Is \U0001f525 hot?"


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_json_lines_are_read_with_their_line_numbers(tmp_path, codec):
    lines = [json.dumps(GOOD | {"id": f"q{i}"}) for i in range(2000)]
    lines[1500] = "not json"
    data = "".join(x + "\n" for x in lines).encode()
    path = tmp_path / f"d.jsonl.{'gz' if codec == 'gzip' else 'zst'}"
    with pa.CompressedOutputStream(str(path), codec) as out:
        out.write(data)
    with QuarantineWriter(tmp_path / "q.jsonl") as q:
        kept = list(read_samples(path, on_error="quarantine", quarantine=q))
    assert len(kept) == 1999 and kept[-1][1].id == "q1999"
    assert json.loads((tmp_path / "q.jsonl").read_text())["line"] == 1501
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # a download that broke off
    with pytest.raises(DataError, match="compressed data"):
        load_samples(path)


def test_duplicate_ids_and_empty_file(tmp_path):
    path = write_lines(tmp_path / "dup.jsonl", [json.dumps(GOOD), json.dumps(GOOD)])
    with pytest.raises(
        DataError, match=r"dup.jsonl:2: field 'id': duplicate id 'q1' \(first seen on line 1\)"
    ):
        load_samples(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.jsonl: file is empty"):
        load_samples(empty)
    with pytest.raises(DataError, match="no such file"):
        load_samples(tmp_path / "missing.jsonl")


def test_quarantine_keeps_every_bad_record_and_counts_reconcile(tmp_path):
    lines = [
        json.dumps(GOOD),
        "not json",
        json.dumps(GOOD),
        json.dumps(GOOD | {"id": "q3", "answer": "x"}),
        json.dumps(GOOD | {"id": "q4"}),
    ]
    path = write_lines(tmp_path / "mixed.jsonl", lines)
    with QuarantineWriter(tmp_path / "quarantine" / "q.jsonl") as q:
        kept = list(read_samples(path, on_error="quarantine", quarantine=q))
    assert [line for line, _ in kept] == [1, 5]
    rejected = [json.loads(x) for x in (tmp_path / "quarantine" / "q.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [2, 3, 4]
    assert (
        rejected[0]["raw"] == "not json" and rejected[1]["field"] == "id" and rejected[2]["field"] == "answer"
    )
    assert len(lines) == len(kept) + q.count


def test_parquet_read_write_and_wrong_columns(tmp_path):
    good = tmp_path / "good.parquet"
    assert write_parquet(good, [Sample(**GOOD), Sample(**(GOOD | {"id": "q2"}))]) == 2
    assert [s.id for s in load_samples(good)] == ["q1", "q2"]
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"id": ["a"], "prompt": ["x"], "task": ["t"], "answer": ["y"]}), wrong)
    with pytest.raises(DataError, match=r"wrong.parquet: field 'question': column missing"):
        load_samples(wrong)
    bad_row = tmp_path / "badrow.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD, GOOD | {"id": "q2", "answer": "nope"}]), bad_row)
    with pytest.raises(DataError) as info:
        load_samples(bad_row)
    assert (info.value.line, info.value.field) == (2, "answer")


def test_augmented_sample_requires_the_three_fields():
    with pytest.raises(Exception, match="fundamentals"):
        AugmentedSample(**GOOD, chain_of_thought="c", common_mistakes="m", teacher="t")
    aug = AugmentedSample(
        **GOOD, fundamentals="f", chain_of_thought="c", common_mistakes="m", teacher="tiny@rev"
    )
    assert aug.to_record()["teacher"] == "tiny@rev"
