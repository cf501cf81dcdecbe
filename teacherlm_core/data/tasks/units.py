"""``units``: unit conversions with four numeric options (length, mass, volume, time).

Distractors come from the classic mistakes: multiplying instead of dividing, not converting,
an extra factor of ten. Held out by entity: each unit pair (in both directions) is in one split.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from .base import Annotated, Split, conclude, fmt_number, number_choices, partition

__all__ = ["PAIRS", "Units"]


class Pair(NamedTuple):
    big: str  # plural of the larger unit
    small: str  # plural of the smaller unit
    factor: int  # small units in one big unit


# fmt: off
PAIRS: tuple[Pair, ...] = (
    Pair("meters", "centimeters", 100), Pair("kilometers", "meters", 1000),
    Pair("centimeters", "millimeters", 10), Pair("meters", "millimeters", 1000),
    Pair("kilograms", "grams", 1000), Pair("tons", "kilograms", 1000),
    Pair("liters", "milliliters", 1000), Pair("hours", "minutes", 60),
    Pair("minutes", "seconds", 60), Pair("days", "hours", 24),
    Pair("weeks", "days", 7), Pair("years", "months", 12),
    Pair("feet", "inches", 12), Pair("yards", "feet", 3),
    Pair("gallons", "quarts", 4), Pair("quarts", "pints", 2),
    Pair("pounds", "ounces", 16), Pair("decades", "years", 10),
    Pair("centuries", "years", 100), Pair("hours", "seconds", 3600),
)
# fmt: on

_POOL = partition(PAIRS, key=lambda p: f"{p.big}/{p.small}")


def _one(unit: str) -> str:
    """Singular of our plural unit names."""
    irregular = {"feet": "foot", "inches": "inch", "centuries": "century"}
    return irregular.get(unit, unit[:-1])


class Units:
    name = "units"
    version = "1"
    description = "Convert between units of length, mass, volume and time."
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        p: Pair = rng.choice(_POOL[split])
        fact = f"One {_one(p.big)} is {p.factor} {p.small}."
        entity = (f"{p.big}/{p.small}",)
        if rng.random() < 0.5:  # big -> small: multiply
            x = rng.choice([rng.randint(2, 12), rng.randint(2, 9) + 0.5])
            answer = x * p.factor
            question = f"How many {p.small} are in {fmt_number(x)} {p.big}?"
            steps = (
                f"To go to the smaller unit we multiply: {fmt_number(x)} x {p.factor} = {fmt_number(answer)}."
            )
            wrong = [x / p.factor, x, answer * 10]
            template = "to_small"
        else:  # small -> big: divide
            answer = rng.randint(2, 12)
            x = answer * p.factor
            question = f"How many {p.big} is {fmt_number(x)} {p.small}?"
            steps = f"To go to the larger unit we divide: {fmt_number(x)} / {p.factor} = {answer}."
            wrong = [x * p.factor, x, answer * 10]
            template = "to_big"
        return Annotated(
            question=question,
            choices=number_choices(rng, answer, wrong),
            answer=fmt_number(answer),
            fundamentals=f"{fact} A larger unit holds many smaller ones: multiply to get smaller units, divide to get larger ones.",
            chain_of_thought=f"{fact} {steps} {conclude(fmt_number(answer))}",
            common_mistakes=(
                f"Dividing when you should multiply (or the reverse), leaving the number unconverted, "
                f"or using the wrong factor instead of {p.factor}."
            ),
            template=template,
            entities=entity,
        )
