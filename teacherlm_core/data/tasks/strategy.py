"""``strategy``: yes/no questions that need two or three implicit steps (in the spirit of StrategyQA).

"Could a hippo outrun a rabbit?" needs both top speeds and a comparison. Only pairs whose
numbers differ by a wide margin are asked, so rounded facts never flip the answer. Held out by
entity: both animals of a question come from the same split.
"""

from __future__ import annotations

import random

from .base import Annotated, Split, article, conclude, fmt_number, partition
from .facts import ANIMALS, Animal

__all__ = ["Strategy"]

CHOICES = ("yes", "no")
_POOL = partition(ANIMALS, key=lambda a: a.name)
_COUNTS = {2: "two", 3: "three", 4: "four", 5: "five", 10: "ten"}


def _kg(x: float) -> str:
    return f"{fmt_number(x)} kg" if x >= 1 else f"{fmt_number(x * 1000)} g"


class Strategy:
    name = "strategy"
    version = "1"
    description = "Yes/no questions that need several implicit reasoning steps (StrategyQA-like)."
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        pool = _POOL[split]
        makers = [self._outrun, self._outweigh, self._legs, self._leaves]
        while True:
            item = rng.choice(makers)(rng, pool)
            if item is not None:
                return item

    def _outrun(self, rng: random.Random, pool: list[Animal]) -> Annotated | None:
        pair = _pick(rng, [x for x in pool if x.speed], 2)
        if pair is None:
            return None
        a, b = pair
        fast, slow = max(a.speed, b.speed), min(a.speed, b.speed)
        if fast < 1.5 * slow:
            return None
        yes = a.speed > b.speed
        steps = (
            f"A {a.name} can run about {fmt_number(a.speed)} km/h. "
            f"A {b.name} can run about {fmt_number(b.speed)} km/h. "
            f"{fmt_number(a.speed)} is {'more' if yes else 'less'} than {fmt_number(b.speed)}, "
            f"so the {a.name} is {'faster' if yes else 'slower'}."
        )
        return _item(
            f"Could {article(a.name)} outrun {article(b.name)}?",
            yes,
            "To outrun another animal you must have a higher top speed on land.",
            steps,
            "Judging speed by size or fierceness instead of comparing the two top speeds.",
            "outrun",
            (a.name, b.name),
        )

    def _outweigh(self, rng: random.Random, pool: list[Animal]) -> Annotated | None:
        pair = _pick(rng, [x for x in pool if x.weight], 2)
        if pair is None:
            return None
        a, b = pair
        n = rng.choice(list(_COUNTS))
        group = n * b.weight
        big, small = max(a.weight, group), min(a.weight, group)
        if big < 2 * small:
            return None
        yes = a.weight > group
        steps = (
            f"A {a.name} weighs about {_kg(a.weight)}. "
            f"A {b.name} weighs about {_kg(b.weight)}, so {_COUNTS[n]} of them weigh about {_kg(group)}. "
            f"{_kg(a.weight)} is {'more' if yes else 'less'} than {_kg(group)}."
        )
        return _item(
            f"Does {article(a.name)} weigh more than {_COUNTS[n]} {b.plural} together?",
            yes,
            "The weight of a group is the weight of one member times the number of members.",
            steps,
            f"Comparing with a single {b.name} and forgetting to multiply by {n}.",
            "outweigh",
            (a.name, b.name),
        )

    def _legs(self, rng: random.Random, pool: list[Animal]) -> Annotated | None:
        pair = _pick(rng, [x for x in pool if x.legs], 2)
        if pair is None:
            return None
        a, b = pair
        n, m = rng.choice([2, 3, 4, 5]), rng.choice([2, 3, 4, 5])
        la, lb = n * a.legs, m * b.legs
        if la == lb:
            return None
        yes = la > lb
        steps = (
            f"A {a.name} has {a.legs} legs, so {_COUNTS[n]} {a.plural} have {n} x {a.legs} = {la} legs. "
            f"A {b.name} has {b.legs} legs, so {_COUNTS[m]} {b.plural} have {m} x {b.legs} = {lb} legs. "
            f"{la} is {'more' if yes else 'less'} than {lb}."
        )
        return _item(
            f"Do {_COUNTS[n]} {a.plural} have more legs than {_COUNTS[m]} {b.plural}?",
            yes,
            "Total legs are legs per animal times the number of animals; insects have six legs and spiders eight.",
            steps,
            "Comparing the number of animals, or the legs of one animal, instead of the totals.",
            "legs",
            (a.name, b.name),
        )

    def _leaves(self, rng: random.Random, pool: list[Animal]) -> Annotated | None:
        one = _pick(rng, [x for x in pool if x.diet in ("plants", "meat")], 1)
        if one is None:
            return None
        (a,) = one
        yes = a.diet == "plants"
        eats = "only plants" if yes else "meat, not plants"
        steps = f"A {a.name} eats {eats}. A meal of grass and leaves is plant food."
        return _item(
            f"Would {article(a.name)} happily eat a meal of grass and leaves?",
            yes,
            "Plant eaters live on grass, leaves, seeds or nectar; meat eaters need other animals as food.",
            steps,
            f"Guessing from the size or the home of the {a.name} instead of from its diet.",
            "leaves",
            (a.name,),
        )


def _pick(rng: random.Random, candidates: list[Animal], k: int) -> list[Animal] | None:
    return rng.sample(candidates, k) if len(candidates) >= k else None


def _item(question, yes, fundamentals, steps, mistakes, template, entities) -> Annotated:
    answer = "yes" if yes else "no"
    return Annotated(
        question=question,
        choices=CHOICES,
        answer=answer,
        fundamentals=fundamentals,
        chain_of_thought=f"{steps} {conclude(answer)}",
        common_mistakes=mistakes,
        template=template,
        entities=entities,
    )
