"""``augment plan``: split the dataset to augment by shard, return the shards to fan out over (component ``augment_plan``)."""

from __future__ import annotations

import json
from pathlib import Path

from ..data.splits import split_file
from ..errors import ConfigError, DataError

__all__ = ["augment_plan"]


def augment_plan(
    data: str | Path, num_shards: int, split: str | Path | None = None, work_root: str = "", progress=None
) -> list[int]:
    """The shard indices ``0..num_shards-1`` of the train split of ``data``, after writing its split.

    With ``split``, the train split is read once, streaming, and cut into one input file per
    shard (:func:`teacherlm_core.augment.split.write_split`), so that each ``augment shard`` task
    reads only its own records: into ``split`` itself, or, with ``work_root`` (shared storage, e.g.
    an ``s3://`` prefix), into ``work_root/<KFP run id>/augment/inputs`` with ``split`` holding only
    a ``split.json`` naming that location (a KFP task downloads its input artifacts whole, so the
    shard files must not be in the artifact the 64 shard tasks take). Without ``split``: checks only.

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
    if split is not None:
        from .. import storage
        from ..augment.split import SPLIT_RECORD, write_split
        from ..run_context import run_root

        split = str(split)
        location = run_root(work_root, "augment", "inputs") if work_root else split
        input_id = {"uri": str(source), **storage.content_id(str(source))}
        write_split(str(source), num_shards, location, input_id, progress)
        if work_root:
            storage.write_text(storage.join(split, SPLIT_RECORD), json.dumps({"location": location}))
    return list(range(num_shards))
