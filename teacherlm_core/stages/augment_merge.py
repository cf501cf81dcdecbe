"""``augment merge``: finished shards into one augmented dataset (CLI ``teacherlm augment merge``, component ``augment_merge``)."""

from __future__ import annotations

from collections.abc import Sequence

from ._run import stage_run

__all__ = ["augment_merge"]


def augment_merge(output: str, shards: Sequence[str] = ()) -> dict:
    """Merge an augmentation run's shards into ``output``.

    Args:
        output: The run's output root (local dir or ``s3://`` prefix), or with ``shards`` the
            directory to merge into.
        shards: The outputs of separate shard tasks (a pipeline's fan-out; local dirs of one plan),
            gathered into ``output`` first; then ``output`` also gets ``train.jsonl`` (every augmented
            record, for the students). Empty: the shards are already under ``output/shards/``.

    Returns:
        The merged manifest: ``counts``, ``chain_of_thought_consistency``, files and checksums.
    """
    from ..augment import merge, merge_gathered

    with stage_run("augment merge", {"shards": len(shards) or "in place"}) as t:
        manifest = merge_gathered(list(shards), output) if shards else merge(output)
        t.log_metrics(manifest["counts"])
    return manifest
