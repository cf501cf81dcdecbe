"""Dedup and contamination: exact, normalised and MinHash near duplicates, and the overlap report."""

import pytest

from teacherlm_core.data.dedup import deduplicate, normalize_text, shingles

pytestmark = pytest.mark.timeout(60)

# Word 3-gram shingles: one changed word costs three shingles, so a one-word edit is a near
# duplicate at Jaccard 0.8 only in a text of about 30 words or more.
LONG = (
    "A farmer has seven cows and buys three more at the market on Sunday. On the way home one cow runs "
    "away into the forest and does not come back. How many cows does the farmer own now?"
)


def rec(id_, question, split="train", choices=("yes", "no"), task="t"):
    return {
        "id": id_,
        "task": task,
        "split": split,
        "question": question,
        "choices": list(choices),
        "answer": choices[0],
    }


def test_normalize_text_casefolds_strips_punctuation_and_collapses_whitespace():
    assert normalize_text("  Is it   TRUE?\tYes, it's  true!") == "is it true yes it s true"
    assert normalize_text("Ｆｕｌｌ-width") == "full width"
    assert shingles("one two") == {b"one two"}
    assert shingles("a b c d") == {b"a b c", b"b c d"}


MEANING_PAIRS = [
    ("What is 7 + 2?", "What is 7 - 2?"),
    ("What is 6 * 3?", "What is 6 / 3?"),
    ("Is x < y?", "Is x > y?"),
    ("Is x <= 3?", "Is x >= 3?"),
    ("Is x ≤ 3?", "Is x ≥ 3?"),
    ("Is a = b?", "Is a != b?"),
    ("Does it weigh 3.5 kg?", "Does it weigh 35 kg?"),
    ("Is it -4 degrees outside?", "Is it 4 degrees outside?"),
    ("Is 5−3 equal to 2?", "Is 53 equal to 2?"),
    ("Is the claim true?", "Is the claim not true?"),
    ("Can a cat swim?", "Can't a cat swim?"),
    ("Is 20% of 50 equal to 10?", "Is 20 of 50 equal to 10?"),
]


@pytest.mark.parametrize(("a", "b"), MEANING_PAIRS)
def test_normalisation_keeps_what_changes_meaning(a, b):
    """Digits, signs, operators, comparisons and negation words survive normalisation."""
    assert normalize_text(a) != normalize_text(b)
    across = deduplicate([rec("t", a, split="test"), rec("x", b, split="train")])
    assert [r["id"] for r in across.kept] == ["t", "x"]  # not removed as contamination
    assert across.report == [] and across.counts["removed"]["total"] == 0


def test_exact_duplicate_is_removed_and_reported_with_the_kept_id():
    records = [rec("a", "Is the sky blue?"), rec("b", "Is the sky blue?"), rec("c", "Is grass green?")]
    result = deduplicate(records)
    assert [r["id"] for r in result.kept] == ["a", "c"]
    assert result.report == [
        {
            "id": "b",
            "split": "train",
            "task": "t",
            "kind": "exact",
            "action": "removed",
            "duplicate_of": "a",
            "duplicate_of_split": "train",
        }
    ]
    assert result.counts["removed"] == {"exact": 1, "normalized": 0, "near": 0, "total": 1}
    assert result.counts["input"] == 3 and result.counts["kept"] == 2


def test_normalised_duplicate_differs_only_in_case_punctuation_and_spacing():
    records = [
        rec("a", "Is the sky blue?"),
        rec("b", "is  the SKY blue"),
        rec("c", "Is the sky blue?", choices=("no", "yes")),
    ]
    result = deduplicate(records)
    kinds = {e["id"]: e["kind"] for e in result.report}
    assert kinds == {"b": "normalized"}  # c has other choices: a different question
    assert [r["id"] for r in result.kept] == ["a", "c"]


def test_eval_copy_is_kept_and_the_training_copy_removed_whatever_the_order():
    records = [
        rec("tr", "Is ice cold?", "train"),
        rec("va", "Is ice cold?", "validation"),
        rec("te", "Is ice cold?", "test"),
    ]
    result = deduplicate(records)
    assert [r["id"] for r in result.kept] == ["te"]
    assert {(e["id"], e["duplicate_of"]) for e in result.report} == {("tr", "te"), ("va", "te")}
    overlap = result.counts["overlap"]
    assert overlap["train->test"]["exact"] == 1 and overlap["validation->test"]["exact"] == 1
    assert overlap["train->validation"] == {"exact": 0, "normalized": 0, "near": 0}


def test_cross_split_near_duplicate_is_removed_from_train():
    near = LONG.replace("Sunday", "Monday")
    result = deduplicate(
        [rec("tr", near, "train"), rec("te", LONG, "test"), rec("x", "Is fire hot?", "train")]
    )
    assert [r["id"] for r in result.kept] == ["te", "x"]
    (entry,) = result.report
    assert entry["kind"] == "near" and entry["action"] == "removed" and entry["duplicate_of"] == "te"
    assert 0.8 <= entry["similarity"] < 1.0
    assert result.counts["overlap"]["train->test"]["near"] == 1


def test_near_duplicate_inside_one_split_is_flagged_not_removed():
    result = deduplicate([rec("a", LONG), rec("b", LONG.replace("Sunday", "Monday"))])
    assert [r["id"] for r in result.kept] == ["a", "b"]
    assert [(e["id"], e["action"], e["duplicate_of"]) for e in result.report] == [("b", "flagged", "a")]
    assert result.counts["flagged_near"] == 1 and result.counts["removed"]["total"] == 0


def test_different_questions_are_not_near_duplicates():
    other = "A baker makes twelve loaves each morning and sells nine by noon. How many loaves are left for the evening?"
    result = deduplicate([rec("a", LONG, "train"), rec("b", other, "test")])
    assert result.report == [] and len(result.kept) == 2


def test_threshold_one_switches_near_detection_off():
    result = deduplicate(
        [rec("tr", LONG.replace("Sunday", "Monday"), "train"), rec("te", LONG, "test")], threshold=1.0
    )
    assert len(result.kept) == 2 and result.report == []


def test_dedup_is_deterministic():
    records = [
        rec(f"r{i}", LONG.replace("seven", str(i)), "test" if i % 3 == 0 else "train") for i in range(30)
    ]
    assert deduplicate(records).report == deduplicate(list(records)).report


def test_dedup_reports_progress_over_every_record_and_keeps_its_verdicts():
    records = [rec(f"r{i}", f"Question number {i % 1500} about cows?") for i in range(2500)]
    seen = []
    result = deduplicate(records, threshold=1.0, progress=lambda label, n: seen.append((label, n)))
    assert {label for label, _ in seen} == {"dedup"} and sum(n for _, n in seen) == len(records)
    assert len(result.kept) == 1500 and result.counts["removed"]["exact"] == 1000
    assert result.report[0] == {"id": "r1500", "split": "train", "task": "t", "kind": "exact",
                                "action": "removed", "duplicate_of": "r0", "duplicate_of_split": "train"}  # fmt: skip
