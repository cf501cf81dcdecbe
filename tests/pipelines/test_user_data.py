"""The whole loop on a user's own data: annotated seeds imported with the shipped ECQA mapping teach the
teacher, which augments the user's task data; the students are evaluated on that data's test split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from teacherlm_core.kfp_support import local as kfp_local

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

# ECQA's own columns (the original CSV and tasksource/ecqa): q_no, q_concept, q_text, q_op1..q_op5,
# q_ans, taskA_pos, taskA_neg, taskB.
OBJECTS = [
    ("milk", "refrigerator", "oven"), ("ice cream", "freezer", "toaster"), ("soup", "pot", "wallet"),
    ("socks", "drawer", "sink"), ("books", "shelf", "bathtub"), ("bread", "bread box", "mailbox"),
    ("coats", "closet", "dishwasher"), ("tools", "toolbox", "fridge"), ("plates", "cupboard", "bed"),
    ("shoes", "shoe rack", "kettle"), ("pens", "desk", "freezer"), ("towels", "linen closet", "oven"),
]  # fmt: skip


def _ecqa_csv(path: Path, rows: list[tuple[str, str, str]], start: int) -> Path:
    header = ["q_no", "q_concept", "q_text", "q_op1", "q_op2", "q_op3", "q_op4", "q_op5", "q_ans",
              "taskA_pos", "taskA_neg", "taskB"]  # fmt: skip
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i, (thing, place, wrong) in enumerate(rows, start=start):
            options = [wrong, place, "garage", "attic", "roof"]
            w.writerow([
                f"ecqa-{i}", thing, f"Where would you usually keep {thing}?", *options, place,
                f"{thing.capitalize()} are usually kept in a {place}.", f"A {wrong} is not where {thing} go.",
                f"{thing.capitalize()} belong in a {place}, so the answer is {place}.",
            ])  # fmt: skip
    return path


def _import(tmp_path: Path, name: str, train: list, test: list) -> Path:
    from teacherlm_core.data import import_dataset

    source = {
        "train": _ecqa_csv(tmp_path / f"{name}-train.csv", train, 0),
        "test": _ecqa_csv(tmp_path / f"{name}-test.csv", test, 100),
    }
    out = tmp_path / name
    manifest = import_dataset(source, "ecqa", out)
    assert manifest["records"]["out"] == len(train) + len(test)
    return out


def test_the_whole_loop_runs_on_a_users_imported_data(tmp_path, tiny_teacher, tiny_model):
    seeds = _import(tmp_path, "seeds", OBJECTS[:6], OBJECTS[6:8])
    task = _import(tmp_path, "task", OBJECTS[6:10], OBJECTS[10:])
    task_train = [json.loads(x) for x in (task / "train.jsonl").read_text().splitlines()]
    task_test = [json.loads(x) for x in (task / "test.jsonl").read_text().splitlines()]
    params = {
        "teacher_base_model": tiny_teacher, "student_base_model": tiny_model, "seed_data": str(seeds),
        "task_data": str(task), "star_rounds": 1, "star_max_new_tokens": 24, "teacher_config": "teacher_tiny",
        "teacher_max_steps": 2, "num_shards": 1, "max_new_tokens": 24, "temperature": 0.0,
        "student_config": "student_tiny", "student_max_steps": 2, "engine": "hf",
        "nproc_per_node": 1, "deepspeed": "none", "launcher": "torchrun",
    }  # fmt: skip
    result = kfp_local.run_local("end_to_end", typed=params, workdir=tmp_path / "w")
    run = Path(result["run_dir"])

    # The teacher learned from the user's seeds (and STaR on them), not from the built-in suite.
    (teacher_data,) = run.glob("**/train-teacher/teacher/stages/teacher-data.jsonl")
    seed_ids = {json.loads(x)["id"] for x in teacher_data.read_text().splitlines()}
    assert {f"ecqa-{i}" for i in range(6)} <= seed_ids and all(i.startswith("ecqa-") for i in seed_ids)
    # It augmented the user's task data: every train record is augmented or quarantined.
    (manifest,) = run.glob("**/augment-merge/augmented/manifest.json")
    counts = json.loads(manifest.read_text())["counts"]
    assert counts["input"] == len(task_train) == counts["output"] + counts["quarantined"]
    (augmented,) = run.glob("**/augment-merge/augmented/train.jsonl")
    out = [json.loads(x) for x in augmented.read_text().splitlines()]
    assert {r["id"] for r in out} <= {r["id"] for r in task_train}
    assert all(r["concept"] and r["question"].startswith("Where would you usually keep") for r in out)
    # The students were evaluated on the user's test split, item for item.
    reports = [json.loads(p.read_text()) for p in run.glob("**/evaluate*/report")]
    students = [r for r in reports if r["model"] in ("plain", "augmented")]
    assert len(students) == 2 and all(r["overall"]["n"] == len(task_test) for r in students), reports
