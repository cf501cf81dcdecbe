"""A rich progress bar that engines advance through a ``progress(n)`` callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["console", "progress_bar"]

console = Console(stderr=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; the bar shows count, rate and ETA (hidden when not a terminal).

    With ``total=None`` the bar ends at the count reached (``N/N``); a bar that counted nothing,
    or whose work raised, is removed.
    """
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[task].speed
            bar.update(task, rate=f"{speed:,.1f}/s" if speed else "")

        try:
            yield advance
        except BaseException:
            bar.remove_task(task)  # an error says itself, with no half-drawn bar above it
            raise
        done = bar.tasks[task].completed
        if done:  # a count not known ahead ends as N/N, not N/?
            bar.update(task, total=done)
        else:  # nothing to do (e.g. a plan already written): no bar stuck at 0/?
            bar.remove_task(task)
