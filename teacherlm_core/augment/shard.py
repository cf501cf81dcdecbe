"""One shard of an augmentation run: resumable, exactly once, on local dirs and S3.

A record belongs to shard ``sha256(id) % num_shards`` (records without a usable id: by line),
so every occurrence of an id lands in the same shard, where duplicates are caught, and the
result does not depend on input order. The plan step has already cut the input into per-shard
files (:mod:`.split`); a shard streams only its own, a part at a time, so its memory is bounded
by a part (plus 16 bytes per id, to catch duplicates), not by the dataset. A shard's records
are cut into parts of ``part_size`` input records; each part is written as ``part-NNNNN.W.jsonl``
(+ ``.W.quarantine.jsonl``) and then its marker ``part-NNNNN.W.json``; the shard ends with ``_SUCCESS``. A re-run skips finished shards
and, inside a shard, finished parts; a kill at any moment loses nothing and duplicates nothing.

Generation is one stream per shard (:func:`~teacherlm_core.engines.open_stream`), so the engine
does not drain at part boundaries: the next part's requests are fed while the current part's last
ones run (``LOOKAHEAD`` parts at once, so memory stays about two parts), a rejected generation
goes back into the stream with its next seed, and each part is committed, files then marker, as
soon as its last request is back, in part order. A result depends on its request alone (its
seed), never on the stream, so the files are the bytes one ``generate`` call per part wrote.
An engine that returns nothing for ``stall_timeout_s`` ends the process with a clear error
(:mod:`~teacherlm_core.engines.watchdog`); the retry resumes from the last finished part.

Fencing: ``W`` is the writer, unique to each :func:`run_shard` call (start time, then random), so
two pods running the same shard (a retry racing a slow original) never write the same key, and
a marker always describes its own writer's files. When several complete markers exist for one
part, the smallest ``W`` (the earliest writer) wins, and ``_SUCCESS`` lists the winners: every
version of ``_SUCCESS`` either writer leaves names files that match their checksums, and each
record once. This needs no conditional writes, so any S3 server (or a local dir) will do.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .. import storage
from ..engines import Engine, Generation, GenerationParams, GenerationStream, open_stream, request_seed
from ..engines.watchdog import stall_guard
from ..errors import ConfigError, DataError
from ..hashset import SeenIds
from ..prompts import FIELD_SUFFIX, base_text
from ..schema import Rejected, Sample, to_data_error
from .config import AugmentConfig, shard_name
from .plan import ensure_plan
from .quality import clean_generation, is_consistent
from .split import iter_shard_input, owner_shard

__all__ = [
    "PartStats",
    "SeenIds",
    "new_writer_id",
    "owner_shard",
    "run_shard",
    "shard_entries",
    "winning_markers",
]

STOP = ("\nQ:",)  # a teacher that starts a new question has finished its explanation


@dataclass
class PartStats:
    """What one part did; the progress bar and MLflow read it.

    ``seconds``: wall time from the previous part's commit (or this part's start, if later) to this
    part's commit: parts overlap in the stream, and this way a shard's part seconds add up to its
    time generating (the cost report sums them).
    """

    shard: int
    part: int
    samples: int = 0
    quarantined: int = 0
    tokens: int = 0
    tokens_kept: int = 0
    seconds: float = 0.0
    skipped: bool = False
    cot_checked: int = 0
    cot_consistent: int = 0
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


Entry = tuple[int, Sample | None, Rejected | None]


def shard_entries(entries: Iterable[dict[str, Any]], source: str, expected: int = 0) -> Iterator[Entry]:
    """A shard's input entries (:func:`.split.iter_shard_input`) validated, in line order, streamed.

    Yields ``(line, sample, None)`` or ``(line, None, rejected)``; a second record with an id
    already seen in the shard is rejected naming the first one's line. Ids are remembered in
    :class:`SeenIds`, sized for ``expected`` records (the plan's count for the shard).
    """
    seen = SeenIds(expected)
    for entry in entries:
        line = entry["line"]
        if "error" in entry:
            err = entry["error"]
            yield (
                line,
                None,
                Rejected(
                    source=source, line=line, field=err["field"], reason=err["reason"], raw=entry["raw"]
                ),
            )
            continue
        item = entry["record"]
        try:
            sample = Sample.model_validate(item)
        except ValidationError as exc:
            error = to_data_error(source, line, exc)
        else:
            first = seen.first_line(sample.id, line)
            if first == line:
                yield line, sample, None
                continue
            error = DataError(source, line, "id", f"duplicate id {sample.id!r} (first seen on line {first})")
        yield line, None, Rejected(source=source, line=line, field=error.field, reason=error.reason, raw=item)


def _parts(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    while chunk := list(itertools.islice(entries, size)):
        yield chunk


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, allow_nan=False).encode() + b"\n" for r in records)


LOOKAHEAD = 2  # parts generating at once (the oldest and the next): memory stays about two parts


@dataclass
class _Part:
    """A part between reading and commit: its records, its requests in the stream, their results."""

    index: int
    entries: list[Entry]
    stats: PartStats
    started: float  # time.perf_counter() when it was read and its requests submitted
    marker: dict[str, Any] | None = None  # finished by a writer of this shard already: not generated
    samples: list[Sample] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    waiting: int = 0  # requests in the stream
    texts: dict[tuple[int, str], str] = field(default_factory=dict)
    meta: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    failures: dict[tuple[int, str], str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.marker is not None or self.waiting == 0


def _submit(cfg: AugmentConfig, stream: GenerationStream, part: _Part, i: int, f: str, attempt: int) -> None:
    params = GenerationParams(
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=request_seed(cfg.seed, part.samples[i].id, f, attempt),
        stop=STOP,
    )
    # base_text once per sample, not once per field and attempt; == teacher_prompt(samples[i], f)
    # Older parts first (their retries too): the oldest part commits soonest, freeing the window.
    stream.submit((part.index, i, f, attempt), part.bases[i] + FIELD_SUFFIX[f], params, priority=part.index)
    part.waiting += 1


def _receive(cfg: AugmentConfig, stream: GenerationStream, part: _Part, key, gen: Generation) -> None:
    """Record one result; a rejected generation goes back into the stream with the next attempt's seed."""
    _, i, f, attempt = key
    part.waiting -= 1
    part.stats.tokens += gen.num_tokens
    part.stats.tokens_kept += gen.num_tokens if gen.kept_tokens is None else gen.kept_tokens
    text, reason = clean_generation(gen, part.bases[i] + FIELD_SUFFIX[f])
    # Greedy decoding repeats itself: a retry would only cost time.
    attempts = 1 + (cfg.max_retries if cfg.temperature > 0 else 0)
    if gen.finish_reason == "error":  # this request cannot be served: a retry would fail the same way
        part.failures[(i, f)] = reason
    elif text is None:
        part.failures[(i, f)] = f"{reason} (after {attempt + 1} attempt(s))"
        if attempt + 1 < attempts:
            _submit(cfg, stream, part, i, f, attempt + 1)
    else:
        part.texts[(i, f)] = text
        part.failures.pop((i, f), None)
        part.meta[(i, f)] = {
            "attempts": attempt + 1,
            "tokens": gen.num_tokens,
            "finish_reason": gen.finish_reason,
        }


def _assemble(cfg: AugmentConfig, part: _Part):
    """The part's augmented records and its quarantine, in line order."""
    out, rejected = [], []
    k = 0
    for line, sample, rej in part.entries:
        if sample is None:
            rejected.append(rej.model_dump())
            continue
        i, k = k, k + 1
        failed = [f"field '{f}': {part.failures[(i, f)]}" for f in cfg.fields if (i, f) in part.failures]
        if failed:
            reason = "teacher output rejected: " + "; ".join(failed)
            rejected.append(
                Rejected(
                    source=cfg.input, line=line, field=None, reason=reason, raw=sample.to_record()
                ).model_dump()
            )
            continue
        record = sample.to_record() | {f: part.texts[(i, f)] for f in cfg.fields}
        record["teacher"] = cfg.teacher_label
        record["generation"] = {
            "engine": "dry-run" if cfg.dry_run else cfg.engine,
            "seed": cfg.seed,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "max_new_tokens": cfg.max_new_tokens,
            **{f: part.meta[(i, f)] for f in cfg.fields},
        }
        if "chain_of_thought" in cfg.fields:
            # A dry run's placeholder concludes nothing: no consistency to measure (null, uncounted).
            record["cot_consistent"] = (
                None if cfg.dry_run else is_consistent(record["chain_of_thought"], sample)
            )
            part.stats.cot_checked += not cfg.dry_run
            part.stats.cot_consistent += record["cot_consistent"] is True
        out.append(record)
    return out, rejected


_PART_MARKER = re.compile(r"/part-(\d{5})\.([0-9a-f]{16}-[0-9a-f]{8})\.json$")


def new_writer_id() -> str:
    """A writer id: start time in ns (fixed-width hex, so ids sort by start), then 32 random bits."""
    return f"{time.time_ns():016x}-{secrets.token_hex(4)}"


def winning_markers(shard_dir: str, fingerprint: str) -> dict[int, dict[str, Any]]:
    """``{part: marker}``: for each part, the complete marker of the smallest writer id (of this plan)."""
    found: dict[int, tuple[str, str]] = {}
    for uri in storage.list_files(shard_dir):
        m = _PART_MARKER.search(uri)
        if m and (int(m[1]) not in found or m[2] < found[int(m[1])][0]):
            found[int(m[1])] = (m[2], uri)
    # Markers of another plan are never here: a plan change is refused before any write.
    winners = {}
    for part, (_, uri) in sorted(found.items()):
        marker = _load_marker(uri, fingerprint)
        if marker is not None:
            winners[part] = marker
    return winners


def _load_marker(uri: str, fingerprint: str) -> dict[str, Any] | None:
    if not storage.exists(uri):
        return None
    marker = json.loads(storage.read_text(uri))
    return marker if marker.get("fingerprint") == fingerprint else None


def run_shard(
    cfg: AugmentConfig,
    index: int,
    engine_factory: Callable[[], Engine],
    on_part: Callable[[PartStats], None] | None = None,
) -> dict[str, Any]:
    """Augment shard ``index``; returns its ``_SUCCESS`` record (skipping the work if it exists).

    Args:
        cfg: the run's settings.
        index: which shard, ``0 <= index < cfg.num_shards``.
        engine_factory: called once, and only if some part still needs generating.
        on_part: called after every part (finished now or found finished).
    """
    if not 0 <= index < cfg.num_shards:
        raise ConfigError("--shard-index", [f"must be in [0, {cfg.num_shards}), got {index}"])
    # A changed input, teacher, engine or setting is refused here; the first task to get here
    # without a plan writes it (and every shard's input); others racing it write the same.
    plan = ensure_plan(cfg)
    fingerprint = plan["fingerprint"]
    shard_dir = cfg.shard_dir(index)
    success_uri = storage.join(shard_dir, "_SUCCESS")
    done = _load_marker(success_uri, fingerprint)
    if done is not None:
        return done
    own = plan["inputs"][f"{shard_name(index, cfg.num_shards)}.jsonl"]
    entries = shard_entries(iter_shard_input(cfg, index, own), cfg.input, own["records"])
    writer = new_writer_id()
    finished = winning_markers(shard_dir, fingerprint)
    stream: GenerationStream | None = None
    window: deque[_Part] = deque()  # read, not yet committed, in part order
    chunks = enumerate(_parts(entries, cfg.part_size))
    reading, parts, n_in = True, [], 0
    last_commit = time.perf_counter()

    def commit(part: _Part) -> None:
        nonlocal finished, last_commit
        marker = part.marker
        if marker is None:  # another writer of this shard may have finished it meanwhile: theirs stands
            finished = winning_markers(shard_dir, fingerprint)
            marker = finished.get(part.index)
        if marker is None:
            # Parts overlap in the stream: each counts from the previous commit (or its start), so
            # a shard's part seconds add up to its wall time generating.
            since = max(part.started, last_commit)
            marker = _write_part(cfg, shard_dir, fingerprint, writer, part, since=since)
            last_commit = since + part.stats.seconds
            stats = part.stats
        else:
            stats = PartStats(
                shard=index,
                part=part.index,
                samples=marker["out"],
                quarantined=marker["quarantined"],
                skipped=True,
            )
        parts.append(marker)
        if on_part:
            on_part(stats)

    while True:
        while window and window[0].done:
            commit(window.popleft())
        # Keep LOOKAHEAD parts in the stream: the next part's requests reach the engine while the
        # current part's last ones (and its retries, which go first) still run, so the engine does
        # not drain at a part boundary; memory stays bounded by the LOOKAHEAD parts in the window.
        while reading and sum(w.marker is None for w in window) < LOOKAHEAD:
            chunk = next(chunks, None)
            if chunk is None:
                reading = False
                break
            p, records = chunk
            n_in += len(records)
            part = _Part(
                p, records, PartStats(shard=index, part=p), time.perf_counter(), marker=finished.get(p)
            )
            if part.marker is None:
                part.samples = [s for _, s, _ in records if s is not None]
                part.bases = [base_text(s) for s in part.samples]
                if part.samples and stream is None:
                    stream = open_stream(engine_factory())
                for i in range(len(part.samples)):
                    for f in cfg.fields:
                        _submit(cfg, stream, part, i, f, 0)
            else:
                part.entries = []  # counted; a finished part's records are not needed again
            window.append(part)
            while window and window[0].done:
                commit(window.popleft())
        if not window:  # nothing left to read either: a full window is never empty
            break
        with stall_guard(cfg.stall_timeout_s, f"augment shard {index}"):  # a hung engine ends the process
            results = stream.poll() if stream is not None else []
        if not results:  # an invariant: the oldest part waits on requests in the stream
            raise AssertionError(
                f"shard {index}: part {window[0].index} waits, but the engine has nothing in flight"
            )
        by_index = {w.index: w for w in window}
        for key, gen in results:
            _receive(cfg, stream, by_index[key[0]], key, gen)
    # Another writer of this shard may have finished parts meanwhile: list the winners, whoever wrote them.
    finished = winning_markers(shard_dir, fingerprint)
    parts = [finished.get(p, marker) for p, marker in enumerate(parts)]
    success = _shard_success(fingerprint, index, cfg.num_shards, n_in, parts)
    storage.write_text(success_uri, json.dumps(success, sort_keys=True))
    return success


def _write_part(
    cfg: AugmentConfig, shard_dir: str, fingerprint: str, writer: str, part: _Part, since: float
) -> dict[str, Any]:
    """Write a finished part: its records and its quarantine, then its marker (data first, marker
    last: a marker always describes complete files). Sets ``part.stats``; returns the marker."""
    p, stats = part.index, part.stats
    name = f"part-{p:05d}.{writer}"
    out, rejected = _assemble(cfg, part)
    for suffix, records in ((".jsonl", out), (".quarantine.jsonl", rejected)):
        if records:
            blob = _jsonl(records)
            storage.write_bytes(storage.join(shard_dir, name + suffix), blob)
            stats.files[name + suffix] = {"records": len(records), "sha256": hashlib.sha256(blob).hexdigest()}
    stats.samples, stats.quarantined = len(out), len(rejected)
    stats.seconds = time.perf_counter() - since
    marker = {
        "fingerprint": fingerprint,
        "part": p,
        "writer": writer,
        "in": len(part.entries),
        "out": len(out),
        "quarantined": len(rejected),
        "tokens": stats.tokens,
        "tokens_kept": stats.tokens_kept,
        "seconds": round(stats.seconds, 3),
        "cot_checked": stats.cot_checked,
        "cot_consistent": stats.cot_consistent,
        "files": stats.files,
    }
    storage.write_text(storage.join(shard_dir, f"{name}.json"), json.dumps(marker, sort_keys=True))
    return marker


def _shard_success(
    fingerprint: str, index: int, num_shards: int, n_in: int, parts: list[dict]
) -> dict[str, Any]:
    """The shard's ``_SUCCESS`` record: its parts' markers and their sums.

    Raises:
        AssertionError: records in != out + quarantined (an invariant, not user input).
    """
    success = {
        "fingerprint": fingerprint,
        "shard": index,
        "num_shards": num_shards,
        "in": n_in,
        "out": sum(m["out"] for m in parts),
        "quarantined": sum(m["quarantined"] for m in parts),
        "tokens": sum(m["tokens"] for m in parts),
        "tokens_kept": sum(m.get("tokens_kept", m["tokens"]) for m in parts),
        "cot_checked": sum(m["cot_checked"] for m in parts),
        "cot_consistent": sum(m["cot_consistent"] for m in parts),
        "parts": parts,
    }
    if success["in"] != success["out"] + success["quarantined"]:
        raise AssertionError(f"shard {index}: in={n_in} != out+quarantined")
    return success
