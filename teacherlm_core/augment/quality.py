"""Is a teacher generation usable? Cleaning, rejection reasons, and the CoT consistency signal.

A generation is rejected when it is empty or whitespace only, when it echoes the prompt, or when
it hit the token limit with no complete sentence to keep. A length-truncated generation that has
complete sentences is trimmed to its last one. Rejections are retried with a fresh seed, then
quarantined with the reason.
"""

from __future__ import annotations

import re

from ..engines import Generation
from ..prompts import collapse_ws, letter
from ..schema import Sample

__all__ = ["clean_generation", "final_answer", "is_consistent"]

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_ANSWER = re.compile(r"answer is\s*:?\s*(?:\(([A-Z])\)\s*)?([^.\n]*)", re.IGNORECASE)


def clean_generation(gen: Generation, prompt: str) -> tuple[str | None, str | None]:
    """``(text, None)`` for a usable generation, else ``(None, reason)``."""
    text = collapse_ws(gen.text)
    if not text:
        return None, "empty generation" if not gen.text else "whitespace-only generation"
    norm_prompt = collapse_ws(prompt).casefold()
    folded = text.casefold()
    if folded in norm_prompt or (len(folded) > 20 and folded[: max(20, len(folded) // 2)] in norm_prompt):
        return None, "generation echoes the prompt"
    if gen.finish_reason == "length":
        ends = list(_SENTENCE_END.finditer(text))
        if not ends:
            return None, f"hit the token limit ({gen.num_tokens} tokens) with no complete sentence"
        text = text[: ends[-1].end()]
    return text, None


def final_answer(text: str, sample: Sample) -> str | None:
    """The answer a chain of thought concludes with (the last "answer is ..."), as choice text.

    Accepts ``(B)``, ``(B) text``, or the choice text itself; ``None`` when nothing parses.
    """
    matches = list(_ANSWER.finditer(text))
    if not matches:
        return None
    letter_part, rest = matches[-1].group(1), collapse_ws(matches[-1].group(2)).strip(" .\"'").casefold()
    if sample.choices:
        if letter_part:
            idx = ord(letter_part.upper()) - ord("A")
            return sample.choices[idx] if idx < len(sample.choices) else None
        for i, choice in enumerate(sample.choices):
            if rest == collapse_ws(choice).casefold() or rest == f"({letter(i)})".casefold():
                return choice
        return None
    return rest or None


def is_consistent(chain_of_thought: str, sample: Sample) -> bool | None:
    """Does the chain of thought conclude with the gold answer? ``None`` if it concludes nothing."""
    got = final_answer(chain_of_thought, sample)
    if got is None:
        return None
    return collapse_ws(got).casefold() == collapse_ws(sample.answer).casefold()
