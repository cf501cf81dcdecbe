"""Deduplication and train/eval contamination: exact, normalised-text and MinHash near-duplicates.

A record's text is its question plus its choices (many exams reuse a stem such as "Which of
the following is true?" with different options, and those are different questions). Records
are visited evaluation splits first (test, validation, train), so when a training item
duplicates a test item it is the training copy that goes: the evaluation sets stay intact and
training data is decontaminated.

* exact: identical question and choices; removed.
* normalised: equal after casefolding, dropping punctuation (but not numbers, signs, operators or
  comparison symbols: :func:`normalize_text`) and collapsing whitespace; removed.
* near: estimated Jaccard similarity of word 3-gram shingles >= ``threshold`` (MinHash LSH,
  ``datasketch``). Across splits it is contamination and the lower-priority copy is removed;
  inside one split it is only *flagged* (templated data legitimately has close variants).

Nothing is dropped silently: every removed or flagged record is listed with the id it
duplicates, and the counts (with a per split-pair overlap table) go into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NEAR_THRESHOLD", "DedupResult", "deduplicate", "normalize_text", "record_text", "shingles"]

NEAR_THRESHOLD = 0.8
NUM_PERM = 128
SHINGLE = 3
SPLIT_PRIORITY = ("test", "validation", "train")  # who keeps the item when two splits share it

# Numbers (with their decimal point), words, and the symbols that change a question's meaning.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+|!=|[-+*×/÷=≠<>≤≥%^]")
_WORD_HYPHEN = re.compile(r"(?<=[^\W\d_])-(?=[^\W\d_])")


def normalize_text(text: str) -> str:
    """Casefold, drop punctuation, keep what changes meaning, collapse whitespace.

    ``"Is it  TRUE?"`` -> ``"is it true"``, but numbers (``3.5`` is not ``35``, ``-4`` is not ``4``),
    arithmetic and comparison operators (``7 + 2`` is not ``7 - 2``, ``x < y`` is not ``x > y``)
    and negation words stay: two questions that differ in them are different questions. A hyphen
    between two letters (``full-width``) is punctuation; anywhere else it is a minus sign.
    """
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2212", "-")
    text = _WORD_HYPHEN.sub(" ", text)
    return " ".join(_TOKEN.findall(text))


def record_text(record: dict[str, Any]) -> str:
    """The text dedup compares: the question followed by the choices."""
    return " ".join([record["question"], *(record.get("choices") or [])])


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    """Word ``size``-grams of the normalised text (the whole text if it is shorter)."""
    words = normalize_text(text).split()
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


@dataclass
class DedupResult:
    """What :func:`deduplicate` kept, removed and flagged.

    Attributes:
        kept: the surviving records, in their input order.
        report: one entry per removed or flagged record: its ``id``, ``split``, ``task``,
            ``kind`` (exact / normalized / near), ``action`` (removed / flagged),
            ``duplicate_of`` and ``duplicate_of_split``, and ``similarity`` for near pairs.
        counts: totals for the manifest (see :func:`deduplicate`).
    """

    kept: list[dict[str, Any]]
    report: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _priority(split: str) -> tuple[int, str]:
    return (SPLIT_PRIORITY.index(split), "") if split in SPLIT_PRIORITY else (len(SPLIT_PRIORITY), split)


def deduplicate(
    records: Sequence[dict[str, Any]],
    *,
    threshold: float = NEAR_THRESHOLD,
    num_perm: int = NUM_PERM,
    shingle_size: int = SHINGLE,
    progress: Callable[[str, int], None] | None = None,
) -> DedupResult:
    """Remove exact, normalised and cross-split near duplicates; flag within-split near ones.

    Args:
        records: dicts with ``id``, ``question``, optional ``choices``, ``split`` and ``task``.
        threshold: Jaccard similarity at or above which two records are near-duplicates;
            ``1.0`` or more switches near-duplicate detection off.
        num_perm: MinHash permutations (more is slower and more precise).
        shingle_size: words per shingle.
        progress: called as ``progress("dedup", n)`` every 1,000 records (and with the rest at the end).

    Returns:
        A :class:`DedupResult`; ``counts`` holds ``input``, ``kept``, ``removed`` per kind,
        ``flagged_near`` and ``overlap``: for each ``"<split>-><split it duplicates>"`` pair, the
        removed count per kind (``"train->test"`` is training data that was in the test set).
    """
    from datasketch import MinHash, MinHashLSH

    use_near = threshold < 1.0
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if use_near else None
    # Compact keys: a 16-byte BLAKE2b digest per distinct text, not the text itself (a 2M-record
    # import keeps ~2 x 2M x ~100 bytes instead of the texts; a collision needs ~2^64 records).
    exact: dict[bytes, int] = {}
    normal: dict[bytes, int] = {}
    hashes: dict[int, MinHash] = {}
    removed: set[int] = set()
    report: list[dict[str, Any]] = []
    order = sorted(range(len(records)), key=lambda i: (_priority(records[i].get("split", "train")), i))

    def note(i: int, j: int, kind: str, action: str, similarity: float | None = None) -> None:
        entry = {
            "id": records[i]["id"],
            "split": records[i].get("split"),
            "task": records[i].get("task"),
            "kind": kind,
            "action": action,
            "duplicate_of": records[j]["id"],
            "duplicate_of_split": records[j].get("split"),
        }
        if similarity is not None:
            entry["similarity"] = round(similarity, 4)
        report.append(entry)

    for done, i in enumerate(order, start=1):
        if progress and done % 1000 == 0:
            progress("dedup", 1000)
        rec = records[i]
        text = record_text(rec)
        key = _digest(json.dumps([rec["question"], rec.get("choices")], ensure_ascii=False))
        norm = _digest(normalize_text(text))
        if key in exact:
            note(i, exact[key], "exact", "removed")
            removed.add(i)
            continue
        if norm in normal:
            note(i, normal[norm], "normalized", "removed")
            removed.add(i)
            continue
        exact[key], normal[norm] = i, i
        if lsh is None:
            continue
        mh = MinHash(num_perm=num_perm)
        mh.update_batch(sorted(shingles(text, shingle_size)))
        near = [(j, mh.jaccard(hashes[j])) for j in sorted(lsh.query(mh))]
        near = [(j, s) for j, s in near if s >= threshold]
        cross = [(j, s) for j, s in near if records[j].get("split") != rec.get("split")]
        if cross:
            j, s = max(cross, key=lambda js: (js[1], -js[0]))
            note(i, j, "near", "removed", s)
            removed.add(i)
            continue
        if near:
            j, s = max(near, key=lambda js: (js[1], -js[0]))
            note(i, j, "near", "flagged", s)
        hashes[i] = mh
        lsh.insert(i, mh)

    if progress and len(order) % 1000:
        progress("dedup", len(order) % 1000)
    kept = [r for i, r in enumerate(records) if i not in removed]
    return DedupResult(
        kept=kept, report=report, counts=_counts(records, kept, report, threshold, num_perm, shingle_size)
    )


def _counts(records, kept, report, threshold, num_perm, shingle_size) -> dict[str, Any]:
    gone = [e for e in report if e["action"] == "removed"]
    kinds = Counter(e["kind"] for e in gone)
    splits = sorted({r.get("split") for r in records if r.get("split")}, key=_priority)
    overlap: dict[str, dict[str, int]] = {}
    for a in splits:  # every cross-split pair is listed, zeros included: "none found" is a result
        for b in splits:
            if _priority(a) > _priority(b):
                overlap[f"{a}->{b}"] = {"exact": 0, "normalized": 0, "near": 0}
    for e in gone:
        pair = f"{e['split']}->{e['duplicate_of_split']}"
        if e["split"] != e["duplicate_of_split"]:
            overlap.setdefault(pair, {"exact": 0, "normalized": 0, "near": 0})[e["kind"]] += 1
    return {
        "input": len(records),
        "kept": len(kept),
        "removed": {k: kinds.get(k, 0) for k in ("exact", "normalized", "near")} | {"total": len(gone)},
        "flagged_near": sum(1 for e in report if e["action"] == "flagged"),
        "overlap": overlap,
        "params": {
            "threshold": threshold,
            "num_perm": num_perm,
            "shingle_size": shingle_size,
            "method": "minhash-lsh",
        },
    }
