"""Records parked on disk between the steps of an import, one file per split, in arrival order.

A line is ``<n>\\t<record as JSON>``: ``n`` is the record's position in the whole input (what
the dedup's tie-breaks use), the JSON is what the writers will write. Nothing is held in memory
but an open file per split.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["Spool"]


class Spool:
    """Append records per split under ``folder`` (created); read them back a split at a time.

    Attributes:
        counts: ``{split: records}`` in the order splits first came.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.counts: dict[str, int] = {}
        self._files: dict[str, IO[str]] = {}
        self._paths: dict[str, Path] = {}  # split names may be anything: files are numbered

    def add(self, n: int, split: str, record: dict[str, Any]) -> None:
        """Append ``record`` (JSON-serialisable, no NaN) to ``split``'s file as input record ``n``."""
        fh = self._files.get(split)
        if fh is None:
            path = self._paths[split] = self.folder / f"split-{len(self._paths)}.jsonl"
            fh = self._files[split] = path.open("w", encoding="utf-8")
            self.counts[split] = 0
        fh.write(f"{n}\t{json.dumps(record, ensure_ascii=False, allow_nan=False)}\n")
        self.counts[split] += 1

    @property
    def total(self) -> int:
        """Records spooled, all splits together."""
        return sum(self.counts.values())

    def close(self) -> None:
        """Flush and close every file (reading needs this first)."""
        for fh in self._files.values():
            fh.close()

    def discard(self) -> None:
        """Close and delete every file (the counts stay)."""
        self.close()
        for path in self._paths.values():
            path.unlink(missing_ok=True)

    def read(self, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(n, record)`` of ``split`` in the order they were added (nothing if the split is empty)."""
        if split not in self.counts:
            return
        with self._paths[split].open(encoding="utf-8") as fh:
            for line in fh:
                n, _, text = line.partition("\t")
                yield int(n), json.loads(text)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
