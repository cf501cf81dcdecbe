"""``augment plan``: check the dataset to augment, return the shards to fan out over (component ``augment_plan``)."""

from __future__ import annotations

from pathlib import Path

from ..data.splits import split_file
from ..errors import ConfigError, DataError

__all__ = ["augment_plan"]


def augment_plan(data: str | Path, num_shards: int) -> list[int]:
    """The shard indices ``0..num_shards-1`` of the train split of ``data``.

    Raises:
        ConfigError: ``num_shards`` outside [1, 99999].
        DataError: ``data`` does not exist, has no train split, or an empty one.
    """
    if not 1 <= num_shards <= 99999:
        raise ConfigError("num_shards", [f"must be in [1, 99999], got {num_shards}"])
    source = split_file(data, "train")
    if not source.is_file():
        raise DataError(str(source), None, None, "no such file or directory")
    if source.stat().st_size == 0:
        raise DataError(str(source), None, None, "empty dataset: nothing to augment")
    return list(range(num_shards))
