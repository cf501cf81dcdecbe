import pytest

from teacherlm_core.prompts import base_text, collapse_ws, rank_candidates, rank_context, teacher_prompt
from teacherlm_core.schema import Sample

S = Sample(
    id="1", task="t", question="Which is  a\nfruit?", choices=["apple", "stone\tcold", "car"], answer="apple"
)


def test_base_text_is_the_papers_format():
    assert base_text(S) == "Q: Which is a fruit? (A) apple (B) stone cold (C) car A: The answer is (A)."


@pytest.mark.parametrize(
    ("field", "suffix"),
    [
        ("chain_of_thought", " Let's think step by step."),
        ("common_mistakes", " The common mistakes are:"),
        ("fundamentals", " The fundamental of this question is:"),
    ],
)
def test_teacher_prompts_are_answer_conditioned(field, suffix):
    assert teacher_prompt(S, field) == base_text(S) + suffix


def test_rank_context_and_candidates():
    assert rank_context(S) == "Q: Which is a fruit? (A) apple (B) stone cold (C) car A: The answer is ("
    assert rank_candidates(S) == ["A", "B", "C"]


def test_open_question_and_bad_field():
    open_q = Sample(id="2", task="t", question="2+2?", answer="4")
    assert base_text(open_q) == "Q: 2+2? A: The answer is 4."
    with pytest.raises(ValueError, match="needs choices"):
        rank_context(open_q)
    with pytest.raises(ValueError, match="unknown field"):
        teacher_prompt(S, "summary")
    assert collapse_ws("  a \n\n b\t") == "a b"
