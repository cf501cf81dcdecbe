"""Label-exposure matched students (``texts.batching: per_question``): the comparison's fairness.

What a reader of docs/fidelity.md relies on: at each step every arm trains the same questions
with the same label targets, so the only difference between arms is the explanation targets.
"""

from __future__ import annotations

import json

import pytest

from teacherlm_core.data import build_builtin
from teacherlm_core.schema import Sample
from teacherlm_core.train import load_config, train_student
from teacherlm_core.train.texts import sample_texts

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("exposure-data")
    build_builtin(out, ["fictional", "animals"], per_task=20, seed=0)
    return out / "train.jsonl"


def _student(tiny_model, data, out, config, **overrides):
    flags = {"model": tiny_model, "data": str(data), "output": str(out), "track": False, "train.max_steps": 6,
             "train.per_device_batch_size": 4, "train.save_steps": 100}  # fmt: skip
    return train_student(load_config("student", config, flags | overrides))


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_arms_train_the_same_questions_at_every_step(tiny_model, data, tmp_path):
    """With the explanation loss weighted 0, the augmented student must end where the plain one
    does (to float rounding: its rows are padded wider), only possible if every step trained the
    same questions and label targets; packed batching mixes other texts into each step and moves
    the weights by about the learning rate (3e-3 a step, Adam)."""
    _student(tiny_model, data, tmp_path / "plain", "student_plain_tiny")
    _student(tiny_model, data, tmp_path / "zero", "student_tiny", **{"texts.explanation_weight": 0.0})
    _student(tiny_model, data, tmp_path / "gold", "student_tiny")
    plain, zero, gold = (_weights(tmp_path / n) for n in ("plain", "zero", "gold"))
    assert max(float((plain[k] - zero[k]).abs().max()) for k in plain) < 2e-5  # measured: 1.9e-6
    assert max(float((plain[k] - gold[k]).abs().max()) for k in plain) > 1e-3  # the explanations do move it

    tokens = {n: json.loads((tmp_path / n / "_SUCCESS").read_text())["tokens"] for n in ("plain", "gold")}
    assert tokens["plain"]["label_targets"] == tokens["gold"]["label_targets"] > 0
    assert tokens["plain"]["explanation_targets"] == 0 < tokens["gold"]["explanation_targets"]


def test_a_record_without_explanations_trains_its_label_only(tiny_model, data, tmp_path):
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    for r in rows[::2]:  # e.g. the half a utility filter dropped
        for f in ("fundamentals", "chain_of_thought", "common_mistakes"):
            r.pop(f)
    half = tmp_path / "half.jsonl"
    half.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _student(tiny_model, half, tmp_path / "half", "student_tiny")
    assert result.texts["plain"] == len(rows) and result.texts["fundamentals"] == len(rows) // 2


def test_data_that_was_never_augmented_is_still_refused(tiny_model, tmp_path):
    from teacherlm_core.errors import DataError

    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        json.dumps({"id": "a", "task": "t", "question": "Q?", "choices": ["x", "y"], "answer": "x"}) + "\n"
    )
    with pytest.raises(DataError, match="no record has 'fundamentals'"):
        _student(tiny_model, plain, tmp_path / "out", "student_tiny", **{"train.per_device_batch_size": 1})


def test_after_question_explanations_never_show_the_answer(data):
    sample = Sample.model_validate(json.loads(data.read_text().splitlines()[0]))
    kinds = ["fundamentals", "chain_of_thought", "common_mistakes"]
    after_q = sample_texts(sample, kinds, "after_question")
    after_a = sample_texts(sample, kinds, "after_answer")
    assert all("The answer is" not in t.prompt for t in after_q)
    assert all("The answer is (" in t.prompt for t in after_a)
    assert [t.completion for t in after_q] == [t.completion for t in after_a]


def test_rotation_trains_one_field_a_visit_and_every_field_in_turn():
    import torch

    from teacherlm_core.train.batches import QuestionRows
    from teacherlm_core.train.packing import question_schedule

    sched = question_schedule(4, 3, True, 12, seed=0)
    assert sorted(sched[:4, 0].tolist()) == [0, 1, 2, 3]  # an epoch visits every question once
    for q in range(4):
        assert sorted(sched[sched[:, 0] == q, 1].tolist()) == [0, 1, 2]  # three visits, three fields
    ids = torch.arange(4 * 4 * 5, dtype=torch.int32).view(4, 4, 5)
    rows = QuestionRows({"question_ids": ids, "question_mask": torch.ones_like(ids, dtype=torch.uint8),
                         "question_length": torch.full((4, 4), 5, dtype=torch.int32)}, sched)  # fmt: skip
    row = rows[0]
    q, f = sched[0]
    assert row["input_ids"].tolist() == ids[q, 0].tolist() + ids[q, 1 + f].tolist()
    assert row["position_ids"].tolist() == [0, 1, 2, 3, 4] * 2
