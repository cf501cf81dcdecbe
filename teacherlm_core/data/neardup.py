"""Near-duplicate detection with bounded memory: MinHash LSH whose index lives on disk.

``datasketch`` computes each record's MinHash and the LSH parameters (``b`` bands of ``r`` rows,
its optimum for the threshold and ``num_perm``); what ``datasketch.MinHashLSH`` would keep in
memory goes to disk instead:

* signatures: a file of ``num_perm`` hash values (``uint32``, 512 bytes at 128 permutations) per
  indexed record, read back with ``pread`` (no memory map, so they never count in the process's
  resident memory);
* bands: an SQLite table ``band(key, seq)`` (a clustered primary key), ``key`` a 64-bit hash of
  the band's index and values, so two records are candidates when any band matches, exactly as in
  ``MinHashLSH`` (a false match needs a 64-bit collision, and is then verified like any other);
* records: ``kept(seq, n, id, split)`` for the report and the tie-break.

Records come in batches (:meth:`NearIndex.add_batch`): one query per batch for every band key in
it, then each record in order against the index and the earlier records of its batch, so the
result is the one a record-at-a-time ``MinHashLSH`` gives. Memory is bounded by a batch and
SQLite's page cache (8 MiB), whatever the number of records.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NearIndex", "NearMatch"]

CACHE_KIB = 8192  # SQLite page cache: the index's only memory besides one batch
_FIND_BANDS = "SELECT key, seq FROM band WHERE key IN (SELECT value FROM json_each(?))"
_FIND_KEPT = "SELECT seq, n, id, split FROM kept WHERE seq IN (SELECT value FROM json_each(?))"


@dataclass(frozen=True)
class NearMatch:
    """The verdict on one record: ``action`` is ``"removed"`` (the nearest record of another
    split), ``"flagged"`` (the nearest is in its own split; the record is kept and indexed);
    ``duplicate_of`` / ``duplicate_of_split`` name that record; ``similarity`` in [threshold, 1]."""

    action: str
    duplicate_of: str
    duplicate_of_split: str | None
    similarity: float


class NearIndex:
    """MinHash LSH over records seen so far, on disk under ``folder``.

    Args:
        folder: an existing working directory (the index writes ``near.sqlite`` and
            ``signatures.bin`` there; the caller removes the folder).
        threshold: estimated Jaccard similarity at or above which two records are near duplicates.
        num_perm: MinHash permutations.

    Attributes:
        bands: ``[(start, end), ...]``, datasketch's optimal banding for ``threshold``/``num_perm``.
        count: records indexed.
    """

    def __init__(self, folder: Path, threshold: float, num_perm: int):
        import numpy as np
        from datasketch import MinHash, MinHashLSH

        self.threshold, self.num_perm = threshold, num_perm
        self.bands = list(MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges)
        template = MinHash(num_perm=num_perm)
        self._minhash = MinHash
        self._permutations, self._scheme = template.permutations, template.scheme  # made once, not per record
        self._dtype = np.dtype(template.hashvalues.dtype)
        self._row = self._dtype.itemsize * num_perm
        self._np = np
        self.count = 0
        self._sig_fd = os.open(folder / "signatures.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.db = sqlite3.connect(folder / "near.sqlite", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{CACHE_KIB}"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.execute(
            "CREATE TABLE band (key INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (key, seq)) WITHOUT ROWID"
        )
        self.db.execute(
            "CREATE TABLE kept (seq INTEGER PRIMARY KEY, n INTEGER NOT NULL, id TEXT NOT NULL, split TEXT)"
        )

    def signature(self, shingles: Sequence[bytes]):
        """The MinHash of a record's shingles: ``num_perm`` hash values (datasketch's dtype)."""
        mh = self._minhash(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        mh.update_batch(shingles)
        return mh.hashvalues

    def _band_keys(self, sig) -> list[int]:
        return [
            int.from_bytes(
                hashlib.blake2b(sig[a:b].tobytes(), digest_size=8, salt=i.to_bytes(2, "big")).digest(),
                "big",
                signed=True,
            )
            for i, (a, b) in enumerate(self.bands)
        ]

    def add_batch(self, batch: Sequence[tuple[int, str, str | None, Any]]) -> list[NearMatch | None]:
        """Judge each ``(n, id, split, signature)`` in order against everything indexed before it.

        ``n`` is the record's position in the input (the tie-break: of equally similar records the
        earliest wins). A record with no near duplicate, or one only in its own split, is indexed;
        one with a near duplicate in another split is not (it is removed).

        Returns:
            per record, ``None`` (no near duplicate) or a :class:`NearMatch`.
        """
        np = self._np
        keys = [self._band_keys(sig) for _, _, _, sig in batch]
        found: dict[int, list[int]] = {}
        # One statement text whatever the batch (the keys go in as one JSON array), so SQLite's
        # statement cache holds one compiled query, not one per IN-list length.
        distinct = json.dumps(sorted({k for ks in keys for k in ks}))
        for key, seq in self.db.execute(_FIND_BANDS, (distinct,)):
            found.setdefault(key, []).append(seq)
        info: dict[int, tuple[int, str, str | None, Any]] = {}  # seq -> (n, id, split, signature)
        old = json.dumps(sorted({s for seqs in found.values() for s in seqs}))
        for seq, n, id_, split in self.db.execute(_FIND_KEPT, (old,)):
            raw = os.pread(self._sig_fd, self._row, seq * self._row)
            info[seq] = (n, id_, split, np.frombuffer(raw, dtype=self._dtype))
        verdicts: list[NearMatch | None] = []
        new_bands: list[tuple[int, int]] = []
        new_kept: list[tuple[int, int, str, str | None]] = []
        for (n, id_, split, sig), ks in zip(batch, keys, strict=True):
            candidates = {s for k in ks for s in found.get(k, ())}
            near = []
            for seq in candidates:
                j_n, j_id, j_split, j_sig = info[seq]
                s = float(np.count_nonzero(sig == j_sig)) / float(self.num_perm)  # == MinHash.jaccard
                if s >= self.threshold:
                    near.append((s, -j_n, j_id, j_split))
            cross = [m for m in near if m[3] != split]
            if cross:
                s, _, j_id, j_split = max(cross)
                verdicts.append(NearMatch("removed", j_id, j_split, s))
                continue
            if near:
                s, _, j_id, j_split = max(near)
                verdicts.append(NearMatch("flagged", j_id, j_split, s))
            else:
                verdicts.append(None)
            seq = self.count
            self.count += 1
            info[seq] = (n, id_, split, sig)
            new_kept.append((seq, n, id_, split))
            for k in ks:
                found.setdefault(k, []).append(seq)
                new_bands.append((k, seq))
        if new_kept:
            os.pwrite(
                self._sig_fd,
                b"".join(info[seq][3].astype(self._dtype, copy=False).tobytes() for seq, *_ in new_kept),
                new_kept[0][0] * self._row,
            )
            self.db.execute("BEGIN")
            self.db.executemany("INSERT INTO kept VALUES (?, ?, ?, ?)", new_kept)
            self.db.executemany("INSERT INTO band VALUES (?, ?)", new_bands)
            self.db.execute("COMMIT")
        return verdicts

    def close(self) -> None:
        """Close the files (the caller removes the folder)."""
        self.db.close()
        os.close(self._sig_fd)
