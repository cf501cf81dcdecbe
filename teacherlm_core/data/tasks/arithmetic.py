"""``arithmetic``: one- and two-step word problems with four numeric options.

Distractors are the results of the typical mistakes (wrong operation, a forgotten step), so
``common_mistakes`` can name them. Held out by template: every operation appears in train,
but validation and test use wordings train never shows.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from .base import Annotated, Split, conclude, number_choices
from .facts import ITEMS, NAMES

__all__ = ["TEMPLATES", "Arithmetic"]

FUNDAMENTALS = {
    "add": "When more things are added to a group, the new total is found by addition.",
    "sub": "When things are taken away from a group, what is left is found by subtraction.",
    "mul": "Equal groups are counted by multiplication: number of groups times the size of a group.",
    "div": "Sharing a total into equal groups is division: the total divided by the number of groups.",
    "add_sub": "A two-step change is done in order: first add what comes in, then subtract what goes out.",
    "mul_add": "Count the equal groups by multiplication first, then add the extra ones.",
}


class Template(NamedTuple):
    id: str
    split: Split
    op: str
    text: str  # str.format fields: n (name), it (items), a, b, c


# fmt: off
TEMPLATES: tuple[Template, ...] = (
    Template("buy_more", "train", "add", "{n} has {a} {it}. {n} buys {b} more. How many {it} does {n} have now?"),
    Template("gift", "train", "add", "{n} had {a} {it}. A friend gave {n} {b} more. How many {it} does {n} have?"),
    Template("give_away", "train", "sub", "{n} has {a} {it} and gives {b} of them away. How many {it} are left?"),
    Template("boxes", "train", "mul", "{n} has {a} boxes with {b} {it} in each. How many {it} are there in all?"),
    Template("share", "train", "div", "{n} shares {t} {it} equally among {a} friends. How many {it} does each friend get?"),
    Template("buy_give", "train", "add_sub", "{n} has {a} {it}, buys {b} more and gives away {c}. How many {it} does {n} have now?"),
    Template("lose", "validation", "sub", "{n} had {a} {it} but lost {b}. How many {it} does {n} still have?"),
    Template("bags", "validation", "div", "{t} {it} are packed into bags of {b}. How many bags are filled?"),
    Template("packs_extra", "validation", "mul_add", "{n} buys {a} packs of {b} {it} and finds {c} more. How many {it} does {n} have?"),
    Template("rows", "test", "mul", "There are {a} rows of {it} with {b} in each row. How many {it} are there?"),
    Template("found", "test", "add", "{n} found {a} {it} on Monday and {b} on Tuesday. How many {it} did {n} find?"),
    Template("eat_after_get", "test", "add_sub", "{n} had {a} {it}, got {b} more, then used {c}. How many {it} are left?"),
)
# fmt: on


def _solve(op: str, a: int, b: int, c: int) -> tuple[int, list[int], str, str]:
    """Answer, the mistaken answers, the worked steps and the mistakes text (not for "div")."""
    if op == "add":
        return (
            a + b,
            [abs(a - b), a * b, a + b + 1],
            f"The amounts are put together, so we add: {a} + {b} = {a + b}.",
            f"Subtracting instead of adding gives {abs(a - b)}; multiplying gives {a * b}.",
        )
    if op == "sub":
        return (
            a - b,
            [a + b, a, a - b - 1],
            f"Some are taken away, so we subtract: {a} - {b} = {a - b}.",
            f"Adding instead of subtracting gives {a + b}; ignoring the change leaves {a}.",
        )
    if op == "mul":
        return (
            a * b,
            [a + b, a * b + b, a * (b - 1)],
            f"There are {a} equal groups of {b}, so we multiply: {a} x {b} = {a * b}.",
            f"Adding the two numbers gives {a + b} instead of multiplying them.",
        )
    if op == "add_sub":
        return (
            a + b - c,
            [a + b + c, a + b, a + c],
            f"First add what came in: {a} + {b} = {a + b}. Then subtract what went out: {a + b} - {c} = {a + b - c}.",
            f"Stopping after the first step gives {a + b}; adding all three numbers gives {a + b + c}.",
        )
    if op == "mul_add":
        return (
            a * b + c,
            [a + b + c, a * b, a * (b + c)],
            f"First count the equal groups: {a} x {b} = {a * b}. Then add the extra ones: {a * b} + {c} = {a * b + c}.",
            f"Forgetting the extra ones gives {a * b}; adding all three numbers gives {a + b + c}.",
        )
    raise ValueError(op)


class Arithmetic:
    name = "arithmetic"
    version = "1"
    description = "One- and two-step arithmetic word problems (GSM8K-like, small numbers)."
    holdout = "template"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        tpl = rng.choice([t for t in TEMPLATES if t.split == split])
        name, items = rng.choice(NAMES), rng.choice(ITEMS)
        a, b, c = rng.randint(2, 12), rng.randint(2, 12), 0
        if tpl.op in ("sub",):
            a = rng.randint(b + 1, b + 30)
        if tpl.op in ("add",):
            a, b = rng.randint(3, 60), rng.randint(2, 40)
        if tpl.op in ("add_sub", "mul_add"):
            c = rng.randint(1, a + b - 1) if tpl.op == "add_sub" else rng.randint(1, 9)
        total = a * b
        question = tpl.text.format(n=name, it=items, a=a, b=b, c=c, t=total)
        if tpl.op == "div":
            divisor = a if "{a}" in tpl.text else b
            answer, wrong = total // divisor, [total - divisor, total // divisor + 1, divisor]
            steps = f"The total is split into equal parts, so we divide: {total} / {divisor} = {answer}."
            mistakes = f"Subtracting instead of dividing gives {total - divisor}; repeating the divisor gives {divisor}."
        else:
            answer, wrong, steps, mistakes = _solve(tpl.op, a, b, c)
        cot = f"{steps} {conclude(str(answer))}"
        return Annotated(
            question=question,
            choices=number_choices(rng, answer, wrong),
            answer=str(answer),
            fundamentals=FUNDAMENTALS[tpl.op],
            chain_of_thought=cot,
            common_mistakes=mistakes,
            template=tpl.id,
        )
