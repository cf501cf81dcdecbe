"""Side-by-side timing: every side warm, the order alternated, every run kept.

    times = side_by_side({"a": run_a, "b": run_b}, repeats=3, warm_up={"a": warm_a, "b": warm_b})
    print(spread(times["a"]["all"]))  # median 8.4 s (min 8.1, max 9.9, spread 21%)

Each side is a callable taking the repeat number and returning whatever it produced (the last
result is kept, for checks); ``warm_up`` callables run once, untimed, before any timing. Repeat
``r`` runs the sides in order on even ``r`` and reversed on odd ``r``, so neither side always
follows the other on a machine whose load drifts.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["side_by_side", "spread"]


def side_by_side(
    sides: dict[str, Callable[[int], Any]],
    repeats: int = 3,
    warm_up: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{side: {"best": s, "median": s, "all": [s, ...], "result": last result}}`` with seconds per run."""
    for fn in (warm_up or {}).values():
        fn()
    out: dict[str, dict[str, Any]] = {name: {"all": [], "result": None} for name in sides}
    names = list(sides)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            out[name]["result"] = sides[name](r)
            out[name]["all"].append(time.perf_counter() - t)
    for v in out.values():
        v["best"] = min(v["all"])
        v["median"] = statistics.median(v["all"])
    return out


def spread(seconds: list[float]) -> str:
    """Every run's figure in one line: median, min, max and (max - min) / median. A wide spread
    says the machine was busy: quote the median, and a ratio only from runs side by side."""
    med = statistics.median(seconds)
    return (f"median {med:.2f} s (min {min(seconds):.2f}, max {max(seconds):.2f}, "
            f"spread {(max(seconds) - min(seconds)) / med:.0%}; runs {' '.join(f'{x:.2f}' for x in seconds)})")  # fmt: skip
