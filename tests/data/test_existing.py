"""A user's dataset taken into a run in place of the built-in suite (``data build --source``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teacherlm_core.errors import DataError
from teacherlm_core.stages.data_build import data_build


def _record(i: int, split: str, **extra) -> dict:
    return {
        "id": f"q{split}{i}", "task": "mine", "question": f"Which number is {i}?", "choices": ["one", str(i)],
        "answer": str(i), "fundamentals": "Numbers name amounts.", "chain_of_thought": f"It says {i}.",
        "common_mistakes": "Picking the word.", "source_row": i, **extra,
    }  # fmt: skip


def _write(root: Path, split: str, lines: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{split}.jsonl").write_text("".join(x + "\n" for x in lines))


def test_a_users_dataset_is_copied_with_every_column_and_bad_records_quarantined(tmp_path):
    src = tmp_path / "mine"
    good = [json.dumps(_record(i, "train", nested={"k": [i]})) for i in range(3)]
    _write(src, "train", [*good, '{"id": "broken"', json.dumps(_record(9, "train", answer="nope"))])
    _write(src, "test", [json.dumps(_record(i, "test")) for i in range(2)])
    manifest = data_build(tmp_path / "out", source=str(src), annotated=True)
    assert manifest["records"] == {"in": 7, "out": 5, "quarantined": 2, "duplicates": 0}
    train = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in train] == ["qtrain0", "qtrain1", "qtrain2"]
    assert train[1]["nested"] == {"k": [1]} and train[1]["source_row"] == 1  # every column kept as it was
    rejected = [
        json.loads(x) for x in (tmp_path / "out" / "quarantine" / "rejected.jsonl").read_text().splitlines()
    ]
    assert [(r["line"], r["field"]) for r in rejected] == [(4, None), (5, "answer")]
    assert all(r["source"].endswith("train.jsonl") and r["reason"] for r in rejected)
    assert manifest["counts"]["splits"] == {"train": 3, "test": 2}
    assert manifest["source"]["uri"] == str(src) and len(manifest["source"]["parts"]) == 2


def test_seed_data_must_carry_the_explanations_and_a_test_split(tmp_path):
    src = tmp_path / "plain"
    bare = {k: v for k, v in _record(0, "train").items() if k not in ("fundamentals", "common_mistakes")}
    _write(src, "train", [json.dumps(bare)])
    _write(src, "test", [json.dumps(_record(0, "test"))])
    with pytest.raises(DataError, match="no valid record in its train split"):
        data_build(tmp_path / "seeds", source=str(src), annotated=True)
    assert data_build(tmp_path / "task", source=str(src), annotated=False)["records"]["out"] == 2
    (src / "test.jsonl").unlink()
    with pytest.raises(DataError, match=r"no test\.jsonl or test\.parquet"):
        data_build(tmp_path / "task2", source=str(src), annotated=False)


@pytest.mark.integration
def test_a_dataset_on_s3_is_read_from_its_prefix(tmp_path, s3_env):
    from teacherlm_core import storage

    bucket = s3_env.bucket
    for split, n in (("train", 3), ("test", 2)):
        body = "".join(json.dumps(_record(i, split)) + "\n" for i in range(n))
        storage.write_text(f"s3://{bucket}/{tmp_path.name}/mine/{split}.jsonl", body)
    manifest = data_build(tmp_path / "out", source=f"s3://{bucket}/{tmp_path.name}/mine", annotated=True)
    assert manifest["counts"]["splits"] == {"train": 3, "test": 2}
    assert manifest["source"]["parts"][0]["label"] == f"s3://{bucket}/{tmp_path.name}/mine/train.jsonl"
