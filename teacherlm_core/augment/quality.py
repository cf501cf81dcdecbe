"""Is a teacher generation usable? Cleaning, rejection reasons, and the CoT consistency signal.

A generation is rejected when it is empty or whitespace only, when it echoes the prompt, or when
it hit the token limit with no complete sentence to keep. A length-truncated generation that has
complete sentences is trimmed to its last one, and one that falls into a loop (a sentence that
repeats an earlier one, as small models decoding greedily do) is trimmed before the repeat.
Rejections are retried with a fresh seed, then quarantined with the reason.
"""

from __future__ import annotations

from ..answers import SENTENCE_END, parse_answer, same_answer, until_loop
from ..engines import Generation
from ..prompts import collapse_ws
from ..schema import Sample

__all__ = ["clean_generation", "is_consistent"]


def clean_generation(gen: Generation, prompt: str) -> tuple[str | None, str | None]:
    """``(text, None)`` for a usable generation, else ``(None, reason)``."""
    if gen.finish_reason == "error":
        return None, gen.error or "the engine could not serve the request"
    text = collapse_ws(gen.text)
    if not text:
        return None, "empty generation" if not gen.text else "whitespace-only generation"
    norm_prompt = collapse_ws(prompt).casefold()
    folded = text.casefold()
    if folded in norm_prompt or (len(folded) > 20 and folded[: max(20, len(folded) // 2)] in norm_prompt):
        return None, "generation echoes the prompt"
    if gen.finish_reason == "length":
        ends = list(SENTENCE_END.finditer(text))
        if not ends:
            return None, f"hit the token limit ({gen.num_tokens} tokens) with no complete sentence"
        text = text[: ends[-1].end()]
    return until_loop(text)[0], None


def is_consistent(chain_of_thought: str, sample: Sample) -> bool | None:
    """Does the chain of thought conclude with the gold answer? ``None`` if it concludes nothing."""
    found = parse_answer(chain_of_thought, sample.choices)
    return None if found is None else same_answer(found.answer, sample)
