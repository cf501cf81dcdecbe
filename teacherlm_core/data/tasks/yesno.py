"""Yes/no renderings of the step-by-step families: "is this the answer?" (chance 0.5).

``arithmetic_yn`` and ``ordering_yn`` take an item of ``arithmetic`` or ``ordering`` and ask
whether one option is its answer: the gold answer half of the time, a distractor (for
arithmetic, the result of a typical mistake) otherwise. The options are always ``(A) yes
(B) no``, so there is no letter to find; the gold chain of thought keeps the intermediate steps
and ends by comparing them with the proposed answer. Held out as the base family holds out
(arithmetic: test wordings unseen in training; ordering: test names unseen).
"""

from __future__ import annotations

import random

from .arithmetic import Arithmetic
from .base import Annotated, Split, conclude
from .ordering import Ordering

__all__ = ["ArithmeticYesNo", "OrderingYesNo", "yes_no"]

YES_NO = ("yes", "no")


def yes_no(item: Annotated, rng: random.Random) -> Annotated:
    """``item`` as "... Is the answer X?" with options yes/no, balanced between the two."""
    yes = rng.random() < 0.5
    candidate = item.answer if yes else rng.choice([c for c in item.choices if c != item.answer])
    steps = item.chain_of_thought.removesuffix(conclude(item.answer)).strip()
    verdict = "yes" if yes else "no"
    chain = (
        f"{steps} The answer is {item.answer}, so {candidate} is {'' if yes else 'not '}the answer. "
        f"{conclude(verdict)}"
    )
    return Annotated(
        question=f"{item.question} Is the answer {candidate}?",
        choices=YES_NO,
        answer=verdict,
        fundamentals=item.fundamentals,
        chain_of_thought=chain,
        common_mistakes=item.common_mistakes,
        template=item.template,
        entities=item.entities,
    )


class ArithmeticYesNo:
    name = "arithmetic_yn"
    version = "1"
    description = "Is this the answer to an arithmetic word problem? (yes/no)"
    holdout = "template"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        return yes_no(Arithmetic().generate(rng, split), rng)


class OrderingYesNo:
    name = "ordering_yn"
    version = "1"
    description = "Is this person the tallest / youngest / ...? (yes/no, from comparisons)"
    holdout = "entity"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        return yes_no(Ordering().generate(rng, split), rng)
