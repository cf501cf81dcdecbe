"""Compact hash tables for millions of keys: 8-byte hashes in numpy arrays, not Python objects.

A Python ``dict`` of strings costs ~120 bytes an entry (plus the strings); :class:`HashTable`
keeps an 8-byte key hash and a fixed-width value per slot in two numpy arrays (12 to 16 bytes a
slot, at most 2/3 of the slots used), so 2 million keys take 48-64 MiB instead of ~400 MiB.
Keys are hashes: two distinct keys share one with probability about ``n^2 / 2^64`` (2e-7 at 2
million keys), and callers that cannot accept that check the key itself on a hit.

* :class:`HashTable`: ``uint64 hash -> value`` with ``setdefault`` and ``get``;
* :class:`SeenIds`: the ids a stream has seen, with the line each was first seen on.
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import Any

__all__ = ["HashTable", "SeenIds", "key_hash"]

_CHUNK = 1 << 16  # entries moved at a time when a table grows


def key_hash(text: str, *, salt: bytes = b"") -> int:
    """A non-zero 64-bit hash of ``text`` (BLAKE2b); 0 marks a free slot in :class:`HashTable`."""
    digest = hashlib.blake2b(text.encode(), digest_size=8, person=salt).digest()
    return int.from_bytes(digest, "big") | 1


class HashTable:
    """Open addressing with linear probing: ``uint64`` key hashes (non-zero) to fixed-width values.

    Sized once for ``capacity`` keys (a power of two slots, load factor at most 2/3); it doubles if
    more come: the entries wait in a temporary file while the old arrays are freed, so growing
    never holds the old and the new table at once (nor a Python list of the entries).

    Args:
        capacity: the number of keys expected (0 is allowed: the table starts at 1,024 slots).
        value_dtype: numpy dtype of the values (``"uint32"`` for record numbers, ``"int64"`` for more).

    Attributes:
        keys: ``uint64[size]``, 0 in a free slot.
        values: ``value_dtype[size]``.
        count: keys stored.
    """

    def __init__(self, capacity: int, value_dtype: Any = "int64"):
        import numpy as np

        size = 1 << max(10, (max(capacity, 1) * 3 // 2).bit_length())  # load factor <= 2/3
        self.keys = np.zeros(size, dtype=np.uint64)
        self.values = np.zeros(size, dtype=value_dtype)
        self.mask, self.count = size - 1, 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the two arrays (what the table costs in memory)."""
        return self.keys.nbytes + self.values.nbytes

    def _slot(self, h: int) -> int:
        keys, mask = self.keys, self.mask
        i = h & mask
        while (k := int(keys[i])) != 0 and k != h:
            i = (i + 1) & mask
        return i

    def get(self, h: int) -> int | None:
        """The value stored for hash ``h``, or ``None``."""
        i = self._slot(h)
        return int(self.values[i]) if self.keys[i] else None

    def setdefault(self, h: int, value: int) -> int:
        """The value stored for ``h``; if there is none, store ``value`` and return it.

        Raises:
            ValueError: ``h`` is 0 (the free-slot marker) or outside ``uint64``.
        """
        if not 0 < h < 1 << 64:
            raise ValueError(f"key hash must be in [1, 2**64), got {h}")
        i = self._slot(h)
        if self.keys[i]:
            return int(self.values[i])
        if (self.count + 1) * 3 > len(self.keys) * 2:  # more keys than planned: grow
            self._grow()
            i = self._slot(h)
        self.keys[i], self.values[i] = h, value
        self.count += 1
        return value

    def _grow(self) -> None:
        # The entries wait in a temporary file while the old arrays are freed, so the peak is
        # the new table (twice the old), not old and new together (three times the old).
        import numpy as np

        with tempfile.TemporaryFile() as spill:
            used = self.keys.nonzero()[0]
            n, dtype = len(used), self.values.dtype
            for c in range(0, n, _CHUNK):
                self.keys[used[c : c + _CHUNK]].tofile(spill)
            for c in range(0, n, _CHUNK):
                self.values[used[c : c + _CHUNK]].tofile(spill)
            size = len(self.keys)
            del used
            self.keys = self.values = None
            HashTable.__init__(self, size, dtype)
            for c in range(0, n, _CHUNK):
                spill.seek(c * 8)
                keys = np.fromfile(spill, dtype=np.uint64, count=min(_CHUNK, n - c))
                spill.seek(n * 8 + c * dtype.itemsize)
                values = np.fromfile(spill, dtype=dtype, count=len(keys))
                for h, v in zip(keys.tolist(), values.tolist(), strict=True):
                    i = self._slot(h)
                    self.keys[i], self.values[i] = h, v
                    self.count += 1


class SeenIds(HashTable):
    """The ids a stream has seen, in 16 bytes a slot: 8-byte id hashes (SHA-256) and first lines.

    Sized from the expected record count (a Python dict would take ~120 bytes an id: 30 MB for a
    250,000-record shard). Two ids share a hash with probability ~n^2 / 2^65 (about 2e-9 at
    250,000 ids). ``line`` may be any non-negative int64 (an importer packs a part number into it).
    """

    def __init__(self, capacity: int):
        super().__init__(capacity, "int64")

    def first_line(self, sample_id: str, line: int) -> int:
        """The line ``sample_id`` was first seen on (``line`` itself when it is new; then remembered)."""
        h = int.from_bytes(hashlib.sha256(sample_id.encode()).digest()[:8], "big") | 1  # 0 marks a free slot
        return self.setdefault(h, line)
