"""Merge the outputs of separate shard tasks (a pipeline's fan-out) into one augmented dataset.

Each ``augment shard`` task of a pipeline writes its own output directory: ``plan.json`` plus
``shards/<shard>/`` (parts, markers, ``_SUCCESS``). :func:`merge_gathered` links them under one
root in the layout :func:`~teacherlm_core.augment.merge.merge` reads, and merges them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DataError, TeacherLMError
from .config import PLAN, SHARDS, AugmentConfig, shard_name
from .merge import merge

__all__ = ["export_shard", "merge_gathered"]


def export_shard(cfg: AugmentConfig, shard_index: int, output: str, teacher_version: str) -> None:
    """A finished shard as a pipeline's ``augment shard`` task hands it on: ``output/plan.json``,
    ``output/shards/<shard>/`` and ``output/lineage.json`` (which registered teacher wrote it),
    the layout :func:`merge_gathered` reads. ``cfg.output`` may be ``output`` itself (nothing to
    copy) or a shared run root (``s3://``) the shard was written to as it went."""
    from .. import storage
    from ..lineage import write_lineage

    write_lineage(output, teacher_version=teacher_version)
    if storage.join(cfg.output) != storage.join(output):
        storage.copy(cfg.plan_uri, storage.join(output, PLAN))
        storage.download_dir(
            cfg.shard_dir(shard_index), storage.join(output, SHARDS, shard_name(shard_index, cfg.num_shards))
        )


def _shard_dirs(shards: list[str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """The plan the shard outputs ``shards`` share, and their shard directories by name.

    The same output named twice counts once; two outputs holding the same shard are refused (which
    one is the run's is not for the merge to guess).
    """
    missing = [s for s in shards if not Path(s, "plan.json").is_file()]
    if missing:
        raise DataError(missing[0], None, None, "not a shard task's output (no plan.json in it)")
    outputs = list(dict.fromkeys(Path(s).resolve() for s in shards))
    plans = {s: json.loads((s / "plan.json").read_text()) for s in outputs}
    by_plan: dict[str, list[Path]] = {}
    for s, p in plans.items():
        by_plan.setdefault(p["fingerprint"], []).append(s)
    if len(by_plan) != 1:
        groups = "; ".join(f"plan {f}: {', '.join(map(str, paths))}" for f, paths in by_plan.items())
        raise TeacherLMError(
            f"{len(outputs)} shard outputs from {len(by_plan)} plans: refusing to mix them ({groups})"
        )
    dirs: dict[str, Path] = {}
    for s in outputs:
        for shard_dir in sorted(Path(s, "shards").iterdir()) if (s / "shards").is_dir() else []:
            if shard_dir.name in dirs:
                raise DataError(
                    str(shard_dir),
                    None,
                    None,
                    f"{shard_dir.name} is in two shard outputs ({dirs[shard_dir.name].parent.parent} and {s}): "
                    "give the merge one of them",
                )
            dirs[shard_dir.name] = shard_dir.resolve()
    return plans[outputs[0]], dirs


def _link(plan: dict[str, Any], dirs: dict[str, Path], out: Path) -> None:
    """Link the shard directories under ``out`` with the shards' plan, in the layout the merge reads."""
    plan = dict(plan)
    plan["config"] = plan["config"] | {"output": str(out)}  # the merge reads the shards from here
    (out / "plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True))
    (out / "shards").mkdir()
    for name, target in dirs.items():  # linked, not copied: the merge only reads them
        (out / "shards" / name).symlink_to(target, target_is_directory=True)


def _remove_links(shards_dir: Path) -> None:
    """Remove a gathered ``shards/`` (links only: their targets are the shard tasks' own outputs)."""
    if not shards_dir.is_dir() or shards_dir.is_symlink():
        return
    entries = list(shards_dir.iterdir())
    if any(not e.is_symlink() for e in entries):
        raise TeacherLMError(
            f"{shards_dir} holds shards of a run, not a merge's links: merge the shard outputs into another directory"
        )
    for e in entries:
        e.unlink()
    shards_dir.rmdir()


def merge_gathered(shards: list[str], output: str | Path) -> dict[str, Any]:
    """Merge the shard task outputs ``shards`` (local dirs of one plan) into ``output``.

    Writes ``train.jsonl``, ``data/*.parquet``, ``quarantine/``, ``manifest.json`` and
    ``README.md``; the per-shard parts are not copied (the manifest keeps their checksums).
    Everything is checked before ``output`` is touched, and a merge that fails (or was killed)
    can be run again into the same ``output``. Returns the merged manifest.

    Raises:
        DataError: a path that is not a shard task's output, or a shard in two of them.
        TeacherLMError: no shard outputs, or outputs of different plans.
    """
    if not shards:
        raise TeacherLMError("no shard outputs to merge")
    plan, dirs = _shard_dirs(shards)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    _remove_links(out / "shards")  # left by a merge killed before it cleaned up
    try:
        _link(plan, dirs, out)
        return merge(str(out))
    finally:
        _remove_links(out / "shards")
