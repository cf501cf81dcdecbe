"""Judging one rationale: its conclusion, and whether it holds enough reasoning to keep.

Reasoning is what the rationale says before its conclusion sentence, less what teaches nothing:
sentences that state an answer (``A: The answer is (A).``), sentences copied from the question
or its choices, and repeats of an earlier sentence. An untuned teacher given the hinted prompt
often writes only ``The answer is (A).`` again and again; kept, the teacher would learn to do
the same (the leakage problem of Hase et al. 2020, arXiv 2010.04119), so it is refused.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from ..answers import SENTENCE_END, parse_answer, same_answer, sentence_key, split_sentences, words
from ..engines import Generation
from ..prompts import FIELD_SUFFIX, collapse_ws
from ..schema import Sample

__all__ = ["Verdict", "judge", "reasoning_words", "restates_only"]


def _is_echo(text: str, sample: Sample) -> bool:
    low = text.lower()
    return (
        low.startswith("q:")
        or collapse_ws(sample.question).lower() in low
        or FIELD_SUFFIX["chain_of_thought"].strip().lower() in low
    )


def _is_garbled(text: str) -> bool:
    return "\ufffd" in text or any(unicodedata.category(ch) == "Cc" for ch in text)


def reasoning_words(text: str, sample: Sample) -> tuple[int, str | None]:
    """Words of reasoning in ``text``, and the first sentence it repeats (``None`` if none).

    A sentence counts unless it states an answer (:func:`~teacherlm_core.answers.parse_answer`
    finds one in it) or is a run of consecutive words of the question and its choices (a copy of
    the claim). Sentences are compared case- and punctuation-blind, two statements of the same
    answer are the same sentence, and a leading ``A:`` / ``Q:`` turn marker is not a word. A
    sentence that comes back is a generation loop: the caller refuses the rationale.
    """
    prompt = " ".join(words(" ".join([sample.question, *(sample.choices or [])])))
    seen: set[str] = set()
    count = 0
    for _, sentence in split_sentences(text):
        key = sentence_key(sentence, sample.choices)
        if not key:
            continue
        if key in seen:
            return count, sentence
        seen.add(key)
        if not key.startswith("\0") and f" {key} " not in f" {prompt} ":
            count += len(key.split())
    return count, None


def restates_only(reasoning: str, sample: Sample, min_words: int) -> bool:
    """Is ``reasoning`` (a rationale before its conclusion) only the answer said again?

    The gold answer's letter and text are masked (:func:`~teacherlm_core.augment.utility.mask_answer`)
    and what is left must hold ``min_words`` words of reasoning: "Fepgun is red." for "What color
    is Fepgun?" holds two ("Fepgun is ___"); a hinted teacher writes such restatements, and a
    student learns nothing from them that the label does not say.
    """
    from ..augment.utility import MASK, mask_answer

    count, _ = reasoning_words(mask_answer(reasoning, sample).replace(MASK, " "), sample)
    return count < min_words


def _sentence_start(text: str, pos: int) -> int:
    """Where the sentence holding ``pos`` starts (its conclusion sentence's start)."""
    ends = [m.end() for m in SENTENCE_END.finditer(text, 0, pos)]
    return ends[-1] if ends else 0


_NOT_COUNTED = " (statements of the answer and copies of the question do not count)"


@dataclass(frozen=True)
class Verdict:
    """The judgement of one generation: ``rationale`` is what would be kept, ``reason`` why not."""

    kept: bool
    rationale: str = ""
    reason: str = ""
    appended: bool = False


def _too_little(text: str, sample: Sample, min_words: int, where: str) -> Verdict | None:
    words, repeated = reasoning_words(text, sample)
    if repeated is not None:
        return Verdict(False, reason=f"repeats the sentence {repeated[:80]!r} (a generation loop)")
    if words < min_words:
        return Verdict(False, reason=f"fewer than {min_words} words of reasoning{where}{_NOT_COUNTED}")
    return None


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
        if refused := _too_little(body, sample, min_words, ""):
            return refused
        if restates_only(body, sample, min_words):
            return Verdict(
                False, reason=f"only restates the hinted answer (fewer than {min_words} words besides it)"
            )
        if not SENTENCE_END.search(body[-1:]):
            body += "."
        return Verdict(True, f"{body} So the answer is {sample.answer}.", appended=True)
    if not same_answer(concl.answer, sample):
        return Verdict(False, reason=f"concludes with {concl.answer!r}, gold is {sample.answer!r}")
    reasoning = text[: _sentence_start(text, concl.start)]
    if refused := _too_little(reasoning, sample, min_words, " before the conclusion"):
        return refused
    if hinted and restates_only(reasoning, sample, min_words):
        return Verdict(
            False, reason=f"only restates the hinted answer (fewer than {min_words} words besides it)"
        )
    rationale = text[: concl.end].rstrip()
    if not SENTENCE_END.search(rationale[-1:]):
        rationale += "."
    return Verdict(True, rationale)
