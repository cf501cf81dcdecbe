"""The knowledge families: what a student can learn only from explanations, and no shortcut to it."""

from __future__ import annotations

from collections import Counter

import pytest

from teacherlm_core.data import generate_builtin

KNOWLEDGE = ["fictional", "fictional_leaky", "animals"]


@pytest.fixture(scope="module")
def draws():
    """Several seeds at the benchmark's sizes (16, 64 and 256 training questions a family)."""
    return [generate_builtin([*KNOWLEDGE, "control_unseen", "arithmetic_yn", "ordering_yn"], per_task=n, seed=s,
                             test_per_task=64) for s in range(3) for n in (22, 92, 366)]  # fmt: skip


def _split(records, task, split):
    return [r for r in records if r["task"] == task and r["split"] == split]


@pytest.mark.parametrize("task", KNOWLEDGE)
def test_train_and_test_share_no_entity_relation_pair_but_share_the_entities(draws, task):
    for records in draws:
        pairs = {
            s: {(r["entities"][0], r["template"]) for r in _split(records, task, s)}
            for s in ("train", "test")
        }
        assert pairs["train"] and pairs["test"] and not pairs["train"] & pairs["test"]
        # every test question asks about an entity that training asked something else about
        assert {e for e, _ in pairs["test"]} <= {e for e, _ in pairs["train"]}


@pytest.mark.parametrize("task", KNOWLEDGE)
def test_the_answer_is_in_no_training_label_but_in_a_training_explanation(draws, task):
    for records in draws:
        train = _split(records, task, "train")
        for r in _split(records, task, "test"):
            entity = r["entities"][0]
            own = [t for t in train if t["entities"] == r["entities"]]
            fact_words = r["answer"].split()[-1]  # "leathery egg" -> "egg": how the statement says it
            stated = " ".join(
                t[f] for t in own for f in ("fundamentals", "chain_of_thought", "common_mistakes")
            )
            assert entity in stated and fact_words in stated, (r["question"], r["answer"])
            assert all(t["template"] != r["template"] for t in own)  # no label of this pair


@pytest.mark.parametrize("task", KNOWLEDGE)
def test_no_shortcut_answers_the_test(draws, task):
    """Neither "the letter of this entity's training answers" nor "the most common answer of this
    relation in training" beats chance: pooled over seeds and sizes, within 0.06 of chance."""
    hits = Counter()
    for records in draws:
        train, test = _split(records, task, "train"), _split(records, task, "test")
        by_entity: dict[str, Counter] = {}
        by_relation: dict[str, Counter] = {}
        for t in train:
            by_entity.setdefault(t["entities"][0], Counter())[t["choices"].index(t["answer"])] += 1
            by_relation.setdefault(t["template"], Counter())[t["answer"]] += 1
        for r in test:
            gold = r["choices"].index(r["answer"])
            hits["entity"] += by_entity[r["entities"][0]].most_common(1)[0][0] == gold
            common = by_relation.get(r["template"])
            hits["relation"] += bool(common) and common.most_common(1)[0][0] == r["answer"]
            hits["chance"] += 1 / len(r["choices"])
            hits["n"] += 1
    chance = hits["chance"] / hits["n"]
    for rule in ("entity", "relation"):
        assert hits[rule] / hits["n"] < chance + 0.06, (rule, hits[rule] / hits["n"], chance)


def test_the_negative_control_names_creatures_that_training_never_mentions(draws):
    for records in draws:
        text = " ".join(" ".join(str(r[f]) for f in ("question", "fundamentals", "chain_of_thought", "common_mistakes"))
                        for r in records if r["split"] != "test")  # fmt: skip
        control = _split(records, "control_unseen", "test")
        assert len(control) == 64 and not _split(records, "control_unseen", "train")
        assert not [r["entities"][0] for r in control if r["entities"][0] in text]


def test_leaky_explanations_follow_from_the_answer_in_most_records(draws):
    """High leakage: the creature's home predicts the facts its explanation states (9 in 10)."""
    from teacherlm_core.data.tasks.knowledge import LEAKY_RULE

    follows = total = 0
    for records in draws:
        for r in _split(records, "fictional_leaky", "train"):
            home = next(h for h in LEAKY_RULE if f"lives in {h}," in r["chain_of_thought"])
            follows += all(v in r["chain_of_thought"] for v in LEAKY_RULE[home])
            total += 1
    assert 0.8 < follows / total < 0.97


@pytest.mark.parametrize("task", ["arithmetic_yn", "ordering_yn"])
def test_yes_no_renderings_are_balanced_and_keep_the_steps(draws, task):
    rows = [r for records in draws for r in _split(records, task, "train")]
    assert {tuple(r["choices"]) for r in rows} == {("yes", "no")}
    share = sum(r["answer"] == "yes" for r in rows) / len(rows)
    assert 0.4 < share < 0.6
    assert all(r["chain_of_thought"].endswith(f"So the answer is {r['answer']}.") for r in rows)
    assert all("Is the answer" in r["question"] for r in rows)
