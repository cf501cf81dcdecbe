"""Merge the outputs of separate shard tasks (a pipeline's fan-out) into one augmented dataset.

Each ``augment shard`` task of a pipeline writes its own output directory: ``plan.json`` plus
``shards/<shard>/`` (parts, markers, ``_SUCCESS``). :func:`merge_gathered` links them under one
root in the layout :func:`~teacherlm_core.augment.merge.merge` reads, and merges them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import DataError, TeacherLMError
from .merge import merge

__all__ = ["merge_gathered"]


def _gather(shards: list[str], out: Path) -> None:
    """Link the shard outputs of one plan under ``out`` (refusing outputs of different plans)."""
    missing = [s for s in shards if not Path(s, "plan.json").is_file()]
    if missing:
        raise DataError(missing[0], None, None, "not a shard task's output (no plan.json in it)")
    plans = [json.loads(Path(s, "plan.json").read_text()) for s in shards]
    fingerprints = {p["fingerprint"] for p in plans}
    if len(fingerprints) != 1:
        raise TeacherLMError(
            f"{len(shards)} shard outputs from {len(fingerprints)} plans: refusing to mix them"
        )
    plan = dict(plans[0])
    plan["config"] = plan["config"] | {"output": str(out)}  # the merge reads the shards from here
    (out / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True))
    (out / "shards").mkdir(exist_ok=True)
    for s in shards:  # linked, not copied: the merge only reads them
        for shard_dir in sorted(Path(s, "shards").iterdir()):
            (out / "shards" / shard_dir.name).symlink_to(shard_dir.resolve(), target_is_directory=True)


def merge_gathered(shards: list[str], output: str | Path) -> dict[str, Any]:
    """Merge the shard task outputs ``shards`` (local dirs of one plan) into ``output``.

    Writes ``train.jsonl``, ``data/*.parquet``, ``quarantine/``, ``manifest.json`` and
    ``README.md``; the per-shard parts are not copied (the manifest keeps their checksums).
    Returns the merged manifest.

    Raises:
        DataError: a path that is not a shard task's output. TeacherLMError: no shard outputs, or
            outputs of different plans.
    """
    if not shards:
        raise TeacherLMError("no shard outputs to merge")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _gather(shards, out)
    try:
        return merge(str(out))
    finally:
        shutil.rmtree(out / "shards")  # the links (their targets are the shard tasks' own outputs)
