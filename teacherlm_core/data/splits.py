"""Where a split of a dataset lives.

A dataset is a directory with one file per split, ``{split}.jsonl`` (or ``{split}.parquet``), as
``teacherlm data build`` / ``data import`` write them; a single file is its own only split.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError

__all__ = ["SPLIT_FORMATS", "split_file"]

SPLIT_FORMATS = ("jsonl", "parquet")  # looked for in this order


def split_file(data: str | Path, split: str) -> Path:
    """The file holding ``split`` of dataset ``data`` (a directory, or a file that is its own only split).

    Raises:
        DataError: ``data`` is a directory without ``{split}.jsonl`` or ``{split}.parquet``.
    """
    path = Path(data)
    if not path.is_dir():
        return path
    for ext in SPLIT_FORMATS:
        if (path / f"{split}.{ext}").is_file():
            return path / f"{split}.{ext}"
    raise DataError(str(path), None, None, f"no {split}.jsonl or {split}.parquet in this dataset")
