"""STaR settings, output names and the callables a run takes (engine factory, retraining, progress)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from ..engines import Engine
from ..errors import ConfigError

__all__ = [
    "FAILED",
    "KEPT",
    "STOP",
    "TRAIN_COMMAND",
    "EngineFactory",
    "ProgressFactory",
    "StarConfig",
    "TrainFn",
]

KEPT = "train.jsonl"
FAILED = "quarantine/failed.jsonl"
TRAIN_COMMAND = (sys.executable, "-m", "teacherlm_core", "train", "teacher")
# A teacher trained on one-line records may run on into the next question; cut it there.
STOP = (" Q:", "\nQ:")

TrainFn = Callable[[Path, int], str]  # (kept_dir, round) -> path of the retrained teacher
EngineFactory = Callable[[str], Engine]  # model path -> engine
# (description, total) -> context manager yielding advance(n); cli.progress.progress_bar fits
ProgressFactory = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class StarConfig:
    """Settings of a STaR run.

    Attributes:
        rounds: the most rounds to run; the run stops early once every sample is kept.
        max_new_tokens: token budget of each rationale.
        seed: base seed; each request's seed derives from it (see :func:`~teacherlm_core.engines.request_seed`).
        temperature: 0 is greedy (then a retry without retraining repeats the same answer).
        top_p: nucleus sampling (ignored when greedy).
        min_words: words of reasoning a kept rationale needs before its conclusion sentence.
    """

    rounds: int = 1
    max_new_tokens: int = 128
    seed: int = 0
    temperature: float = 0.7
    top_p: float = 0.95
    min_words: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.rounds < 1:
            problems.append(f"rounds: must be at least 1, got {self.rounds}")
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens: must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            problems.append(f"temperature: must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p: must be in (0, 1], got {self.top_p}")
        if self.min_words < 0:
            problems.append(f"min_words: must be >= 0, got {self.min_words}")
        if problems:
            raise ConfigError("star config", problems)
