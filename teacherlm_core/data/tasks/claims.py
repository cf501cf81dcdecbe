"""``claims``: is a short factual claim about an entity true or false (in the spirit of CREAK).

Held out by entity: an animal or country is in exactly one split, and false claims borrow
their wrong value (another capital, another country) only from the same split.
"""

from __future__ import annotations

import random

from .base import Annotated, Split, article, conclude, partition
from .facts import ANIMALS, CLASS_FACTS, PLACES, Animal, Place

__all__ = ["Claims"]

CHOICES = ("true", "false")
_ANIMALS = partition(ANIMALS, key=lambda a: a.name)  # the same cut as every family that uses animals
_PLACES = partition(PLACES, key=lambda p: p.country)
_CHECK = "A claim is true only if it matches the known fact exactly; one wrong detail makes it false."


def _verdict(truth: bool) -> str:
    return "true" if truth else "false"


class Claims:
    name = "claims"
    version = "1"
    description = "Is a claim about an animal or a country true or false? (CREAK-like)"
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        if rng.random() < 0.6:
            return self._animal(rng, rng.choice(_ANIMALS[split]))
        return self._place(rng, split)

    def _animal(self, rng: random.Random, a: Animal) -> Annotated:
        kind = rng.choice(
            ["class", "flies"] + (["legs"] if a.legs is not None else []) + (["diet"] if a.diet else [])
        )
        truth = rng.random() < 0.5
        subject = article(a.name).capitalize()
        if kind == "class":
            shown = a.cls if truth else rng.choice([c for c in CLASS_FACTS if c != a.cls])
            claim, fact = f"{subject} is {article(shown)}.", f"{subject} is {article(a.cls)}."
            fundamentals = f"{CLASS_FACTS[a.cls]} {_CHECK}"
            mistakes = (
                a.confusion or f"Judging by where {a.plural} live or how they move instead of by their body."
            )
        elif kind == "legs":
            shown = a.legs if truth else rng.choice([n for n in (0, 2, 4, 6, 8) if n != a.legs])
            claim, fact = f"{subject} has {shown} legs.", f"{subject} has {a.legs} legs."
            fundamentals = f"{CLASS_FACTS[a.cls]} {_CHECK}"
            mistakes = "Counting arms, fins or wings as legs, or guessing from a related animal."
        elif kind == "flies":
            says_flies = a.flies if truth else not a.flies
            claim = f"{subject} can fly." if says_flies else f"{subject} cannot fly."
            fact = f"{subject} can fly." if a.flies else f"{subject} cannot fly."
            fundamentals = f"Flying needs working wings strong enough to lift the body. {_CHECK}"
            mistakes = (
                a.confusion
                or f"Assuming every {a.cls} can or cannot fly without checking the {a.name} itself."
            )
        else:
            eats_meat = a.diet in ("meat", "both")
            says_meat = eats_meat if truth else not eats_meat
            claim = f"{subject} eats meat." if says_meat else f"{subject} never eats meat."
            fact = {
                "meat": f"{subject} hunts or eats other animals.",
                "both": f"{subject} eats both plants and animals.",
                "plants": f"{subject} eats only plants.",
            }[a.diet]  # type: ignore[index]
            fundamentals = f"Meat eaters hunt or eat animals; plant eaters live on leaves, grass, seeds or nectar. {_CHECK}"
            mistakes = (
                f"Guessing the diet from the size of the {a.name} instead of from what it actually eats."
            )
        return self._make(claim, fact, truth, fundamentals, mistakes, f"animal_{kind}", (a.name,))

    def _place(self, rng: random.Random, split: Split) -> Annotated:
        pool = _PLACES[split]
        p: Place = rng.choice(pool)
        others = [o for o in pool if o is not p]
        truth = rng.random() < 0.5
        if p.continent is None or rng.random() < 0.6:
            entities: tuple[str, ...] = (p.country,)
            if truth:
                shown = p.capital
            elif p.famous_city and rng.random() < 0.5:
                shown = p.famous_city
            else:
                other = rng.choice(others)
                shown, entities = other.capital, (p.country, other.country)
            claim, fact = (
                f"{shown} is the capital of {p.country}.",
                f"The capital of {p.country} is {p.capital}.",
            )
            fundamentals = f"A capital is the city where a country's government sits; it is not always the largest city. {_CHECK}"
            mistakes = (
                f"Confusing the capital with a famous big city such as {p.famous_city}."
                if p.famous_city
                else "Picking the best-known city of the region instead of the seat of government."
            )
            return self._make(claim, fact, truth, fundamentals, mistakes, "place_capital", entities)
        continents = sorted({q.continent for q in PLACES if q.continent and q.continent != p.continent})
        shown = p.continent if truth else rng.choice(continents)
        claim, fact = f"{p.country} is in {shown}.", f"{p.country} is in {p.continent}."
        fundamentals = f"Every country lies on a continent; its capital {p.capital} is there too. {_CHECK}"
        mistakes = "Mixing up neighbouring regions, or guessing from the language spoken there."
        return self._make(claim, fact, truth, fundamentals, mistakes, "place_continent", (p.country,))

    def _make(self, claim, fact, truth, fundamentals, mistakes, template, entities) -> Annotated:
        answer = _verdict(truth)
        match = "matches" if truth else "does not match"
        cot = f"The claim is: {claim} The fact is: {fact} The claim {match} the fact. {conclude(answer)}"
        return Annotated(
            question=f"Is this claim true or false? {claim}",
            choices=CHOICES,
            answer=answer,
            fundamentals=fundamentals,
            chain_of_thought=cot,
            common_mistakes=mistakes,
            template=template,
            entities=entities,
        )
