"""What a person wants to read about an augmented dataset: a few samples per task with their three
explanations, whether each chain of thought reaches the gold answer, and the quarantine reasons
with their counts.

One function, :func:`augmentation_summary`, reads the merged dataset (``train.jsonl``,
``quarantine/*.jsonl``, ``manifest.json``); :func:`summary_markdown` renders it. The pipeline UI
(the ``augment merge`` task's ``summary`` output), the comparison report and the demo report all
show this same summary.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from typing import Any

from .. import storage
from ..answers import parse_answer
from ..schema import FIELDS

__all__ = ["augmentation_summary", "quarantine_reason", "summary_markdown"]

_ATTEMPTS = re.compile(r"\s*\(after \d+ attempt\(s\)\)")
_CELL = 240  # characters of an explanation shown in a table cell


def quarantine_reason(reason: str) -> str:
    """The reason of a quarantined record without its attempt counts (so equal reasons group together)."""
    return _ATTEMPTS.sub("", reason).strip()[:200]


def _cot_verdict(record: dict[str, Any]) -> str:
    """``reaches the gold answer``, ``concludes 'X', not the gold answer`` or ``names no answer``.

    The record's ``cot_consistent`` (set by the shard with :func:`~teacherlm_core.answers.parse_answer`)
    decides; records without it are parsed here the same way.
    """
    cot = record.get("chain_of_thought") or ""
    found = parse_answer(cot, record.get("choices")) if cot else None
    consistent = record.get("cot_consistent", "unset")
    if consistent == "unset":
        consistent = None if found is None else found.answer == record.get("answer")
    if consistent is True:
        return "reaches the gold answer"
    if consistent is False:
        return f"concludes {found.answer!r}, not the gold answer" if found else "concludes another answer"
    return "names no answer"


def _lines(uri: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in storage.read_text(uri).splitlines() if x.strip()]


def augmentation_summary(dataset: str, per_task: int = 2) -> dict[str, Any]:
    """Summarise the augmented dataset at ``dataset`` (a merged output: local dir or ``s3://`` prefix).

    Args:
        dataset: The merge's output (``train.jsonl``, ``quarantine/``, ``manifest.json``).
        per_task: Samples shown per task (the first ones, in file order: deterministic).

    Returns:
        ``{"counts": {"input", "output", "quarantined"}, "tasks": {task: {"records", "cot_reaches_gold",
        "samples": [{"id", "question", "answer", <fields>..., "chain_of_thought_verdict"}]}},
        "quarantine": [{"reason", "count"}] (most frequent first), "fields"}``.
    """
    manifest_uri = storage.join(dataset, "manifest.json")
    manifest = json.loads(storage.read_text(manifest_uri)) if storage.exists(manifest_uri) else {}
    fields = list(manifest.get("fields") or FIELDS)
    tasks: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"records": 0, "cot_reaches_gold": 0, "samples": []}
    )
    train = storage.join(dataset, "train.jsonl")
    records = _lines(train) if storage.exists(train) else []
    for r in records:
        t = tasks[str(r.get("task", ""))]
        t["records"] += 1
        verdict = _cot_verdict(r)
        t["cot_reaches_gold"] += verdict == "reaches the gold answer"
        if len(t["samples"]) < per_task:
            t["samples"].append(
                {
                    "id": r.get("id"),
                    "question": r.get("question"),
                    "answer": r.get("answer"),
                    **{f: r.get(f) for f in fields},
                    "chain_of_thought_verdict": verdict,
                }
            )
    reasons: Counter[str] = Counter()
    for uri in storage.list_files(storage.join(dataset, "quarantine")):
        if uri.endswith(".jsonl"):
            reasons.update(quarantine_reason(str(r.get("reason", ""))) for r in _lines(uri))
    counts = manifest.get("counts") or {
        "input": len(records) + sum(reasons.values()),
        "output": len(records),
        "quarantined": sum(reasons.values()),
    }
    return {
        "counts": counts,
        "fields": fields,
        "tasks": dict(sorted(tasks.items())),
        "quarantine": [{"reason": r, "count": n} for r, n in reasons.most_common()],
    }


def _cell(text: Any) -> str:
    s = " ".join(str(text if text is not None else "").split())
    s = s if len(s) <= _CELL else s[: _CELL - 1] + "…"
    return s.replace("|", "\\|")


def summary_markdown(summary: dict[str, Any], heading: str = "##") -> str:
    """The summary as Markdown: counts, one table of samples per task, the quarantine reasons."""
    c = summary["counts"]
    out = [
        f"{heading} Augmented data",
        "",
        f"{c['input']} input records: {c['output']} augmented, {c['quarantined']} quarantined.",
        "",
    ]
    for task, t in summary["tasks"].items():
        out += [
            f"{heading}# {task}",
            "",
            f"{t['records']} records; the chain of thought reaches the gold answer in {t['cot_reaches_gold']}.",
            "",
            "| question | answer | " + " | ".join(summary["fields"]) + " | CoT verdict |",
            "|---|---|" + "---|" * len(summary["fields"]) + "---|",
        ]
        for s in t["samples"]:
            cells = [
                s["question"],
                s["answer"],
                *(s.get(f) for f in summary["fields"]),
                s["chain_of_thought_verdict"],
            ]
            out.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        out.append("")
    out += [f"{heading}# Quarantine", ""]
    if summary["quarantine"]:
        out += ["| reason | records |", "|---|---:|"]
        out += [f"| {_cell(q['reason'])} | {q['count']} |" for q in summary["quarantine"]]
    else:
        out.append("No record was quarantined.")
    return "\n".join(out) + "\n"
