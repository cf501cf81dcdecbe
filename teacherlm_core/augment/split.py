"""Per-shard inputs (a *split*): the input read once, in one streaming pass, and cut by owner shard.

A split is a directory (local or ``s3://``; ``OUT/inputs/`` of a run, or where ``augment plan``
writes it) holding ``shard-NNNNN-of-MMMMM.jsonl`` for every shard, each holding,
in input line order, the entries of the records that shard owns (``sha256(id) % num_shards``;
a record without a usable id: by line), one JSON object a line:

* ``{"line": 12, "record": {...}}``: a JSON object as read (validated by the shard);
* ``{"line": 13, "error": {"field": ..., "reason": ...}, "raw": ...}``: a line that is not one
  (malformed JSON, NaN, bad UTF-8), kept with its line for the shard's quarantine.

A shard task then streams only its own file (:func:`iter_shard_input`), never the whole input:
at 2M records over 64 shards each task reads 1/64 of the bytes and parses 1/64 of the lines.
The same pass computes the column kinds of every record (the merged dataset's schema). Memory
is bounded by the write buffers (``BUFFER_BYTES``), whatever the input's size.

``split.json``, written after the files (so a split that has one is complete), records the
input's URI and content id (:func:`~teacherlm_core.storage.content_id`), ``num_shards``, the
column kinds and, per file, its records, bytes and sha256. ``plan.json`` copies the last two, and
a shard refuses a file that does not match. A run given a split (``AugmentConfig.split``) takes
the input's identity from ``split.json`` and never reads the input itself: that is how the
pipeline's shard tasks read only their own records (:func:`write_split`, :func:`load_split`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import storage
from ..errors import DataError, TeacherLMError
from ..parquet import ColumnKinds
from ..records import GZIP_MAGIC, ZSTD_MAGIC, format_of, iter_jsonl_lines, iter_raw_records
from .config import AugmentConfig, shard_name

__all__ = [
    "BUFFER_BYTES",
    "SPLIT_RECORD",
    "iter_input",
    "iter_shard_input",
    "load_split",
    "local_input",
    "owner_shard",
    "split_input",
    "write_split",
]

BUFFER_BYTES = 8 << 20  # all shards' pending lines together; flushed to disk past this
SPLIT_RECORD = "split.json"


def owner_shard(key: str, num_shards: int) -> int:
    """The shard of a record: the first 8 bytes of ``sha256(key)``, big-endian, modulo ``num_shards``."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % num_shards


@contextmanager
def local_input(uri: str) -> Iterator[str]:
    """A local path for ``uri`` (downloaded to a temp dir when remote)."""
    if not storage.is_remote(uri):
        yield uri
        return
    with tempfile.TemporaryDirectory(prefix="teacherlm-input-") as tmp:
        path = os.path.join(tmp, os.path.basename(uri))
        storage.copy(uri, path)
        yield path


def iter_input(uri: str) -> Iterator[tuple[int, dict[str, Any] | DataError, Any]]:
    """:func:`~teacherlm_core.schema.iter_raw_records` of a local or ``s3://`` input, streamed.

    JSON lines are streamed (never downloaded whole); a Parquet file on S3 is downloaded first
    (its footer comes last, so it needs random access), and so are compressed JSON lines. Errors
    name ``uri``.
    """
    if not storage.is_remote(uri):
        yield from iter_raw_records(uri)
        return
    chunks = storage.iter_chunks(uri)
    head = next(chunks, b"")
    if head.startswith((GZIP_MAGIC, ZSTD_MAGIC)) or format_of(head[:4096], uri) == "parquet":
        chunks.close()
        with local_input(uri) as path:
            for line, item, raw in iter_raw_records(path):
                if isinstance(item, DataError):
                    item.path = uri
                yield line, item, raw
        return
    yield from iter_jsonl_lines(storage.chunk_lines(itertools.chain([head], chunks)), uri)


class _ShardFiles:
    """Append-only per-shard files in a temp dir, buffered in memory up to ``BUFFER_BYTES`` in all."""

    def __init__(self, tmp: str, names: list[str]):
        self.paths = [os.path.join(tmp, n) for n in names]
        self.buffers: list[list[bytes]] = [[] for _ in names]
        self.digests = [hashlib.sha256() for _ in names]
        self.counts = [0] * len(names)
        self.sizes = [0] * len(names)
        self.pending = 0
        for p in self.paths:
            open(p, "wb").close()

    def add(self, shard: int, line: bytes) -> None:
        self.buffers[shard].append(line)
        self.digests[shard].update(line)
        self.counts[shard] += 1
        self.sizes[shard] += len(line)
        self.pending += len(line)
        if self.pending > BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        for path, buf in zip(self.paths, self.buffers, strict=True):
            if buf:
                with open(path, "ab") as fh:
                    fh.writelines(buf)
                buf.clear()
        self.pending = 0


def split_input(
    input: str, num_shards: int, inputs_dir: str, progress=None
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Write every shard's input file under ``inputs_dir`` in one streaming pass over ``input``.

    Args:
        input: the dataset file (JSON lines or Parquet; local or ``s3://``).
        num_shards: how many shards to cut it into.
        inputs_dir: where the shard files go (local dir or ``s3://`` prefix).
        progress: called with the number of input lines read so far, every 10,000 lines.

    Returns:
        ``(columns, inputs)``: the column kinds of every record (see :mod:`teacherlm_core.parquet`)
        and, per shard file name, ``{"records", "bytes", "sha256"}``.

    Raises:
        DataError: the input is missing, empty, or not JSON lines / Parquet.
    """
    kinds = ColumnKinds()
    names = [f"{shard_name(i, num_shards)}.jsonl" for i in range(num_shards)]
    local_out = not storage.is_remote(inputs_dir)
    if local_out:
        os.makedirs(inputs_dir, exist_ok=True)
        storage.remove_stale_temps(inputs_dir, ".split-")  # a planner killed mid-way (kill -9)
    prefix = f".split-{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=inputs_dir if local_out else None) as tmp:
        files = _ShardFiles(tmp, names)
        n = 0
        for n, (line, item, raw) in enumerate(iter_input(input), start=1):
            if isinstance(item, dict):
                kinds.add(item)
                key = item["id"] if isinstance(item.get("id"), str) else f"line:{line}"
                entry = {"line": line, "record": item}
            else:
                key = f"line:{line}"
                entry = {"line": line, "error": {"field": item.field, "reason": item.reason}, "raw": raw}
            blob = json.dumps(entry, ensure_ascii=False, allow_nan=False, default=str).encode() + b"\n"
            files.add(owner_shard(key, num_shards), blob)
            if progress and n % 10_000 == 0:
                progress(n)
        files.flush()
        if n == 0:
            raise DataError(input, None, None, "holds no records: nothing to augment")
        inputs = {}
        for name, path, digest, count, size in zip(
            names, files.paths, files.digests, files.counts, files.sizes, strict=True
        ):
            target = storage.join(inputs_dir, name)
            if local_out:
                os.replace(path, target)  # same directory: atomic
            else:
                storage.copy(path, target)
            inputs[name] = {"records": count, "bytes": size, "sha256": digest.hexdigest()}
    return kinds.types(), inputs


def write_split(
    input: str, num_shards: int, inputs_dir: str, input_id: dict[str, Any], progress=None
) -> dict:
    """:func:`split_input`, then ``inputs_dir/split.json``; returns that record.

    Args:
        input_id: the input's ``{"uri", "size", "sha256" | "etag"}`` (read before the split, so
            an input replaced during it gives a record that no longer matches it).
    """
    columns, inputs = split_input(input, num_shards, inputs_dir, progress)
    record = {"input": input_id, "num_shards": num_shards, "columns": columns, "inputs": inputs}
    storage.write_text(storage.join(inputs_dir, SPLIT_RECORD), json.dumps(record, indent=1, sort_keys=True))
    return record


def load_split(split: str, num_shards: int | None = None) -> dict[str, Any]:
    """The ``split.json`` of split directory ``split``, with ``"uri"``: where its shard files are.

    A pipeline's plan artifact may hold only a ``split.json`` whose ``"location"`` names the
    shared storage the files were written to; that location is followed.

    Raises:
        DataError: ``split`` holds no ``split.json``, or one of another shard count.
    """
    uri = storage.join(split, SPLIT_RECORD)
    if not storage.exists(uri):
        raise DataError(uri, None, None, "no such file: not a split written by `teacherlm augment plan`")
    record = json.loads(storage.read_text(uri))
    location = record.get("location")
    if location:
        record = json.loads(storage.read_text(storage.join(location, SPLIT_RECORD)))
    if num_shards is not None and record["num_shards"] != num_shards:
        raise DataError(
            uri, None, "num_shards", f"the split has {record['num_shards']} shards, the run {num_shards}"
        )
    return record | {"uri": location or split}


def iter_shard_input(cfg: AugmentConfig, index: int, expected: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The entries of shard ``index``'s input file, streamed, checked against the plan at the end.

    Raises:
        TeacherLMError: the file's content differs from what the plan recorded (changed after it
            was written); raised after the last entry, before the shard can be marked done.
    """
    uri = storage.join(cfg.inputs_uri, f"{shard_name(index, cfg.num_shards)}.jsonl")
    digest, count = hashlib.sha256(), 0
    for raw in storage.iter_lines(uri):
        digest.update(raw)
        count += 1
        yield json.loads(raw)
    if digest.hexdigest() != expected["sha256"] or count != expected["records"]:
        again = f", write the split {cfg.split} again (augment plan)," if cfg.split else ""
        raise TeacherLMError(
            f"{uri}: {count} entries, sha256 {digest.hexdigest()[:12]}, but the plan recorded "
            f"{expected['records']}, {expected['sha256'][:12]}: the shard input changed after planning; "
            f"delete {cfg.output}{again} and augment again"
        )
