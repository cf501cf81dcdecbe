"""STaR's two prompts: answer-free (generate) and answer-hinted (rationalise)."""

from __future__ import annotations

from ..prompts import FIELD_SUFFIX, question_text, teacher_prompt
from ..schema import Sample

__all__ = ["GENERATE_TEMPLATE", "RATIONALIZE_TEMPLATE", "generate_prompt", "rationalize_prompt"]

GENERATE_TEMPLATE = "Q: {question} (A) {choice_0} (B) {choice_1} ... A: Let's think step by step."
RATIONALIZE_TEMPLATE = (
    "Q: {question} (A) {choice_0} (B) {choice_1} ... A: The answer is ({letter}). Let's think step by step."
)


def generate_prompt(sample: Sample) -> str:
    """The answer-free prompt: ``Q: {question} (A) ... A: Let's think step by step.``"""
    return f"{question_text(sample)} A:{FIELD_SUFFIX['chain_of_thought']}"


def rationalize_prompt(sample: Sample) -> str:
    """The hinted prompt: ``Q: ... A: The answer is (B). Let's think step by step.``"""
    return teacher_prompt(sample, "chain_of_thought")
