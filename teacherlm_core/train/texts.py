"""Multi-task training texts (the paper's student recipe) and the data check behind them.

From each sample come up to four texts (DESIGN "Prompt formats")::

    plain              Q: ... (A) ... (B) ... A: The answer is (B).
    <field>            Q: ... A: The answer is (B). <FIELD_SUFFIX[field]> <the field's text>

Each text keeps its ``prompt`` and ``completion`` apart so the loss can skip the prompt
(``texts.loss: completion``). Mixture weights repeat or subsample each kind deterministically.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DataError
from ..prompts import FIELD_SUFFIX, base_text, collapse_ws, question_text, teacher_prompt
from ..records import read_samples
from ..schema import Sample

__all__ = ["TrainingText", "build_texts", "load_training_samples", "sample_texts"]


@dataclass(frozen=True)
class TrainingText:
    """One training sequence: ``prompt + completion``; ``kind`` is ``plain`` or a field name."""

    sample_id: str
    kind: str
    prompt: str
    completion: str

    @property
    def text(self) -> str:
        return self.prompt + self.completion


def sample_texts(sample: Sample, kinds: Sequence[str], position: str = "after_answer") -> list[TrainingText]:
    """The training texts of one sample, one per kind, in the order given.

    ``position`` is where an explanation starts: ``after_answer`` (``Q: ... A: The answer is (B).
    <suffix> <text>``, the paper's format) or ``after_question`` (``Q: ... (A) .. (B) .. <suffix>
    <text>``: no answer in the prompt).
    """
    out = []
    for kind in kinds:
        if kind == "plain":
            full = base_text(sample)
            prompt = question_text(sample) + " A:"
            out.append(TrainingText(sample.id, kind, prompt, full[len(prompt) :]))
        else:
            body = collapse_ws(getattr(sample, kind))
            if position == "after_question":
                prompt = question_text(sample) + FIELD_SUFFIX[kind]
            else:
                prompt = teacher_prompt(sample, kind)
            out.append(TrainingText(sample.id, kind, prompt, " " + body))
    return out


def build_texts(
    samples: Sequence[Sample], kinds: Sequence[str], weights: dict[str, float], seed: int
) -> tuple[list[TrainingText], dict[str, int]]:
    """Every sample's texts after the mixture weights; returns ``(texts, count per kind)``.

    A weight ``w`` keeps each text ``floor(w)`` times plus a seeded random ``w - floor(w)``
    share of them once more, so ``2`` doubles a kind and ``0.5`` keeps half of it.
    """
    by_kind: dict[str, list[TrainingText]] = {k: [] for k in kinds}
    for sample in samples:
        for text in sample_texts(sample, kinds):
            by_kind[text.kind].append(text)
    texts: list[TrainingText] = []
    counts: dict[str, int] = {}
    for kind, items in by_kind.items():
        weight = weights.get(kind, 1.0)
        whole = int(weight)
        chosen = items * whole
        extra = round((weight - whole) * len(items))
        if extra:
            chosen += random.Random(f"{seed}/{kind}").sample(items, extra)
        counts[kind] = len(chosen)
        texts += chosen
    return texts, counts


def load_training_samples(path: str, kinds: Sequence[str], *, display: str | None = None) -> list[Sample]:
    """Read and check training data: every record valid, and every field the texts need present.

    Args:
        path: a local JSONL or Parquet file.
        kinds: the text kinds to build (``plain`` and/or field names).
        display: the name to report (the user's URI when ``path`` is a downloaded copy).

    Raises:
        DataError: the first invalid record; or, when records lack fields that the texts need,
            one error naming all of those fields with the count and first line of each.
    """
    shown = display or path
    needed = [k for k in kinds if k != "plain"]
    missing: dict[str, tuple[int, int]] = {}  # field -> (first line, count)
    samples: list[Sample] = []
    try:
        for line, sample in read_samples(path):
            for field in needed:
                value = getattr(sample, field, None)
                if not isinstance(value, str) or not value.strip():
                    first, count = missing.get(field, (line, 0))
                    missing[field] = (first, count + 1)
            samples.append(sample)
    except DataError as exc:  # name the user's file, not a downloaded copy
        raise DataError(shown, exc.line, exc.field, exc.reason) from None
    if missing:
        first_line = min(first for first, _ in missing.values())
        detail = "; ".join(
            f"'{f}' missing or empty in {n} of {len(samples)} records (first: line {first})"
            for f, (first, n) in missing.items()
        )
        raise DataError(
            shown,
            first_line,
            ", ".join(missing),
            f"{detail}. The training texts {', '.join(repr(f) for f in missing)} need these fields: "
            "augment the data first, or leave them out of texts.fields",
        )
    if not samples:
        raise DataError(shown, None, None, "no records")
    return samples
