"""``dates``: date, weekday and month arithmetic with four options (in the spirit of BIG-bench dates).

Held out by template: train moves forward by days, back by days, by weekdays and by months;
validation and test ask with weeks, backwards weekdays and "yesterday ... tomorrow" wordings.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random

from .base import Annotated, Split, conclude, shuffled_choices

__all__ = ["TEMPLATE_SPLITS", "Dates"]

MONTHS = tuple(calendar.month_name[1:])
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TEMPLATE_SPLITS: dict[str, Split] = {
    "days_after": "train",
    "days_before": "train",
    "weekday_after": "train",
    "months_after": "train",
    "weeks_after": "validation",
    "months_before": "validation",
    "weeks_before": "test",
    "weekday_before": "test",
    "yesterday_tomorrow": "test",
}
MONTH_FACTS = (
    "April, June, September and November have 30 days, February has 28 (29 in a leap year) "
    "and the other months have 31. Moving past the last day of a month continues in the next month."
)


def fmt(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def _dim(d: dt.date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _shift(start: dt.date, days: int) -> str:
    """Worked steps for moving ``days`` (|days| <= 27) from ``start``, crossing at most one month."""
    end = start + dt.timedelta(days=days)
    month, end_month = MONTHS[start.month - 1], MONTHS[end.month - 1]
    if end.month == start.month:
        sign = "+" if days > 0 else "-"
        return f"{start.day} {sign} {abs(days)} = {end.day}, which is still in {month}."
    if days > 0:
        left = _dim(start) - start.day
        if left == 0:
            return f"{month} {start.day} is the last day of {month}, so all {_days(days)} fall in {end_month}, giving {fmt(end)}."
        return (
            f"{month} has {_dim(start)} days, so after {_days(left)} we reach the end of the month. "
            f"The other {_days(days - left)} go into {end_month}, giving {fmt(end)}."
        )
    back, rest = start.day, -days - start.day
    if rest == 0:
        return f"Going back {_days(back)} reaches the last day of {end_month}, which is {fmt(end)}."
    return (
        f"Going back {_days(back)} reaches the last day of {end_month}, which has {_dim(end)} days. "
        f"Going back the other {_days(rest)} gives {fmt(end)}."
    )


class Dates:
    name = "dates"
    version = "1"
    description = "Date, weekday and month arithmetic (BIG-bench date-understanding-like)."
    holdout = "template"

    def generate(self, rng: random.Random, split: Split) -> Annotated:
        template = rng.choice([t for t, s in TEMPLATE_SPLITS.items() if s == split])
        if template.startswith("weekday"):
            return self._weekday(rng, template)
        if template.startswith("months"):
            return self._months(rng, template)
        start = dt.date(1995, 1, 1) + dt.timedelta(days=rng.randrange(365 * 35))
        if template == "yesterday_tomorrow":
            days, intro = (
                2,
                f"If yesterday was {fmt(start)}, today is one day later and tomorrow is two days later. ",
            )
            question = f"Yesterday was {fmt(start)}. What is the date tomorrow?"
        elif template.startswith("weeks"):
            weeks = rng.randint(1, 3)
            days = 7 * weeks * (1 if template.endswith("after") else -1)
            when = "from today" if days > 0 else "ago"
            verb = "will it be" if days > 0 else "was it"
            question = f"Today is {fmt(start)}. What date {verb} {weeks} week{'s' * (weeks > 1)} {when}?"
            intro = f"{weeks} week{'s' * (weeks > 1)} is {7 * weeks} days. "
        else:
            days = rng.randint(2, 27) * (1 if template.endswith("after") else -1)
            when = "from today" if days > 0 else "ago"
            verb = "will it be" if days > 0 else "was it"
            question = f"Today is {fmt(start)}. What date {verb} {abs(days)} days {when}?"
            intro = ""
        end = start + dt.timedelta(days=days)
        wrong = [end + dt.timedelta(days=1), end - dt.timedelta(days=1), start - dt.timedelta(days=days)]
        wrong.append(
            end.replace(month=start.month) if end.month != start.month and end.day <= _dim(start) else start
        )
        return Annotated(
            question=question,
            choices=shuffled_choices(rng, fmt(end), [fmt(w) for w in wrong], 4),
            answer=fmt(end),
            fundamentals=MONTH_FACTS,
            chain_of_thought=f"{intro}{_shift(start, days)} {conclude(fmt(end))}",
            common_mistakes=(
                "Counting today as the first day (off by one), moving in the wrong direction, or "
                "forgetting to change the month after its last day."
            ),
            template=template,
        )

    def _weekday(self, rng: random.Random, template: str) -> Annotated:
        today, n = rng.randrange(7), rng.randint(2, 30)
        sign = 1 if template.endswith("after") else -1
        target = WEEKDAYS[(today + sign * n) % 7]
        q, r = divmod(n, 7)
        verb, where = ("will it be", f"in {n} days") if sign > 0 else ("was it", f"{n} days ago")
        direction = "forward" if sign > 0 else "back"
        return Annotated(
            question=f"Today is {WEEKDAYS[today]}. What day of the week {verb} {where}?",
            choices=shuffled_choices(rng, target, list(WEEKDAYS), 4),
            answer=target,
            fundamentals="The days of the week repeat every 7 days, so only the remainder after dividing by 7 matters.",
            chain_of_thought=(
                f"{n} = 7 x {q} + {r}, and whole weeks land on the same weekday. Moving {r} days "
                f"{direction} from {WEEKDAYS[today]} gives {target}. {conclude(target)}"
            ),
            common_mistakes="Counting the starting day itself, or moving forward when the question asks about the past.",
            template=template,
        )

    def _months(self, rng: random.Random, template: str) -> Annotated:
        now, n = rng.randrange(12), rng.randint(2, 11)
        sign = 1 if template.endswith("after") else -1
        target = MONTHS[(now + sign * n) % 12]
        raw = now + 1 + sign * n
        fix = f"{raw} - 12 = {raw - 12}" if raw > 12 else (f"{raw} + 12 = {raw + 12}" if raw < 1 else "")
        op = "+" if sign > 0 else "-"
        steps = f"{MONTHS[now]} is month {now + 1}. {now + 1} {op} {n} = {raw}"
        steps += f", and {fix}, which is {target}." if fix else f", which is {target}."
        verb, where = ("will it be", f"in {n} months") if sign > 0 else ("was it", f"{n} months ago")
        return Annotated(
            question=f"It is {MONTHS[now]} now. Which month {verb} {where}?",
            choices=shuffled_choices(rng, target, list(MONTHS), 4),
            answer=target,
            fundamentals="A year has 12 months; counting past December starts again at January.",
            chain_of_thought=f"{steps} {conclude(target)}",
            common_mistakes="Forgetting to wrap around after December, or counting the current month as the first step.",
            template=template,
        )
