"""``syllogisms``: does a statement follow from two premises? (yes / no / cannot tell).

The premises are deliberately arbitrary ("All pilots are poets"), so only logic answers them.
Every logical form appears in every split; held out by entity: the group nouns are split
70/15/15, so test questions use nouns train never shows.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from .base import Annotated, Split, conclude, partition

__all__ = ["FORMS", "Syllogisms"]

CHOICES = ("yes", "no", "cannot tell")

# fmt: off
NOUNS = (
    "artists", "bakers", "cooks", "dancers", "drivers", "farmers", "gardeners", "hikers", "judges",
    "singers", "painters", "pilots", "poets", "sailors", "teachers", "writers", "doctors", "nurses",
    "runners", "swimmers", "players", "readers", "builders", "climbers", "hunters", "golfers",
    "skaters", "tailors", "waiters", "actors", "boxers", "cyclists", "drummers", "jugglers",
    "campers", "fishers", "guards", "miners", "knights", "rangers",
)
# fmt: on
_POOL = partition(NOUNS)


class Form(NamedTuple):
    id: str
    premises: tuple[str, str]
    statement: str
    answer: str
    reasoning: str
    fundamentals: str
    mistakes: str


_CHAIN = "If every member of one group is in a second group, it is in every group that contains the second."
_EMPTY = "If no member of one group is in another, anything inside the first group is outside the other."
_SOME = "'Some X are Y' only promises at least one X that is Y; it says nothing about the others."
_REAL = "Answering from real-world knowledge instead of from the statements alone."

FORMS = (
    Form(
        "barbara",
        ("All {x} are {y}.", "All {y} are {z}."),
        "all {x} are {z}",
        "yes",
        "Every one of the {x} is one of the {y}, and every one of the {y} is one of the {z}. "
        "So every one of the {x} is one of the {z}.",
        _CHAIN,
        _REAL,
    ),
    Form(
        "barbara_neg",
        ("All {x} are {y}.", "All {y} are {z}."),
        "some {x} are not {z}",
        "no",
        "Every one of the {x} is one of the {y}, and all {y} are {z}, so all {x} are {z}. "
        "Then no {x} can be outside the {z}, and the statement is false.",
        _CHAIN,
        "Treating 'some are not' as possible when the premises already settle it.",
    ),
    Form(
        "celarent",
        ("All {x} are {y}.", "No {y} are {z}."),
        "no {x} are {z}",
        "yes",
        "Every one of the {x} is one of the {y}, and none of the {y} are {z}. So none of the {x} are {z}.",
        _EMPTY,
        _REAL,
    ),
    Form(
        "celarent_neg",
        ("All {x} are {y}.", "No {y} are {z}."),
        "some {x} are {z}",
        "no",
        "Every one of the {x} is one of the {y}, and none of the {y} are {z}, so none of the {x} are {z}. "
        "The statement says some are, which is false.",
        _EMPTY,
        _REAL,
    ),
    Form(
        "darii",
        ("Some {x} are {y}.", "All {y} are {z}."),
        "some {x} are {z}",
        "yes",
        "Some of the {x} are {y}, and all {y} are {z}. Those {x} are therefore {z}.",
        _SOME,
        "Reading 'some' as 'all' or as 'none'.",
    ),
    Form(
        "ferio",
        ("Some {x} are {y}.", "No {y} are {z}."),
        "some {x} are not {z}",
        "yes",
        "Some of the {x} are {y}, and no {y} are {z}. Those {x} are therefore not {z}.",
        _SOME,
        "Reading 'some' as 'all' and concluding that no {x} are {z}.",
    ),
    Form(
        "undistributed",
        ("All {x} are {y}.", "Some {y} are {z}."),
        "some {x} are {z}",
        "cannot tell",
        "All {x} are {y}, but only some {y} are {z}. Those {y} might not include any {x}. "
        "The premises do not settle it.",
        _SOME,
        "Assuming the {y} that are {z} must include some of the {x}.",
    ),
    Form(
        "shared_group",
        ("All {x} are {z}.", "All {y} are {z}."),
        "all {x} are {y}",
        "cannot tell",
        "Both the {x} and the {y} are inside the {z}, but that does not put the {x} inside the {y}. "
        "The premises do not settle it.",
        _CHAIN,
        "Thinking two groups that share a larger group must be the same group.",
    ),
    Form(
        "two_negatives",
        ("No {x} are {y}.", "No {y} are {z}."),
        "no {x} are {z}",
        "cannot tell",
        "The {x} are outside the {y}, and the {z} are outside the {y}, but the {x} and the {z} "
        "could still overlap. The premises do not settle it.",
        _EMPTY,
        "Concluding something from two negative premises.",
    ),
)


class Syllogisms:
    name = "syllogisms"
    version = "1"
    description = "Does a statement follow from two premises? (yes / no / cannot tell)."
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        form = rng.choice(FORMS)
        x, y, z = rng.sample(_POOL[split], 3)
        fill = {"x": x, "y": y, "z": z}
        premises = " ".join(p.format(**fill) for p in form.premises)
        statement = form.statement.format(**fill)
        return Annotated(
            question=f"{premises} If these are true, is it true that {statement}?",
            choices=CHOICES,
            answer=form.answer,
            fundamentals=form.fundamentals + " Only the given statements count.",
            chain_of_thought=f"{form.reasoning.format(**fill)} {conclude(form.answer)}",
            common_mistakes=form.mistakes.format(**fill),
            template=form.id,
            entities=(x, y, z),
        )
