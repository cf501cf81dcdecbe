"""Explanation utility, leakage-aware: how much an explanation helps a scorer pick the gold answer.

For a multiple-choice record and one explanation field, with ``p(y | c)`` the scorer's probability
of the gold letter among the choice letters after context ``c`` (rank classification, as
:mod:`teacherlm_core.evaluate` scores; softmax over the letters' log-likelihoods)::

    utility = log p(gold | question + masked explanation + "A: The answer is (")
            - log p(gold | question + "A: The answer is (")                      (nats)

An explanation written *with* the answer in view can simply state it ("so the answer is (B)"),
which would score high while teaching nothing. So the explanation is scored with the gold
answer's letter and text masked out (:func:`mask_answer`), and an outright statement of the gold
answer is flagged apart (``leaks``: :func:`states_answer`). This follows the leakage-adjusted
simulatability idea of Hase et al. 2020 (arXiv 2010.04119), which measures how much an
explanation helps a simulator predict a label while controlling for explanations that leak it.

All requests of a call go to the engine in one batched ``loglikelihood`` pass.

    teacherlm augment utility --data runs/augmented --scorer smollm2-135m-instruct --output runs/useful --min-utility 0
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..answers import parse_answer
from ..engines import Engine, LoglikelihoodRequest
from ..prompts import collapse_ws, letter, question_text, rank_candidates, rank_context
from ..schema import FIELDS, Sample

__all__ = [
    "MASK",
    "FieldUtility",
    "card",
    "explanation_utility",
    "mask_answer",
    "record_utility",
    "select",
    "states_answer",
    "summarize",
    "utility_filter",
]

MASK = "___"


@dataclass(frozen=True)
class FieldUtility:
    """One record's utility of one field: ``utility`` in nats (``None``: not multiple choice, or no text)."""

    utility: float | None
    leaks: bool


def states_answer(text: str, sample: Sample) -> bool:
    """Does ``text`` state the gold answer outright (``... answer is (B)`` / ``... answer is <gold>``)?"""
    found = parse_answer(text, sample.choices)
    return found is not None and found.answer == sample.answer


def mask_answer(text: str, sample: Sample) -> str:
    """``text`` with the gold answer's letter (``(B)``) and its text (whole words, any case) replaced by ``___``."""
    out = collapse_ws(text)
    if sample.choices is not None:
        gold = letter(sample.answer_index)
        out = re.sub(rf"\(\s*{gold}\s*\)", MASK, out)
        out = re.sub(rf"(?<=\banswer is )\s*{gold}\b", " " + MASK, out, flags=re.IGNORECASE)
    answer = collapse_ws(sample.answer)
    if answer:
        out = re.sub(rf"(?<!\w){re.escape(answer)}(?!\w)", MASK, out, flags=re.IGNORECASE)
    return out


def _log_p_gold(scores: Sequence[float], gold: int) -> float:
    top = max(scores)
    return scores[gold] - (top + math.log(sum(math.exp(s - top) for s in scores)))


def explanation_utility(
    records: Sequence[dict[str, Any]],
    engine: Engine,
    fields: Sequence[str] = FIELDS,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, FieldUtility]]:
    """The utility of each field of each record, scored by ``engine`` in one batched pass.

    Args:
        records: augmented records (the data contract plus the explanation fields).
        engine: any engine with ``loglikelihood`` (HF or vLLM); the scorer, usually not the teacher.
        fields: the explanation fields to score.
        progress: optional ``callback(requests_done)``.

    Returns:
        One ``{field: FieldUtility}`` per record, in order. A record without choices, or a field
        that is missing or blank, gets ``utility=None``.
    """
    requests: list[LoglikelihoodRequest] = []
    plan: list[
        tuple[int, str | None, int, int]
    ] = []  # (record, field or None for the base, first request, gold)
    samples = [Sample.model_validate(r) for r in records]
    for n, (record, sample) in enumerate(zip(records, samples, strict=True)):
        if sample.choices is None:
            continue
        letters = rank_candidates(sample)
        contexts: list[tuple[str | None, str]] = [(None, rank_context(sample))]
        for field in fields:
            text = record.get(field)
            if isinstance(text, str) and text.strip():
                masked = mask_answer(text, sample)
                contexts.append((field, f"{question_text(sample)} {masked} A: The answer is ("))
        for field, context in contexts:
            plan.append((n, field, len(requests), sample.answer_index))
            requests += [LoglikelihoodRequest(context, x) for x in letters]
    scores = engine.loglikelihood(requests, progress=progress) if requests else []
    out: list[dict[str, FieldUtility]] = [
        {f: FieldUtility(None, states_answer(str(r.get(f) or ""), s)) for f in fields}
        for r, s in zip(records, samples, strict=True)
    ]
    base: dict[int, float] = {}
    for i, (n, field, start, gold) in enumerate(plan):
        end = plan[i + 1][2] if i + 1 < len(plan) else len(requests)
        value = _log_p_gold(scores[start:end], gold)
        if field is None:
            base[n] = value
        else:
            out[n][field] = FieldUtility(value - base[n], out[n][field].leaks)
    return out


def record_utility(per_field: dict[str, FieldUtility]) -> float | None:
    """A record's utility: the mean of its fields' utilities (``None`` when none was scored)."""
    values = [u.utility for u in per_field.values() if u.utility is not None]
    return sum(values) / len(values) if values else None


def select(
    utilities: Sequence[float | None], *, min_utility: float | None = None, top_share: float | None = None
) -> list[str | None]:
    """Which records a filter keeps: ``None`` for a kept record, else the reason it is filtered out.

    ``min_utility`` keeps records whose utility is at least that many nats; ``top_share`` (0-1]
    keeps that share of the scored records with the highest utility (ties kept together). A record
    without a utility is never kept by a filter. With neither, every record is kept.
    """
    if min_utility is None and top_share is None:
        return [None] * len(utilities)
    cut = -math.inf
    if top_share is not None:
        if not 0 < top_share <= 1:
            raise ValueError(f"top_share must be in (0, 1], got {top_share}")
        scored = sorted((u for u in utilities if u is not None), reverse=True)
        if scored:
            cut = scored[max(1, math.ceil(top_share * len(scored))) - 1]
    if min_utility is not None:
        cut = max(cut, min_utility)
    reasons: list[str | None] = []
    for u in utilities:
        if u is None:
            reasons.append("no utility: not a multiple-choice record, or no explanation to score")
        elif u < cut:
            why = (
                f"--min-utility {min_utility}"
                if min_utility is not None and u < min_utility
                else f"--top-share {top_share}"
            )
            reasons.append(f"utility {u:.3f} nats is below the cut {cut:.3f} ({why})")
        else:
            reasons.append(None)
    return reasons


def summarize(per_record: Sequence[dict[str, FieldUtility]]) -> dict[str, dict[str, float | int | None]]:
    """Per field: records scored, mean and median utility (nats), share helped (> 0), share that leaks."""
    from statistics import mean, median

    summary: dict[str, dict[str, float | int | None]] = {}
    fields = list(per_record[0]) if per_record else []
    for field in fields:
        values = [r[field].utility for r in per_record if r[field].utility is not None]
        leaks = [r[field].leaks for r in per_record]
        summary[field] = {
            "scored": len(values),
            "mean": round(mean(values), 4) if values else None,
            "median": round(median(values), 4) if values else None,
            "helped": round(sum(v > 0 for v in values) / len(values), 4) if values else None,
            "leaks": round(sum(leaks) / len(leaks), 4) if leaks else None,
        }
    return summary


def utility_filter(
    data: str,
    scorer: str,
    output: str,
    *,
    engine: str = "hf",
    fields: Sequence[str] = FIELDS,
    min_utility: float | None = None,
    top_share: float | None = None,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Score the explanations of an augmented dataset's train split and keep the useful ones.

    Args:
        data: an augmented dataset (directory with ``train.jsonl``/``.parquet``, or the file).
        scorer: the scoring model (path, named model or hub id), e.g. the student's base or a
            model of the teacher's size; not the teacher itself, which wrote with the answer in view.
        output: directory for ``train.jsonl`` (kept records, every column plus ``utility`` and
            ``utility_<field>`` in nats and ``leaks_<field>``), ``quarantine/rejected.jsonl``
            (records a filter dropped, with line and reason), ``utility.json`` and ``README.md``.
        engine: ``hf`` or ``vllm``.
        fields: explanation fields to score.
        min_utility, top_share: the filter (see :func:`select`); neither: score only.
        batch_size: sequences per forward pass.

    Returns:
        ``utility.json``'s content: ``counts`` (in = kept + filtered), per-field ``fields`` summary,
        the filter, the scorer.

    Raises:
        DataError: the data is missing or a record is invalid (file, line, field).
    """
    from pathlib import Path

    from ..data.manifest import QUARANTINE, write_json
    from ..data.splits import split_file
    from ..engines import get_engine
    from ..errors import DataError
    from ..models import model_identity
    from ..records import QuarantineWriter, iter_raw_records, read_samples, write_jsonl

    path = split_file(data, "train")
    raw: dict[int, dict[str, Any]] = {}
    for line, item, _ in iter_raw_records(path):
        if isinstance(item, dict):
            raw[line] = item
    lines = [line for line, _ in read_samples(path)]  # strict: the augmented data is ours, checked at merge
    records = [raw[n] for n in lines]
    if not records:
        raise DataError(str(path), None, None, "no records to score")
    scoring = get_engine(engine, scorer, batch_size=batch_size)
    per_record = explanation_utility(records, scoring, fields, progress=progress)
    overall = [record_utility(r) for r in per_record]
    reasons = select(overall, min_utility=min_utility, top_share=top_share)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    (out / QUARANTINE).unlink(missing_ok=True)
    kept = []
    with QuarantineWriter(out / QUARANTINE) as quarantine:
        for line, record, scores, total, reason in zip(
            lines, records, per_record, overall, reasons, strict=True
        ):
            scored = dict(record)
            scored["utility"] = None if total is None else round(total, 6)
            for field, u in scores.items():
                scored[f"utility_{field}"] = None if u.utility is None else round(u.utility, 6)
                scored[f"leaks_{field}"] = u.leaks
            if reason is None:
                kept.append(scored)
            else:
                quarantine.add(DataError(str(path), line, "utility", reason), scored)
        filtered = quarantine.count
    write_jsonl(out / "train.jsonl", kept)
    summary = {
        "scorer": {"model": scorer, "identity": model_identity(scorer), "engine": engine},
        "filter": {"min_utility": min_utility, "top_share": top_share},
        "counts": {"in": len(records), "kept": len(kept), "filtered": filtered},
        "fields": summarize(per_record),
        "source": {"data": str(data), "file": str(path)},
    }
    assert summary["counts"]["in"] == len(kept) + filtered
    write_json(out / "utility.json", summary)
    source_card = (Path(data) if Path(data).is_dir() else Path(path).parent) / "README.md"
    (out / "README.md").write_text(card(summary, source_card.read_text() if source_card.is_file() else None))
    return summary


def card(summary: dict[str, Any], source_card: str | None = None) -> str:
    """The filtered dataset's card (Markdown): the utility section (per field: scored, mean, median,
    helped, leaks) after the source dataset's own card (its teacher, origin and licence, counts
    before the filter), when there is one."""
    c, f = summary["counts"], summary["filter"]
    rule = (
        " and ".join(
            x
            for x in (
                f"utility >= {f['min_utility']}" if f["min_utility"] is not None else "",
                f"top {f['top_share']:.0%}" if f["top_share"] is not None else "",
            )
            if x
        )
        or "none (scored only)"
    )
    lines = [
        "## Explanation utility (leakage-aware)",
        "",
        f"Scorer: `{summary['scorer']['model']}` ({summary['scorer']['engine']}). Utility is "
        "log p(gold | question + explanation with the answer masked) - log p(gold | question), in nats; "
        "*leaks* is the share of explanations that state the gold answer outright (Hase et al. 2020, "
        "arXiv 2010.04119).",
        "",
        f"Filter: {rule}. Records: {c['in']} in, {c['kept']} kept, {c['filtered']} filtered "
        "(in `quarantine/rejected.jsonl` with their utility).",
        "",
        "| field | scored | mean | median | helped (> 0) | leaks |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for field, s in summary["fields"].items():
        fmt = lambda v, p=False: "-" if v is None else (f"{v:.0%}" if p else f"{v:+.3f}")  # noqa: E731
        lines.append(
            f"| {field} | {s['scored']} | {fmt(s['mean'])} | {fmt(s['median'])} | {fmt(s['helped'], True)} | "
            f"{fmt(s['leaks'], True)} |"
        )
    section = "\n".join(lines) + "\n"
    if not source_card:
        return section
    note = (
        f"\n> **Filtered by explanation utility**: this dataset holds {c['kept']} of the {c['in']} training "
        "records of the source described above (its counts are before the filter).\n\n"
    )
    return source_card.rstrip() + "\n" + note + section
