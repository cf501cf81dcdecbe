"""Importing real datasets: each shipped mapping from local JSONL/JSON/CSV/Parquet/datasets sources,
bad rows quarantined with file/line/field, and counts that reconcile."""

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from teacherlm_core.cli.data import app
from teacherlm_core.data import BUILTIN_MAPPINGS, import_dataset, load_mapping, read_manifest
from teacherlm_core.data.mapping import builtin_mapping_path
from teacherlm_core.errors import ConfigError, DataError
from teacherlm_core.records import load_samples
from teacherlm_core.schema import Rejected

pytestmark = pytest.mark.timeout(60)


# Small rows with the real column shapes of each dataset (see the mapping files for sources).
def ecqa_rows(n=4):
    return [
        {
            "q_no": f"ecqa{i}",
            "q_concept": "kitchen",
            "q_text": f"Where would you keep item number {i} cold?",
            "q_op1": "oven",
            "q_op2": "refrigerator",
            "q_op3": "garage",
            "q_op4": "attic",
            "q_op5": "closet",
            "q_ans": "refrigerator",
            "taskA_pos": "A refrigerator keeps food cold.",
            "taskA_neg": "An oven is hot.",
            "taskB": f"Food {i} is kept cold in a refrigerator.",
        }
        for i in range(n)
    ]


def strategyqa_rows(n=4):
    return [
        {
            "qid": f"sq{i}",
            "term": "Elephant",
            "description": "Large mammal",
            "question": f"Could {i + 2} elephants fit in a small car?",
            "answer": i % 2 == 1,
            "facts": ["Elephants weigh tons.", "A small car holds a few people."],
            "decomposition": ["How big is an elephant?", "How big is a small car?"],
        }
        for i in range(n)
    ]


def creak_rows(n=4):
    return [
        {
            "ex_id": f"train_{i}",
            "sentence": f"Lauryn Hill released album number {i} as a singer.",
            "explanation": "Lauryn Hill is a singer.",
            "label": "true" if i % 2 == 0 else "false",
            "entity": "Lauryn Hill",
            "en_wiki_pageid": "162864",
            "entity_mention_loc": [[0, 11]],
        }
        for i in range(n)
    ]


def mmlu_rows(n=4, start=0):
    return [
        {
            "question": f"What is {i} plus {i + 1}?",
            "subject": "elementary_mathematics",
            "choices": [str(2 * i), str(2 * i + 1), str(2 * i + 2), str(2 * i + 3)],
            "answer": 1,
        }
        for i in range(start, start + n)
    ]


ROWS = {"ecqa": ecqa_rows, "strategyqa": strategyqa_rows, "creak": creak_rows, "mmlu": mmlu_rows}


def write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "csv":  # lists go in as JSON text, as a CSV export would hold them
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            for r in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def check_records(name, records):
    first = records[0]
    if name == "ecqa":
        assert first["id"] == "ecqa0" and first["answer"] == "refrigerator" and len(first["choices"]) == 5
        assert (
            first["chain_of_thought"] == "Food 0 is kept cold in a refrigerator."
            and first["concept"] == "kitchen"
            and first["fundamentals"] == "A refrigerator keeps food cold."
            and first["common_mistakes"] == "An oven is hot."
        )
    elif name == "strategyqa":
        assert [r["answer"] for r in records[:2]] == ["no", "yes"] and first["choices"] == ["yes", "no"]
        assert first["facts"] == ["Elephants weigh tons.", "A small car holds a few people."]
    elif name == "creak":
        assert (
            first["question"]
            == "Is this claim true or false? Lauryn Hill released album number 0 as a singer."
        )
        assert [r["answer"] for r in records[:2]] == ["true", "false"] and first["entity"] == "Lauryn Hill"
    else:
        assert first["choices"] == ["0", "1", "2", "3"] and first["answer"] == "1"
        assert first["subject"] == "elementary_mathematics"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
@pytest.mark.parametrize("name", BUILTIN_MAPPINGS)
def test_each_shipped_mapping_imports_local_files(tmp_path, name, fmt):
    src = write(tmp_path / f"src.{fmt}", ROWS[name](), fmt)
    manifest = import_dataset(src, name, tmp_path / "out")
    samples = load_samples(tmp_path / "out" / "train.jsonl")
    records = [s.to_record() for s in samples]
    assert len(records) == 4 and {r["task"] for r in records} == {name}
    check_records(name, records)
    assert manifest["records"] == {"in": 4, "out": 4, "quarantined": 0, "duplicates": 0}
    assert manifest["counts"]["splits"] == {"train": 4}
    assert manifest["mapping"]["source"] == f"builtin:{name}"
    assert manifest["source"]["parts"][0]["sha256"]


def test_strategyqa_json_array_one_file_per_split(tmp_path):
    train = write(tmp_path / "strategyqa_train.json", strategyqa_rows(6), "json")
    dev_rows = [
        r | {"qid": f"dev{i}", "question": f"Is a dev question {i} answerable?"}
        for i, r in enumerate(strategyqa_rows(2))
    ]
    dev = write(tmp_path / "strategyqa_dev.json", dev_rows, "json")
    manifest = import_dataset({"train": train, "test": dev}, "strategyqa", tmp_path / "out")
    assert manifest["counts"]["splits"] == {"train": 6, "test": 2}
    assert [p["split"] for p in manifest["source"]["parts"]] == ["train", "test"]


def test_datasets_directory_with_mmlu_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "subject": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.ClassLabel(names=["A", "B", "C", "D"]),
        }
    )
    splits = {"auxiliary_train": (5, 0), "dev": (2, 10), "validation": (3, 20), "test": (4, 30)}
    dd = datasets.DatasetDict(
        {
            s: datasets.Dataset.from_list(mmlu_rows(n, start), features=features)
            for s, (n, start) in splits.items()
        }
    )
    dd.save_to_disk(str(tmp_path / "mmlu"))
    manifest = import_dataset(tmp_path / "mmlu", "mmlu", tmp_path / "out", formats=("jsonl", "parquet"))
    assert manifest["counts"]["splits"] == {"train": 7, "validation": 3, "test": 4}
    train = load_samples(tmp_path / "out" / "train.parquet")
    assert [s.id for s in train][:2] == ["mmlu-auxiliary_train-000001", "mmlu-auxiliary_train-000002"]
    assert train[-1].id == "mmlu-dev-000002" and train[0].answer == train[0].choices[1]


def test_datasets_single_dataset_and_hub_path(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(creak_rows(3)).save_to_disk(str(tmp_path / "creak"))
    manifest = import_dataset(tmp_path / "creak", "creak", tmp_path / "out", split="validation")
    assert manifest["counts"]["splits"] == {"validation": 3}

    # The Hub path is real code; here load_dataset is stood in for, so no network is needed.
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        return datasets.DatasetDict({"train": datasets.Dataset.from_list(ecqa_rows(2))})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    manifest = import_dataset("tasksource/ecqa", "ecqa", tmp_path / "hub")
    assert calls == [("tasksource/ecqa", None, {"revision": None})]
    assert manifest["counts"]["splits"] == {"train": 2} and manifest["source"]["spec"] == "tasksource/ecqa"


def test_malformed_and_bad_rows_are_quarantined_and_counts_reconcile(tmp_path):
    rows = [json.dumps(r) for r in ecqa_rows(6)]
    rows[1] = '{"q_no": "broken", '  # malformed JSON
    rows[2] = json.dumps({k: v for k, v in ecqa_rows(6)[2].items() if k != "q_op3"})  # missing column
    rows[3] = json.dumps(ecqa_rows(6)[3] | {"q_ans": "moon"})  # answer not among the choices
    rows.append(json.dumps(ecqa_rows(6)[0] | {"q_text": "A different question?"}))  # duplicate id
    rows.append(
        json.dumps(ecqa_rows(6)[4] | {"q_no": "copy", "q_text": "where would you keep ITEM number 4 cold"})
    )
    src = tmp_path / "ecqa.jsonl"
    src.write_text("\n".join(rows) + "\n")
    manifest = import_dataset(src, "ecqa", tmp_path / "out")

    assert manifest["records"] == {"in": 8, "out": 3, "quarantined": 4, "duplicates": 1}
    rec = manifest["records"]
    assert rec["in"] == rec["out"] + rec["quarantined"] + rec["duplicates"]
    rejected = [
        Rejected.model_validate_json(line)
        for line in (tmp_path / "out/quarantine/rejected.jsonl").read_text().splitlines()
    ]
    where = {(r.line, r.field) for r in rejected}
    assert where == {(2, None), (3, "q_op3"), (4, "q_ans"), (7, "q_no")}
    assert all(r.source == str(src) for r in rejected)
    assert "malformed JSON" in next(r.reason for r in rejected if r.line == 2)
    assert manifest["quarantine"]["records"] == 4
    (dup,) = [json.loads(line) for line in (tmp_path / "out/dedup.jsonl").read_text().splitlines()]
    assert dup["id"] == "copy" and dup["duplicate_of"] == "ecqa4" and dup["kind"] == "normalized"


def test_strict_mode_raises_with_file_line_and_field(tmp_path):
    rows = ecqa_rows(3)
    rows[1]["q_ans"] = "moon"
    src = write(tmp_path / "ecqa.jsonl", rows, "jsonl")
    with pytest.raises(DataError) as info:
        import_dataset(src, "ecqa", tmp_path / "out", on_error="raise")
    assert (info.value.path, info.value.line, info.value.field) == (str(src), 2, "q_ans")
    assert f"{src}:2: field 'q_ans'" in str(info.value)


def test_csv_missing_column_names_file_line_and_field(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "q_ans"} for r in ecqa_rows(2)]
    src = write(tmp_path / "ecqa.csv", rows, "csv")
    with pytest.raises(DataError) as info:
        import_dataset(src, "ecqa", tmp_path / "out")
    assert (info.value.path, info.value.line, info.value.field) == (str(src), 1, "q_ans")


def test_csv_row_with_wrong_field_count_is_quarantined(tmp_path):
    src = write(tmp_path / "creak.csv", creak_rows(3), "csv")
    lines = src.read_text().splitlines()
    lines[2] += ",surplus"
    src.write_text("\n".join(lines) + "\n")
    manifest = import_dataset(src, "creak", tmp_path / "out")
    (rejected,) = (tmp_path / "out/quarantine/rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["line"] == 3 and "fields" in json.loads(rejected)["reason"]
    assert manifest["records"] == {"in": 3, "out": 2, "quarantined": 1, "duplicates": 0}


@pytest.mark.parametrize("name", ["creak", "ecqa"])  # creak's rows hold quoted fields, ecqa's none
def test_csv_stray_quote_costs_only_its_record(tmp_path, name):
    src = write(tmp_path / f"{name}.csv", ROWS[name](400), "csv")
    lines = src.read_text().splitlines()
    lines[3] = lines[3].replace(",", ',"', 1)  # record 3 (line 4) opens a quote it never closes
    src.write_text("\n".join(lines) + "\n")
    manifest = import_dataset(src, name, tmp_path / "out")
    assert manifest["records"] == {"in": 400, "out": 399, "quarantined": 1, "duplicates": 0}
    (rejected,) = (tmp_path / "out/quarantine/rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["line"] == 4 and "malformed CSV" in json.loads(rejected)["reason"]


def test_csv_bytes_that_are_not_utf8_cost_their_line_named_by_its_number(tmp_path):
    src = write(tmp_path / "ecqa.csv", ecqa_rows(3000), "csv")
    lines = src.read_bytes().split(b"\n")
    lines[2500] = lines[2500].replace(b"cold", b"c\xf6ld")  # far past the decoder's first chunk
    src.write_bytes(b"\n".join(lines))
    manifest = import_dataset(src, "ecqa", tmp_path / "out")
    assert manifest["records"] == {"in": 3000, "out": 2999, "quarantined": 1, "duplicates": 0}
    (rejected,) = (tmp_path / "out/quarantine/rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["line"] == 2501 and "UTF-8" in json.loads(rejected)["reason"]


def test_compressed_sources_and_json_array_keys_given_twice(tmp_path):
    for fmt in ("jsonl", "csv"):
        plain_file = write(tmp_path / f"ecqa.{fmt}", ecqa_rows(5), fmt)
        with pa.CompressedOutputStream(str(tmp_path / f"ecqa.{fmt}.gz"), "gzip") as out:
            out.write(plain_file.read_bytes())
        manifest = import_dataset(tmp_path / f"ecqa.{fmt}.gz", "ecqa", tmp_path / f"out-{fmt}")
        assert manifest["records"] == {"in": 5, "out": 5, "quarantined": 0, "duplicates": 0}
    text = json.dumps(strategyqa_rows(3))
    src = tmp_path / "sq.json"
    src.write_text(text.replace('"qid": "sq1",', '"qid": "sq1", "qid": "sq9",'))
    manifest = import_dataset(src, "strategyqa", tmp_path / "out-sq")
    assert manifest["records"] == {"in": 3, "out": 2, "quarantined": 1, "duplicates": 0}
    (rejected,) = (tmp_path / "out-sq/quarantine/rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["line"] == 2 and "'qid' appears twice" in json.loads(rejected)["reason"]


def test_unlabeled_rows_and_empty_results(tmp_path):
    rows = [
        {k: v for k, v in r.items() if k != "label"} for r in creak_rows(2)
    ]  # like test_without_labels.json
    src = write(tmp_path / "creak_test.jsonl", rows, "jsonl")
    with pytest.raises(DataError, match="no usable rows: 2 read, 2 rejected"):
        import_dataset(src, "creak", tmp_path / "out")
    with pytest.raises(DataError, match="no such file"):
        import_dataset(tmp_path / "missing.jsonl", "creak", tmp_path / "out")


def test_answer_formats_letter_and_index_base(tmp_path):
    rows = [{"q": f"Pick {i}", "a": "x", "b": "y", "c": "z", "key": "(C)" if i else "b"} for i in range(2)]
    src = write(tmp_path / "s.jsonl", rows, "jsonl")
    mapping = {
        "task": "t",
        "question": "q",
        "choices": ["a", "b", "c"],
        "answer": "key",
        "answer_format": "letter",
    }
    import_dataset(src, mapping, tmp_path / "out")
    assert [s.answer for s in load_samples(tmp_path / "out/train.jsonl")] == ["y", "z"]
    rows = [{"q": "Pick one", "opts": ["x", "y"], "k": 2}]
    mapping = {
        "task": "t",
        "question": "q",
        "choices": "opts",
        "answer": "k",
        "answer_format": "index",
        "index_base": 1,
    }
    import_dataset(write(tmp_path / "i.jsonl", rows, "jsonl"), mapping, tmp_path / "out2")
    assert load_samples(tmp_path / "out2/train.jsonl")[0].answer == "y"


def test_every_shipped_mapping_loads_and_starts_with_its_command():
    for name in BUILTIN_MAPPINGS:
        mapping, source = load_mapping(name)
        assert source == f"builtin:{name}" and mapping.task == name
        first = builtin_mapping_path(name).read_text().splitlines()[0]
        assert first.startswith("# teacherlm data import ") and f"--mapping {name}" in first


def test_bad_mapping_reports_every_problem_at_once(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        yaml.safe_dump(
            {"task": "t", "question": "q", "answer_format": "roman", "colour": "red", "keep": {"id": "x"}}
        )
    )
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    problems = info.value.problems
    assert info.value.source == str(path)
    assert any(p.startswith("answer: ") for p in problems)
    assert any(p.startswith("answer_format: ") for p in problems)
    assert any(p.startswith("colour: unknown key") for p in problems)
    assert any("exactly one of 'choices'" in p for p in problems)
    assert any(p.startswith("keep.id: ") for p in problems)
    with pytest.raises(ConfigError, match="not a built-in mapping"):
        load_mapping("nope")


def test_cli_import_with_split_sources_and_strict(tmp_path):
    train = write(tmp_path / "train.json", creak_rows(4), "jsonl")
    dev = write(
        tmp_path / "dev.json",
        [r | {"ex_id": f"dev_{i}", "sentence": f"A dev claim {i}."} for i, r in enumerate(creak_rows(2))],
        "jsonl",
    )
    out = tmp_path / "out"
    args = [
        "import",
        "--source",
        f"train={train}",
        "--source",
        f"validation={dev}",
        "--mapping",
        "creak",
        "--output",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "creak" in result.output and "quarantined 0" in result.output
    assert read_manifest(out)["counts"]["splits"] == {"train": 4, "validation": 2}

    result = CliRunner().invoke(
        app,
        ["import", "--source", str(train), "--source", str(dev), "--mapping", "creak", "--output", str(out)],
    )
    assert isinstance(result.exception, ConfigError)
    bad = write(tmp_path / "bad.jsonl", [creak_rows(1)[0] | {"label": "maybe"}], "jsonl")
    result = CliRunner().invoke(app, ["import", "-s", str(bad), "-m", "creak", "-o", str(out), "--strict"])
    assert isinstance(result.exception, DataError) and result.exception.field == "label"


def test_training_rows_that_leak_eval_questions_are_removed_and_reported(tmp_path):
    test_rows = ecqa_rows(3)
    leak = test_rows[1] | {"q_no": "leak", "q_text": test_rows[1]["q_text"].upper()}
    train_rows = [
        r | {"q_no": f"tr{i}", "q_text": f"Where is thing {i} usually found at home?"}
        for i, r in enumerate(ecqa_rows(4))
    ]
    train = write(tmp_path / "train.jsonl", [*train_rows, leak], "jsonl")
    test = write(tmp_path / "test.jsonl", test_rows, "jsonl")
    manifest = import_dataset({"train": train, "test": test}, "ecqa", tmp_path / "out")
    assert manifest["counts"]["splits"] == {"train": 4, "test": 3}
    assert manifest["dedup"]["overlap"]["train->test"] == {"exact": 0, "normalized": 1, "near": 0}
    (entry,) = [json.loads(line) for line in (tmp_path / "out/dedup.jsonl").read_text().splitlines()]
    assert (entry["id"], entry["duplicate_of"], entry["duplicate_of_split"]) == ("leak", "ecqa1", "test")
