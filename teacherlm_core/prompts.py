"""Prompt formats: the paper's released teacher formats, student training texts, eval prompts.

Base text of a multiple-choice sample, choices lettered in order::

    Q: {question} (A) {choice_0} (B) {choice_1} ... A: The answer is ({letter}).

The teacher is answer-conditioned: each field is its continuation of the base text plus one
suffix (``FIELD_SUFFIX``). Zero-shot rank classification scores the letters after the context
``... A: The answer is (``. Runs of whitespace collapse to one space everywhere.
"""

from __future__ import annotations

import string

from .schema import Sample

__all__ = [
    "FIELD_SUFFIX",
    "base_text",
    "collapse_ws",
    "letter",
    "question_text",
    "rank_candidates",
    "rank_context",
    "teacher_prompt",
]

# The paper's released suffixes, one per explanation field.
FIELD_SUFFIX = {
    "chain_of_thought": " Let's think step by step.",
    "common_mistakes": " The common mistakes are:",
    "fundamentals": " The fundamental of this question is:",
}


def collapse_ws(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs...) to one space and strip the ends.

    ``str.split()`` splits at exactly the characters ``\\s`` matches (``str.isspace``), several
    times faster than the regex; augmentation calls this millions of times at 2M samples."""
    return " ".join(text.split())


def letter(index: int) -> str:
    """``0 -> "A"``, ``1 -> "B"``...; more than 26 choices is not a multiple-choice question."""
    if not 0 <= index < len(string.ascii_uppercase):
        raise ValueError(f"choice index {index} out of range A-Z")
    return string.ascii_uppercase[index]


def question_text(sample: Sample) -> str:
    """``Q: {question} (A) {choice_0} (B) {choice_1} ...`` (no choices for open questions)."""
    parts = [f"Q: {collapse_ws(sample.question)}"]
    for i, choice in enumerate(sample.choices or []):
        parts.append(f"({letter(i)}) {collapse_ws(choice)}")
    return " ".join(parts)


def _answer_text(sample: Sample) -> str:
    if sample.choices is None:
        return collapse_ws(sample.answer)
    return f"({letter(sample.answer_index)})"


def base_text(sample: Sample) -> str:
    """The full base text, gold answer included: ``Q: ... A: The answer is (B).``"""
    return f"{question_text(sample)} A: The answer is {_answer_text(sample)}."


def teacher_prompt(sample: Sample, field: str) -> str:
    """The answer-conditioned prompt whose continuation is the teacher's ``field``."""
    try:
        suffix = FIELD_SUFFIX[field]
    except KeyError:
        raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELD_SUFFIX)}") from None
    return base_text(sample) + suffix


def rank_context(sample: Sample) -> str:
    """The zero-shot context: everything up to the answer letter, ``... A: The answer is (``."""
    if sample.choices is None:
        raise ValueError(f"sample {sample.id!r}: rank classification needs choices")
    return f"{question_text(sample)} A: The answer is ("


def rank_candidates(sample: Sample) -> list[str]:
    """The letters scored after :func:`rank_context`: ``["A", "B", ...]``."""
    return [letter(i) for i in range(len(sample.choices or []))]
