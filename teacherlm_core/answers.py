"""Final answers in free text: which choice does a rationale conclude with?

Used by STaR (keep a rationale when it reaches the gold answer) and by augmentation (the
chain-of-thought consistency signal), so both read conclusions the same way.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .prompts import collapse_ws
from .schema import Sample

__all__ = [
    "SENTENCE_END",
    "Conclusion",
    "parse_answer",
    "same_answer",
    "sentence_key",
    "split_sentences",
    "until_loop",
    "words",
]

_CONCLUSION = re.compile(r"\banswer\s+is\b\s*:?\s*", re.IGNORECASE)
_AFTER = re.compile(r"[\s.,;:!?)\"'*]|$")  # what may follow an answer
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_PAREN_LETTER = re.compile(r"\(\s*([A-Za-z])\s*\)")
_BARE_LETTER = re.compile(r"([A-Z])(?=[\s.,;:!?]|$)")  # upper case only: "a" is an article


@dataclass(frozen=True)
class Conclusion:
    """A final answer found in a rationale: the answer (a choice's text, or the open answer as
    written), where its ``... answer is`` phrase starts and the index just past the answer."""

    answer: str
    start: int
    end: int


_WORDS = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words of ``text``, case-folded, punctuation dropped: what sentence comparisons look at."""
    return _WORDS.findall(text.casefold())


_TURN_MARKER = re.compile(r"^(?:[QA]|Answer|Question)\s*:\s*", re.IGNORECASE)


def split_sentences(text: str) -> list[tuple[int, str]]:
    """``(start offset, sentence)`` for each sentence of ``text`` (cut after ``.``/``!``/``?`` + space or end)."""
    starts = [0, *(m.end() for m in SENTENCE_END.finditer(text))]
    out = []
    for a, b in zip(starts, [*starts[1:], len(text)], strict=True):
        if sentence := text[a:b].strip():
            out.append((a + len(text[a:b]) - len(text[a:b].lstrip()), sentence))
    return out


def sentence_key(sentence: str, choices: Sequence[str] | None) -> str:
    """What two sentences share when one repeats the other: their words, case- and punctuation-blind
    (a leading ``A:``/``Q:`` turn marker dropped); every statement of one answer has the same key."""
    if (stated := parse_answer(sentence, choices)) is not None:
        return f"\0answer {stated.answer.casefold()}"
    return " ".join(words(_TURN_MARKER.sub("", sentence)))


def until_loop(text: str, choices: Sequence[str] | None = None) -> tuple[str, str | None]:
    """``text`` up to the first sentence that repeats an earlier one, and that sentence (``None`` if none).

    A small model decoding greedily falls into loops (``The answer is (A). The answer is (A). ...``);
    what comes after the first repeat adds nothing.
    """
    seen: set[str] = set()
    for start, sentence in split_sentences(text):
        key = sentence_key(sentence, choices)
        if key and key in seen:
            return text[:start].rstrip(), sentence
        seen.add(key)
    return text, None


def _answer_at(text: str, pos: int, choices: Sequence[str] | None) -> tuple[str, int] | None:
    rest = text[pos:]
    skip = len(rest) - len(rest.lstrip("\"'*“"))
    rest, pos = rest[skip:], pos + skip
    if choices is None:  # an open question: the rest of the sentence
        m = SENTENCE_END.search(rest)
        answer = (rest[: m.start()] if m else rest).strip()
        return (answer, pos + len(answer)) if answer else None
    if m := _PAREN_LETTER.match(rest):
        index = ord(m.group(1).upper()) - ord("A")
        if index >= len(choices):
            return None
        end = m.end()
        follow = rest[end:]
        choice = choices[index]
        # "(B) false": take the choice text along when it follows the letter
        if follow.lstrip().lower().startswith(choice.lower()):
            end += len(follow) - len(follow.lstrip()) + len(choice)
        return choice, pos + end
    for choice in sorted(choices, key=len, reverse=True):
        if rest.lower().startswith(choice.lower()) and _AFTER.match(rest, len(choice)):
            return choice, pos + len(choice)
    if (m := _BARE_LETTER.match(rest)) and ord(m.group(1)) - ord("A") < len(choices):
        return choices[ord(m.group(1)) - ord("A")], pos + m.end()
    return None


def parse_answer(text: str, choices: Sequence[str] | None) -> Conclusion | None:
    """The LAST ``... answer is X`` in ``text`` whose X names an answer.

    X may be a letter in parentheses (``(B)``, optionally followed by the choice text), the
    choice text itself, or a bare capital letter (``B.``); matching ignores case, except for the
    bare letter. For an open question (``choices=None``) X is the rest of the sentence.
    """
    found = None
    for m in _CONCLUSION.finditer(text):
        hit = _answer_at(text, m.end(), choices)
        if hit is not None:
            end = hit[1]
            while end < len(text) and text[end] in "\"'*”":  # closing quotes or markdown bold
                end += 1
            found = Conclusion(answer=hit[0], start=m.start(), end=end)
    return found


def same_answer(parsed: str, sample: Sample) -> bool:
    """Is a parsed answer the sample's gold answer (choice text, or the open answer loosely)?"""
    if sample.choices is not None:
        return parsed == sample.answer
    norm = lambda s: collapse_ws(s).lower().rstrip(".!?")  # noqa: E731
    return norm(parsed) == norm(sample.answer)
