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

Streaming (:func:`dedup_stream`, what an import of millions of records uses): records come from a
:class:`~.spool.Spool` on disk and go to callbacks, in two passes that give the verdicts of one
record-at-a-time pass. Memory is bounded by compact keys, never by the records or their texts:

1. exact + normalised: one :class:`~teacherlm_core.hashset.HashTable` of 8-byte normalised-text
   hashes to 4-byte record numbers (12 bytes a slot, 1.5 to 3 slots a record: 18-36 MiB for a
   million records, freed when the pass ends); the first record of each normalised text (its
   exact-text hash, id and split) is in SQLite, read only on a hit. The survivors go to a file.
2. near: :class:`~.neardup.NearIndex` (signatures in a file, LSH bands in SQLite).

:func:`deduplicate` is the in-memory convenience over the same code, for small lists.
"""

from __future__ import annotations

import heapq
import json
import re
import sqlite3
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..hashset import HashTable, key_hash
from .neardup import NearIndex
from .spool import Spool

__all__ = [
    "NEAR_THRESHOLD",
    "STEP_EXACT",
    "STEP_NEAR",
    "DedupResult",
    "dedup_stream",
    "deduplicate",
    "normalize_text",
    "record_text",
    "shingles",
]

NEAR_THRESHOLD = 0.8
NUM_PERM = 128
SHINGLE = 3
SPLIT_PRIORITY = ("test", "validation", "train")  # who keeps the item when two splits share it
STEP_EXACT = "exact + normalised duplicates"  # the progress labels of the two passes
STEP_NEAR = "near duplicates"
BATCH = 512  # records per near-duplicate batch (one index query each)
Progress = Callable[[str, int], None]

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
        counts: totals for the manifest (see :func:`dedup_stream`).
    """

    kept: list[dict[str, Any]]
    report: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def _priority(split: str | None) -> tuple[int, str]:
    split = split or "train"
    return (SPLIT_PRIORITY.index(split), "") if split in SPLIT_PRIORITY else (len(SPLIT_PRIORITY), split)


def _signed(h: int) -> int:  # SQLite integers are signed 64-bit
    return h - (1 << 64) if h >= 1 << 63 else h


def _entry(rec: dict[str, Any], kind: str, action: str, of_id: str, of_split: str | None) -> dict[str, Any]:
    return {
        "id": rec["id"],
        "split": rec.get("split"),
        "task": rec.get("task"),
        "kind": kind,
        "action": action,
        "duplicate_of": of_id,
        "duplicate_of_split": of_split,
    }


class _Lines:
    """``<seq>\\t<json>`` lines in a work file, written in ``seq`` order and read back in it."""

    def __init__(self, path: Path):
        self.path, self.fh = path, path.open("w", encoding="utf-8")

    def add(self, seq: int, obj: Any) -> None:
        self.fh.write(f"{seq}\t{json.dumps(obj, ensure_ascii=False, allow_nan=False)}\n")

    def read(self) -> Iterator[tuple[int, Any]]:
        self.fh.close()
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                seq, _, text = line.partition("\t")
                yield int(seq), json.loads(text)


def _exact_pass(
    spool: Spool, work: Path, survivors: _Lines, report: _Lines, progress: Progress | None
) -> None:
    """Pass 1: remove exact and normalised duplicates, visiting splits by priority, input order inside."""
    db = sqlite3.connect(work / "seen.sqlite", isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8192"):
        db.execute(f"PRAGMA {pragma}")
    db.execute(
        "CREATE TABLE seen (seq INTEGER PRIMARY KEY, exact INTEGER NOT NULL, id TEXT NOT NULL, split TEXT)"
    )
    # A normalised text's first record stands for every exact copy too (an exact copy has the same
    # normalised text), so one table says both; its exact hash, id and split are read on a hit.
    first = HashTable(spool.total, "uint32")
    pending: dict[int, tuple[int, int, str, str | None]] = {}

    def flush() -> None:
        db.execute("BEGIN")
        db.executemany("INSERT INTO seen VALUES (?, ?, ?, ?)", pending.values())
        db.execute("COMMIT")
        pending.clear()

    seq = 0
    for split in sorted(spool.counts, key=_priority):
        for n, rec in spool.read(split):
            if progress and seq and seq % 1000 == 0:
                progress(STEP_EXACT, 1000)
            exact = _signed(key_hash(json.dumps([rec["question"], rec.get("choices")], ensure_ascii=False)))
            j = first.setdefault(key_hash(normalize_text(record_text(rec))), seq)
            if j == seq:
                pending[seq] = (seq, exact, rec["id"], rec.get("split"))
                if len(pending) >= 1000:
                    flush()
                survivors.add(seq, [n, rec])
            else:
                row = pending.get(j) or db.execute("SELECT * FROM seen WHERE seq = ?", (j,)).fetchone()
                kind = "exact" if row[1] == exact else "normalized"
                report.add(seq, _entry(rec, kind, "removed", row[2], row[3]))
            seq += 1
    if progress and seq:
        progress(STEP_EXACT, seq % 1000 or 1000)
    db.close()
    (work / "seen.sqlite").unlink()


def _near_pass(
    work: Path,
    survivors: _Lines,
    report: _Lines,
    keep: Callable[[dict[str, Any]], None],
    threshold: float,
    num_perm: int,
    shingle_size: int,
    progress: Progress | None,
) -> None:
    """Pass 2: near duplicates among the survivors of pass 1, in the same order."""
    if threshold >= 1.0:
        for _, (_, rec) in survivors.read():
            keep(rec)
        return
    index = NearIndex(work, threshold, num_perm)
    batch: list[tuple[int, int, dict[str, Any]]] = []

    def judge() -> None:
        sigs = [
            (n, r["id"], r.get("split"), index.signature(sorted(shingles(record_text(r), shingle_size))))
            for _, n, r in batch
        ]
        for (seq, _, rec), match in zip(batch, index.add_batch(sigs), strict=True):
            if match is not None:
                entry = _entry(rec, "near", match.action, match.duplicate_of, match.duplicate_of_split)
                report.add(seq, entry | {"similarity": round(match.similarity, 4)})
            if match is None or match.action == "flagged":
                keep(rec)
        if progress:
            progress(STEP_NEAR, len(batch))
        batch.clear()

    try:
        for seq, (n, rec) in survivors.read():
            batch.append((seq, n, rec))
            if len(batch) >= BATCH:
                judge()
        if batch:
            judge()
    finally:
        index.close()


def dedup_stream(
    spool: Spool,
    work: str | Path,
    keep: Callable[[dict[str, Any]], None],
    report: Callable[[dict[str, Any]], None],
    *,
    threshold: float = NEAR_THRESHOLD,
    num_perm: int = NUM_PERM,
    shingle_size: int = SHINGLE,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Deduplicate the spooled records, streaming: kept records and report entries go to callbacks.

    Args:
        spool: the records, one file per split (closed: :meth:`Spool.close`); each has ``id``,
            ``question``, optional ``choices``, ``split`` and ``task``. Consumed: its files are
            deleted after the first pass.
        work: an existing directory for work files (the caller removes it); they take about
            ``(record bytes + 800) x records`` of disk at 128 permutations.
        keep: called with each surviving record, splits by priority (test, validation, train),
            input order inside a split.
        report: called with each removed or flagged record's entry (see :class:`DedupResult`),
            in visiting order, after ``keep`` has seen every record.
        threshold: Jaccard similarity at or above which two records are near-duplicates;
            ``1.0`` or more switches near-duplicate detection off.
        num_perm: MinHash permutations (more is slower and more precise).
        shingle_size: words per shingle.
        progress: called as ``progress(STEP_EXACT, n)`` then ``progress(STEP_NEAR, n)`` as records
            are done (every 1,000 and :data:`BATCH`; the totals are the records of each pass).

    Returns:
        The manifest's ``dedup`` counts: ``input``, ``kept``, ``removed`` per kind and ``total``,
        ``flagged_near``, ``overlap`` (for each ``"<split>-><split it duplicates>"`` pair, the
        removed count per kind: ``"train->test"`` is training data that was in the test set) and
        ``params``.
    """
    work = Path(work)
    survivors, removed_a, removed_b = (
        _Lines(work / f"{name}.jsonl") for name in ("survivors", "report-exact", "report-near")
    )
    _exact_pass(spool, work, survivors, removed_a, progress)
    spool.discard()  # the survivors file has everything the next pass needs: free the disk
    kept = 0

    def count_kept(rec: dict[str, Any]) -> None:
        nonlocal kept
        kept += 1
        keep(rec)

    _near_pass(work, survivors, removed_b, count_kept, threshold, num_perm, shingle_size, progress)
    tally = _Tally(spool.counts)
    for _, entry in heapq.merge(removed_a.read(), removed_b.read(), key=lambda e: e[0]):
        tally.add(entry)
        report(entry)
    return tally.counts(spool.total, kept, threshold, num_perm, shingle_size)


class _Tally:
    """The counts of :func:`dedup_stream`, one report entry at a time."""

    def __init__(self, splits: Sequence[str]):
        self.splits = sorted({s for s in splits if s}, key=_priority)
        self.kinds: Counter[str] = Counter()
        self.flagged = 0
        self.overlap: dict[str, dict[str, int]] = {}
        for a in self.splits:  # every cross-split pair is listed, zeros included: "none found" is a result
            for b in self.splits:
                if _priority(a) > _priority(b):
                    self.overlap[f"{a}->{b}"] = {"exact": 0, "normalized": 0, "near": 0}

    def add(self, e: dict[str, Any]) -> None:
        if e["action"] != "removed":
            self.flagged += 1
            return
        self.kinds[e["kind"]] += 1
        if e["split"] != e["duplicate_of_split"]:
            pair = f"{e['split']}->{e['duplicate_of_split']}"
            self.overlap.setdefault(pair, {"exact": 0, "normalized": 0, "near": 0})[e["kind"]] += 1

    def counts(
        self, n_in: int, n_kept: int, threshold: float, num_perm: int, shingle_size: int
    ) -> dict[str, Any]:
        kinds = self.kinds
        return {
            "input": n_in,
            "kept": n_kept,
            "removed": {k: kinds.get(k, 0) for k in ("exact", "normalized", "near")}
            | {"total": sum(kinds.values())},
            "flagged_near": self.flagged,
            "overlap": self.overlap,
            "params": {
                "threshold": threshold,
                "num_perm": num_perm,
                "shingle_size": shingle_size,
                "method": "minhash-lsh",
            },
        }


def deduplicate(
    records: Sequence[dict[str, Any]],
    *,
    threshold: float = NEAR_THRESHOLD,
    num_perm: int = NUM_PERM,
    shingle_size: int = SHINGLE,
    progress: Progress | None = None,
) -> DedupResult:
    """Remove exact, normalised and cross-split near duplicates; flag within-split near ones.

    The in-memory convenience over :func:`dedup_stream` (work files in a temporary directory),
    for lists that fit in memory: the built-in suite, tests.

    Args:
        records: dicts with ``id``, ``question``, optional ``choices``, ``split`` (default
            ``train``) and ``task``; JSON-serialisable.
        threshold: Jaccard similarity at or above which two records are near-duplicates;
            ``1.0`` or more switches near-duplicate detection off.
        num_perm: MinHash permutations (more is slower and more precise).
        shingle_size: words per shingle.
        progress: called as ``progress("dedup", n)`` every 1,000 records (and with the rest at the end).

    Returns:
        A :class:`DedupResult`; ``counts`` as :func:`dedup_stream` returns them.
    """
    kept: set[int] = set()
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="teacherlm-dedup-") as work:
        with Spool(Path(work) / "spool") as spool:
            for n, rec in enumerate(records):
                spool.add(n, rec.get("split") or "train", rec | {"_n": n})
        counts = dedup_stream(
            spool,
            work,
            lambda rec: kept.add(rec["_n"]),
            report.append,
            threshold=threshold,
            num_perm=num_perm,
            shingle_size=shingle_size,
            progress=progress and (lambda step, n: progress("dedup", n) if step == STEP_EXACT else None),
        )
    return DedupResult(kept=[r for n, r in enumerate(records) if n in kept], report=report, counts=counts)
