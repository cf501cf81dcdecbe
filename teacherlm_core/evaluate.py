"""Zero-shot rank classification, exactly as lm-evaluation-harness scores multiple choice.

For each question the context is ``Q: ... (A) ... (B) ... A: The answer is (`` and the
candidates are the letters; the prediction is the letter with the highest summed token
log-likelihood (see :mod:`teacherlm_core.engines` for the token boundaries).

    teacherlm eval --model ./tiny --data test.jsonl --output eval/tiny.json
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from . import storage
from .engines import Engine, LoglikelihoodRequest
from .errors import DataError
from .prompts import rank_candidates, rank_context
from .records import read_samples
from .schema import Sample

__all__ = [
    "Accuracy",
    "EvalReport",
    "SampleScore",
    "confusion_matrix",
    "evaluate",
    "load_eval_samples",
    "load_report",
    "rank_classify",
]


class Accuracy(BaseModel):
    accuracy: float
    n: int


class SampleScore(BaseModel):
    id: str
    task: str
    choice_loglikelihoods: list[float]
    prediction: int
    correct: bool
    gold: int | None = None  # index of the gold choice (reports written before it have none)


class EvalReport(BaseModel):
    """The file ``teacherlm eval`` writes."""

    model: str
    tasks: dict[str, Accuracy]
    overall: Accuracy
    samples: list[SampleScore]
    # What the model cost to make, by stage (its cost.json; see teacherlm_core.cost).
    cost: dict[str, dict] | None = None

    def confusion(self) -> tuple[list[str], list[list[int]]]:
        """:func:`confusion_matrix` of this report: ``(letters, gold x predicted counts)``."""
        return confusion_matrix(self)


def load_report(path: str | Path) -> EvalReport:
    """An eval report file (what :func:`evaluate` writes).

    Raises:
        DataError: no such file, not JSON, or a report without its fields, naming the file and field.
    """
    from pydantic import ValidationError

    from .schema import to_data_error

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DataError(
            str(path), None, None, f"cannot read the eval report ({exc.strerror or exc})"
        ) from None
    try:
        return EvalReport.model_validate_json(text)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise DataError(str(path), None, None, "not an eval report: not JSON") from None
        raise to_data_error(str(path), None, exc) from None


def rank_classify(
    engine: Engine, samples: Sequence[Sample], progress: Callable[[int], None] | None = None
) -> list[SampleScore]:
    """Score every choice of every sample in one engine call; ties go to the first choice."""
    requests, owners = [], []
    for n, s in enumerate(samples):
        context = rank_context(s)
        for letter in rank_candidates(s):
            requests.append(LoglikelihoodRequest(context, letter))
            owners.append(n)
    scores = engine.loglikelihood(requests, progress=progress)
    per_sample: list[list[float]] = [[] for _ in samples]
    for n, score in zip(owners, scores, strict=True):
        per_sample[n].append(score)
    out = []
    for s, lls in zip(samples, per_sample, strict=True):
        pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
        out.append(
            SampleScore(
                id=s.id,
                task=s.task,
                choice_loglikelihoods=lls,
                prediction=pred,
                correct=pred == s.answer_index,
                gold=s.answer_index,
            )
        )
    return out


def confusion_matrix(report: EvalReport) -> tuple[list[str], list[list[int]]]:
    """Gold choice (rows) x predicted choice (columns), by letter, over every scored sample.

    Returns ``(categories, matrix)`` as KFP's ``ClassificationMetrics.log_confusion_matrix`` takes
    them: ``categories`` are the letters ``A``, ``B``... up to the most choices of any sample.
    Samples without a gold index (reports written before it was recorded) are left out.
    """
    width = max((len(s.choice_loglikelihoods) for s in report.samples), default=0)
    matrix = [[0] * width for _ in range(width)]
    for s in report.samples:
        if s.gold is not None:
            matrix[s.gold][s.prediction] += 1
    return [chr(ord("A") + i) for i in range(width)], matrix


def summarize(model: str, scores: Sequence[SampleScore]) -> EvalReport:
    by_task: dict[str, list[bool]] = defaultdict(list)
    for s in scores:
        by_task[s.task].append(s.correct)

    def acc(xs: Sequence[bool]) -> Accuracy:
        return Accuracy(accuracy=sum(xs) / len(xs) if xs else math.nan, n=len(xs))

    return EvalReport(
        model=model,
        tasks={t: acc(v) for t, v in sorted(by_task.items())},
        overall=acc([s.correct for s in scores]),
        samples=list(scores),
    )


def load_eval_samples(data: str) -> list[Sample]:
    """Read an eval file (local path or URI) strictly: every record valid, with two or more choices."""
    import os
    import tempfile

    if storage.is_remote(data):
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, os.path.basename(data))
            storage.copy(data, local)
            return load_eval_samples(local)
    samples = []
    for line, s in read_samples(data):
        if s.choices is None:
            raise DataError(data, line, "choices", "rank classification needs multiple-choice samples")
        samples.append(s)
    if not samples:
        raise DataError(data, None, None, "no records to evaluate")
    return samples


def evaluate(
    engine: Engine,
    samples: Sequence[Sample],
    output: str | None = None,
    *,
    model_name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Rank-classify ``samples`` and write the report to ``output`` (local path or URI)."""
    scores = rank_classify(engine, samples, progress)
    report = summarize(model_name or getattr(engine, "model_name", engine.name), scores)
    if output:
        storage.write_text(output, json.dumps(report.model_dump(), indent=1) + "\n")
    return report
