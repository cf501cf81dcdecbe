"""``ordering``: put three or four people in order from comparisons, then pick an extreme.

"Amy is taller than Ben. Cal is shorter than Ben. Who is the shortest?" Held out by entity:
the people's names are split 70/15/15, so test questions use names train never shows.
"""

from __future__ import annotations

import itertools
import random
from typing import NamedTuple

from .base import Annotated, Split, conclude, partition
from .facts import NAMES

__all__ = ["Ordering"]

_POOL = partition(NAMES)


class Scale(NamedTuple):
    more: str  # "taller"
    less: str  # "shorter"
    most: str  # "tallest"
    least: str  # "shortest"


SCALES = (
    Scale("taller", "shorter", "tallest", "shortest"),
    Scale("older", "younger", "oldest", "youngest"),
    Scale("faster", "slower", "fastest", "slowest"),
    Scale("heavier", "lighter", "heaviest", "lightest"),
)


class Ordering:
    name = "ordering"
    version = "1"
    description = "Order people from pairwise comparisons and name the extreme one."
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        scale = rng.choice(SCALES)
        people = rng.sample(_POOL[split], rng.choice([3, 3, 4]))  # people[0] is the most
        facts = []
        for hi, lo in itertools.pairwise(people):
            facts.append(
                f"{hi} is {scale.more} than {lo}."
                if rng.random() < 0.5
                else f"{lo} is {scale.less} than {hi}."
            )
        rng.shuffle(facts)
        ask_most = rng.random() < 0.5
        word = scale.most if ask_most else scale.least
        answer = people[0] if ask_most else people[-1]
        choices = list(people)
        rng.shuffle(choices)
        chain = ", ".join(people)
        cot = (
            f"Each fact links two people. Putting them in one line from {scale.most} to {scale.least} "
            f"gives: {chain}. The {word} is at the {'start' if ask_most else 'end'} of the line, "
            f"which is {answer}. {conclude(answer)}"
        )
        return Annotated(
            question=f"{' '.join(facts)} Who is the {word}?",
            choices=tuple(choices),
            answer=answer,
            fundamentals=(
                f"'{scale.more.capitalize()} than' is transitive: if A is {scale.more} than B and B is "
                f"{scale.more} than C, then A is {scale.more} than C. '{scale.less.capitalize()}' is the reverse."
            ),
            chain_of_thought=cot,
            common_mistakes=(
                f"Reading '{scale.less}' as '{scale.more}', or picking the person named first or last "
                "in the text instead of building the whole order."
            ),
            template=f"{scale.more}_{len(people)}",
            entities=tuple(sorted(people)),
        )
