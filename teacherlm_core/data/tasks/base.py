"""What a built-in task family is, and the helpers every family shares.

A family turns ``random.Random`` draws into :class:`Annotated` items: a multiple-choice
question plus the gold ``fundamentals``, ``chain_of_thought`` and ``common_mistakes`` that a
human annotator would have written (the generator is the annotator). Each family holds out
its test material by *template* or by *entity*: the split of an item is fixed by what it is
made of, never by the seed, so a model trained on any seed's train split has never seen a test
template or entity.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

__all__ = [
    "SPLITS",
    "SPLIT_FRACTIONS",
    "Annotated",
    "TaskFamily",
    "article",
    "conclude",
    "fmt_number",
    "number_choices",
    "partition",
    "shuffled_choices",
    "split_of",
    "split_sizes",
]

SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}

Split = Literal["train", "validation", "test"]
T = TypeVar("T")


@dataclass(frozen=True)
class Annotated:
    """One generated question with its gold annotation.

    Attributes:
        question: the question text (short: it feeds tiny LMs).
        choices: the options, in display order; ``answer`` is one of them.
        answer: the gold option.
        fundamentals: the background knowledge the question rests on.
        chain_of_thought: step-by-step reasoning ending in :func:`conclude`'s sentence.
        common_mistakes: the errors people typically make on it.
        template: id of the template the question was written from.
        entities: the held-out entities it mentions (empty for template-held-out families).
    """

    question: str
    choices: tuple[str, ...]
    answer: str
    fundamentals: str
    chain_of_thought: str
    common_mistakes: str
    template: str
    entities: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.answer not in self.choices or len(set(self.choices)) != len(self.choices):
            raise ValueError(f"bad choices {self.choices!r} for answer {self.answer!r} ({self.template})")


class TaskFamily(Protocol):
    """A procedural task family; ``generate`` draws one item of the given split."""

    name: str
    version: str
    description: str
    holdout: Literal["template", "entity", "entity_relation", "item"]

    def generate(self, rng: random.Random, split: Split) -> Annotated: ...


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def partition(items: Sequence[T], key=str) -> dict[str, list[T]]:
    """Split ``items`` 70/15/15 into train/validation/test, fixed by content and not by seed.

    Items are ordered by a hash of ``key(item)`` and cut in that order, so the partition is
    balanced, stable across runs and seeds, and the same entity always lands in the same
    split, whichever family uses it. Every split gets at least one item.
    """
    ranked = sorted(items, key=lambda it: _rank(key(it)))
    n = len(ranked)
    if n < 3:
        raise ValueError("partition needs at least three items")
    n_test = max(1, round(n * SPLIT_FRACTIONS["test"]))
    n_val = max(1, round(n * SPLIT_FRACTIONS["validation"]))
    n_train = n - n_val - n_test
    return {
        "train": ranked[:n_train],
        "validation": ranked[n_train : n_train + n_val],
        "test": ranked[n_train + n_val :],
    }


def split_of(item: T, parts: dict[str, list[T]]) -> str:
    """The split that :func:`partition` put ``item`` in."""
    for split, members in parts.items():
        if item in members:
            return split
    raise KeyError(item)


def split_sizes(n: int, test: int = 0) -> dict[str, int]:
    """How many of ``n`` items go to each split (70/15/15, rounding into train).

    ``test > 0`` asks for that many test items instead of 15% of ``n``; train and validation keep
    their sizes, so a larger held-out set leaves the training data exactly as it was.
    """
    val = round(n * SPLIT_FRACTIONS["validation"])
    share = round(n * SPLIT_FRACTIONS["test"])
    return {"train": n - val - share, "validation": val, "test": test or share}


def conclude(answer: str) -> str:
    """The last sentence of every gold chain of thought; STaR parses the answer from it."""
    return f"So the answer is {answer}."


def shuffled_choices(rng: random.Random, answer: str, distractors: Sequence[str], k: int) -> tuple[str, ...]:
    """``answer`` plus ``k - 1`` distinct distractors, in random order."""
    pool = [d for d in dict.fromkeys(distractors) if d != answer]
    if len(pool) < k - 1:
        raise ValueError(f"need {k - 1} distractors for {answer!r}, have {len(pool)}")
    options = [answer, *rng.sample(pool, k - 1)]
    rng.shuffle(options)
    return tuple(options)


def number_choices(
    rng: random.Random, answer: int | float, wrong: Sequence[int | float], k: int = 4
) -> tuple[str, ...]:
    """Numeric options: the answer, the "typical mistake" values first, then nearby numbers."""
    fmt = fmt_number
    right = fmt(answer)
    pool = [fmt(w) for w in wrong if fmt(w) != right and (not isinstance(w, int | float) or w >= 0)]
    pool = list(dict.fromkeys(pool))[: k - 1]
    step = 1
    while len(pool) < k - 1:
        for cand in (answer + step, answer - step):
            if cand >= 0 and fmt(cand) not in pool and fmt(cand) != right and len(pool) < k - 1:
                pool.append(fmt(cand))
        step += 1
    options = [right, *pool]
    rng.shuffle(options)
    return tuple(options)


def fmt_number(x: int | float) -> str:
    """``3.0`` -> ``"3"``, ``0.25`` -> ``"0.25"``: never scientific notation."""
    if isinstance(x, float):
        return f"{round(x, 6):f}".rstrip("0").rstrip(".")
    return str(x)


def article(noun: str) -> str:
    """``"an owl"``, ``"a lion"``."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
