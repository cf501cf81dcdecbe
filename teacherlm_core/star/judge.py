"""Judging one rationale: its conclusion, and whether it is well-formed enough to keep."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..answers import SENTENCE_END, parse_answer, same_answer
from ..engines import Generation
from ..prompts import FIELD_SUFFIX, collapse_ws
from ..schema import Sample

__all__ = ["Verdict", "judge"]


def _is_echo(text: str, sample: Sample) -> bool:
    low = text.lower()
    return (
        low.startswith("q:")
        or collapse_ws(sample.question).lower() in low
        or FIELD_SUFFIX["chain_of_thought"].strip().lower() in low
    )


def _is_garbled(text: str) -> bool:
    return "\ufffd" in text or any(unicodedata.category(ch) == "Cc" for ch in text)


def _sentence_start(text: str, pos: int) -> int:
    """Where the sentence holding ``pos`` starts (its conclusion sentence's start)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text, 0, pos)]
    return ends[-1] if ends else 0


@dataclass(frozen=True)
class Verdict:
    """The judgement of one generation: ``rationale`` is what would be kept, ``reason`` why not."""

    kept: bool
    rationale: str = ""
    reason: str = ""
    appended: bool = False


def judge(generation: Generation, sample: Sample, *, hinted: bool, min_words: int = 3) -> Verdict:
    """Decide whether a generation is a rationale to keep (see the module docstring for the rules).

    The kept rationale is whitespace-collapsed and ends right after its conclusion: anything the
    teacher wrote after its final answer is dropped.
    """
    if generation.finish_reason == "error":  # the request could not be served (e.g. longer than the context)
        return Verdict(False, reason=generation.error or "the engine could not serve the request")
    text = collapse_ws(generation.text)
    cut = generation.finish_reason == "length"
    if not text:
        return Verdict(False, reason="empty output")
    if _is_echo(text, sample):
        return Verdict(False, reason="echoes the prompt")
    if _is_garbled(text):
        return Verdict(False, reason="garbled text (control characters or undecodable bytes)")
    concl = parse_answer(text, sample.choices)
    if concl is None:
        if not hinted:
            tail = " (cut at max_new_tokens)" if cut else ""
            return Verdict(False, reason=f"no final answer ('the answer is ...') found{tail}")
        body = text[: _sentence_start(text, len(text))] if cut else text
        if cut and not body:
            return Verdict(False, reason="cut at max_new_tokens before one complete sentence")
        if len(body.split()) < min_words:
            return Verdict(False, reason=f"fewer than {min_words} words of reasoning")
        if not SENTENCE_END.search(body[-1:]):
            body += "."
        return Verdict(True, f"{body} So the answer is {sample.answer}.", appended=True)
    if not same_answer(concl.answer, sample):
        return Verdict(False, reason=f"concludes with {concl.answer!r}, gold is {sample.answer!r}")
    reasoning = text[: _sentence_start(text, concl.start)]
    if len(reasoning.split()) < min_words:
        return Verdict(False, reason=f"fewer than {min_words} words of reasoning before the conclusion")
    rationale = text[: concl.end].rstrip()
    if not SENTENCE_END.search(rationale[-1:]):
        rationale += "."
    return Verdict(True, rationale)
