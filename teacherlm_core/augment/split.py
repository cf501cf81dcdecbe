"""Per-shard inputs: the input read once, in one streaming pass, and cut by owner shard.

The plan step writes ``OUT/inputs/shard-NNNNN-of-MMMMM.jsonl`` for every shard, each holding,
in input line order, the entries of the records that shard owns (``sha256(id) % num_shards``;
a record without a usable id: by line), one JSON object a line:

* ``{"line": 12, "record": {...}}``: a JSON object as read (validated by the shard);
* ``{"line": 13, "error": {"field": ..., "reason": ...}, "raw": ...}``: a line that is not one
  (malformed JSON, NaN, bad UTF-8), kept with its line for the shard's quarantine.

A shard task then streams only its own file (:func:`iter_shard_input`), never the whole input:
at 2M records over 64 shards each task reads 1/64 of the bytes and parses 1/64 of the lines.
The same pass computes the column kinds of every record (the merged dataset's schema). Memory
is bounded by the write buffers (``BUFFER_BYTES``), whatever the input's size. The files'
record counts, sizes and sha256 go into ``plan.json``, which is written after them: a plan
that exists always names complete inputs, and a shard refuses an input that does not match.
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
from ..schema import format_of, iter_jsonl_lines, iter_raw_records
from .config import AugmentConfig, shard_name

__all__ = ["BUFFER_BYTES", "iter_input", "iter_shard_input", "local_input", "owner_shard", "split_input"]

BUFFER_BYTES = 8 << 20  # all shards' pending lines together; flushed to disk past this


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
    (its footer comes last, so it needs random access). Errors name ``uri``.
    """
    if not storage.is_remote(uri):
        yield from iter_raw_records(uri)
        return
    chunks = storage.iter_chunks(uri)
    head = next(chunks, b"")
    if format_of(head[:4096], uri) == "parquet":
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


def split_input(cfg: AugmentConfig, progress=None) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Write every shard's input under ``cfg.output/inputs/`` in one streaming pass over ``cfg.input``.

    Args:
        cfg: the run (its input, output and ``num_shards``).
        progress: called with the number of input lines read so far, every 10,000 lines.

    Returns:
        ``(columns, inputs)``: the column kinds of every record (see :mod:`teacherlm_core.parquet`)
        and, per shard file name, ``{"records", "bytes", "sha256"}``.

    Raises:
        DataError: the input is missing, empty, or not JSON lines / Parquet.
    """
    kinds = ColumnKinds()
    names = [f"{shard_name(i, cfg.num_shards)}.jsonl" for i in range(cfg.num_shards)]
    inputs_dir = storage.join(cfg.output, "inputs")
    local_out = not storage.is_remote(inputs_dir)
    if local_out:
        os.makedirs(inputs_dir, exist_ok=True)
        storage.remove_stale_temps(inputs_dir, ".split-")  # a planner killed mid-way (kill -9)
    prefix = f".split-{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=inputs_dir if local_out else None) as tmp:
        files = _ShardFiles(tmp, names)
        n = 0
        for n, (line, item, raw) in enumerate(iter_input(cfg.input), start=1):
            if isinstance(item, dict):
                kinds.add(item)
                key = item["id"] if isinstance(item.get("id"), str) else f"line:{line}"
                entry = {"line": line, "record": item}
            else:
                key = f"line:{line}"
                entry = {"line": line, "error": {"field": item.field, "reason": item.reason}, "raw": raw}
            blob = json.dumps(entry, ensure_ascii=False, allow_nan=False, default=str).encode() + b"\n"
            files.add(owner_shard(key, cfg.num_shards), blob)
            if progress and n % 10_000 == 0:
                progress(n)
        files.flush()
        if n == 0:
            raise DataError(cfg.input, None, None, "holds no records: nothing to augment")
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


def iter_shard_input(cfg: AugmentConfig, index: int, expected: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The entries of shard ``index``'s input file, streamed, checked against the plan at the end.

    Raises:
        TeacherLMError: the file's content differs from what the plan recorded (changed after it
            was written); raised after the last entry, before the shard can be marked done.
    """
    uri = storage.join(cfg.output, "inputs", f"{shard_name(index, cfg.num_shards)}.jsonl")
    digest, count = hashlib.sha256(), 0
    for raw in storage.iter_lines(uri):
        digest.update(raw)
        count += 1
        yield json.loads(raw)
    if digest.hexdigest() != expected["sha256"] or count != expected["records"]:
        raise TeacherLMError(
            f"{uri}: {count} entries, sha256 {digest.hexdigest()[:12]}, but the plan recorded "
            f"{expected['records']}, {expected['sha256'][:12]}: the shard input changed after planning; "
            f"delete {cfg.output} and augment again"
        )
