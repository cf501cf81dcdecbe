"""The built-in annotated task suite: procedural multiple-choice families with gold annotations.

Each family (see :class:`~teacherlm_core.data.tasks.base.TaskFamily`) writes a question, its
options and answer, and the three gold fields TeacherLM trains on (fundamentals, chain of
thought, common mistakes). ``FAMILIES`` lists them in build order.
"""

from __future__ import annotations

from ...errors import ConfigError
from .arithmetic import Arithmetic
from .base import SPLITS, Annotated, TaskFamily, conclude
from .claims import Claims
from .commonsense import Commonsense
from .dates import Dates
from .knowledge import Animals, ControlUnseen, Fictional, FictionalLeaky
from .ordering import Ordering
from .strategy import Strategy
from .syllogisms import Syllogisms
from .units import Units
from .yesno import ArithmeticYesNo, OrderingYesNo

__all__ = ["DEFAULT_TASKS", "FAMILIES", "SPLITS", "Annotated", "TaskFamily", "conclude", "get_families"]

FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for f in (
        Claims(),
        Strategy(),
        Commonsense(),
        Arithmetic(),
        Ordering(),
        Dates(),
        Units(),
        Syllogisms(),
        Fictional(),
        FictionalLeaky(),
        Animals(),
        ArithmeticYesNo(),
        OrderingYesNo(),
        ControlUnseen(),
    )
}


# What a build without --tasks draws: the eight paper-style families. The knowledge families,
# the yes/no renderings and the control are named explicitly (the demo and the fidelity
# benchmark do), so a default build, and every record count written against it, stays as it was.
DEFAULT_TASKS = (
    "claims",
    "strategy",
    "commonsense",
    "arithmetic",
    "ordering",
    "dates",
    "units",
    "syllogisms",
)


def get_families(names: list[str] | None = None) -> list[TaskFamily]:
    """The families named (:data:`DEFAULT_TASKS` for ``None``), in the order given; unknown names raise ConfigError."""
    if not names:
        return [FAMILIES[n] for n in DEFAULT_TASKS]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ConfigError("--tasks", [f"unknown task {n!r} (known: {', '.join(FAMILIES)})" for n in unknown])
    return [FAMILIES[n] for n in dict.fromkeys(names)]
