"""The augmentation summary: samples with their explanations per task, CoT verdicts, quarantine reasons."""

from __future__ import annotations

import json

from teacherlm_core.augment.summary import augmentation_summary, quarantine_reason, summary_markdown


def _augmented(root):
    base = {"choices": ["yes", "no"], "answer": "yes", "fundamentals": "F | pipe", "common_mistakes": "M"}
    records = [
        base | {"id": "a1", "task": "claims", "question": "Is it?", "chain_of_thought": "So the answer is (A).", "cot_consistent": True},
        base | {"id": "a2", "task": "claims", "question": "Is it 2?", "chain_of_thought": "The answer is no.", "cot_consistent": False},
        base | {"id": "a3", "task": "claims", "question": "Is it 3?", "chain_of_thought": "Hmm.", "cot_consistent": None},
        base | {"id": "b1", "task": "dates", "question": "When?", "chain_of_thought": "The answer is (A)."},
    ]  # fmt: skip
    root.mkdir()
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "quarantine").mkdir()
    rejected = [
        {
            "line": 5,
            "reason": "teacher output rejected: chain_of_thought: empty generation (after 3 attempt(s))",
        },
        {
            "line": 6,
            "reason": "teacher output rejected: chain_of_thought: empty generation (after 2 attempt(s))",
        },
        {"line": 7, "reason": "field 'answer': 'z' is not one of the choices"},
    ]
    (root / "quarantine" / "shard-00000-of-00001.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rejected)
    )
    return root


def test_summary_shows_samples_verdicts_and_grouped_quarantine_reasons(tmp_path):
    s = augmentation_summary(str(_augmented(tmp_path / "aug")), per_task=2)
    assert s["counts"] == {"input": 7, "output": 4, "quarantined": 3}
    claims = s["tasks"]["claims"]
    assert claims["records"] == 3 and claims["cot_reaches_gold"] == 1
    assert [x["id"] for x in claims["samples"]] == ["a1", "a2"]  # per_task, in file order
    assert [x["chain_of_thought_verdict"] for x in claims["samples"]] == [
        "reaches the gold answer",
        "concludes 'no', not the gold answer",
    ]
    # A record without cot_consistent is read the way the shard reads it (answers.parse_answer).
    assert s["tasks"]["dates"]["samples"][0]["chain_of_thought_verdict"] == "reaches the gold answer"
    # The same reason after different numbers of attempts is one reason.
    assert s["quarantine"] == [
        {"reason": "teacher output rejected: chain_of_thought: empty generation", "count": 2},
        {"reason": "field 'answer': 'z' is not one of the choices", "count": 1},
    ]
    md = summary_markdown(s)
    assert "| Is it? | yes | F \\| pipe | So the answer is (A). | M | reaches the gold answer |" in md
    assert "| teacher output rejected: chain_of_thought: empty generation | 2 |" in md
    assert "7 input records: 4 augmented, 3 quarantined." in md


def test_quarantine_reason_drops_attempt_counts_only():
    assert (
        quarantine_reason("x: empty (after 3 attempt(s)); y: echo (after 1 attempt(s))")
        == "x: empty; y: echo"
    )
    assert quarantine_reason("prompt is 900 tokens") == "prompt is 900 tokens"
