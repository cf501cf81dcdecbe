"""Explanation utility: scored with the answer masked out, leaks flagged apart, filters that lose nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from teacherlm_core.augment.utility import explanation_utility, mask_answer, select, states_answer
from teacherlm_core.cli.augment import app
from teacherlm_core.schema import Sample


def _record(**fields) -> dict:
    return {
        "id": "q1", "task": "t", "question": "Where is milk kept cold?", "choices": ["oven", "refrigerator"],
        "answer": "refrigerator", **fields,
    }  # fmt: skip


class HintScorer:
    """A scorer that prefers the gold letter B when the context names the answer (its text or '(B)')
    or carries the word 'cold-box' (a real hint that names nothing), and is indifferent otherwise."""

    name = "hint"

    def loglikelihood(self, requests, progress=None):
        out = []
        for r in requests:
            tail = r.context.split("A: The answer is (")[0]
            explanation = tail.split("(B) refrigerator", 1)[1]  # what follows the question
            helped = (
                "refrigerator" in explanation.lower() or "(B)" in explanation or "cold-box" in explanation
            )
            out.append(0.0 if (r.continuation == "B") == helped else -1.0)
        if progress:
            progress(len(requests))
        return out


def test_an_explanation_that_states_the_answer_is_flagged_and_gains_nothing_once_masked():
    leaky = "Milk goes bad when warm. So the answer is (B) refrigerator."
    sample = Sample.model_validate(_record())
    assert states_answer(leaky, sample) and not states_answer("Milk goes bad when warm.", sample)
    masked = mask_answer(leaky, sample)
    assert "refrigerator" not in masked.lower() and "(B)" not in masked and "___" in masked
    (scores,) = explanation_utility(
        [_record(fundamentals=leaky, chain_of_thought="Milk needs the cold-box.", common_mistakes="  ")],
        HintScorer(),
    )
    assert scores["fundamentals"].leaks and scores["fundamentals"].utility == pytest.approx(0.0)
    assert not scores["chain_of_thought"].leaks and scores["chain_of_thought"].utility > 0.5
    assert scores["common_mistakes"].utility is None  # nothing to score


def test_filters_keep_what_they_say_and_name_why_the_rest_went():
    assert select([0.3, None, -0.2, 0.1]) == [None] * 4
    kept = select([0.3, None, -0.2, 0.1], min_utility=0.0)
    assert kept[0] is None and kept[3] is None and "below the cut" in kept[2] and "no utility" in kept[1]
    top = select([0.3, 0.2, -0.2, 0.1], top_share=0.5)
    assert [r is None for r in top] == [True, True, False, False]


@pytest.mark.integration
def test_cli_scores_filters_and_reconciles(tmp_path, tiny_model):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims", "dates"], per_task=8, seed=0)
    records = [
        json.loads(x) | {"extra": i}
        for i, x in enumerate((tmp_path / "data" / "train.jsonl").read_text().splitlines())
    ]
    (tmp_path / "aug").mkdir()
    (tmp_path / "aug" / "README.md").write_text("# Augmented dataset\n\nTeacher **t** (licence Apache-2.0)\n")
    (tmp_path / "aug" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    res = CliRunner().invoke(
        app,
        ["utility", "--data", str(tmp_path / "aug"), "--scorer", tiny_model,
         "--output", str(tmp_path / "useful"), "--top-share", "0.5"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "useful" / "utility.json").read_text())
    c = summary["counts"]
    assert c["in"] == len(records) == c["kept"] + c["filtered"] and c["kept"] == len(records) // 2
    kept = [json.loads(x) for x in (tmp_path / "useful" / "train.jsonl").read_text().splitlines()]
    rejected = [
        json.loads(x)
        for x in (tmp_path / "useful" / "quarantine" / "rejected.jsonl").read_text().splitlines()
    ]
    assert len(rejected) == c["filtered"] and all(r["field"] == "utility" and r["line"] for r in rejected)
    assert {r["id"] for r in kept} | {r["raw"]["id"] for r in rejected} == {r["id"] for r in records}
    assert min(r["utility"] for r in kept) >= max(r["raw"]["utility"] for r in rejected)
    assert all("extra" in r and "utility_chain_of_thought" in r and "leaks_fundamentals" in r for r in kept)
    # the built-in suite's gold chains of thought end "So the answer is X": all of them leak
    assert summary["fields"]["chain_of_thought"]["leaks"] == 1.0
    card = (tmp_path / "useful" / "README.md").read_text()
    assert "| chain_of_thought |" in card
    # the filtered dataset's card keeps its source's provenance and says what the filter kept
    assert "licence Apache-2.0" in card and f"holds {c['kept']} of the {c['in']}" in card
