"""Build the built-in annotated suite: ``teacherlm data build --output DIR``.

Each family draws ``per_task`` items, split 70/15/15 into train/validation/test by its held-out
templates or entities. Every record is a valid :class:`~teacherlm_core.schema.AugmentedSample`
whose three explanation fields are the generator's gold annotation (``teacher`` says so). The
same ``(tasks, per_task, seed)`` always gives byte-identical files: each family and split draws
from its own ``random.Random`` seeded with a string, and nothing global is touched.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..records import write_jsonl
from ..schema import SCHEMA_VERSION, AugmentedSample
from .dedup import NEAR_THRESHOLD, deduplicate, normalize_text
from .manifest import (
    DEDUP_REPORT,
    MANIFEST,
    clean_outputs,
    count_records,
    file_entry,
    write_json,
    write_splits,
)
from .tasks import SPLITS, TaskFamily, get_families
from .tasks.base import split_sizes

__all__ = ["GENERATOR", "GENERATOR_VERSION", "build_builtin", "generate_builtin", "generate_task"]

GENERATOR = "teacherlm-builtin"
GENERATOR_VERSION = "2"  # bump whenever any family's output changes for the same seed
TEACHER = f"gold:{GENERATOR}@{GENERATOR_VERSION}"

Progress = Callable[[str, int], None]


def generate_task(
    family: TaskFamily, per_task: int, seed: int, test_per_task: int = 0
) -> list[dict[str, Any]]:
    """``per_task`` records of one family (fewer if its held-out pool runs out of distinct questions).

    ``test_per_task > 0`` sets the test split's size instead of 15% of ``per_task`` (see
    :func:`~teacherlm_core.data.tasks.base.split_sizes`); each split draws from its own seed, so
    the train and validation records do not change.
    """
    records: list[dict[str, Any]] = []
    sizes = split_sizes(per_task, test_per_task)
    drawn = None
    if hasattr(family, "generate_splits"):  # knowledge families draw whole splits (test pairs follow train)
        drawn = family.generate_splits(random.Random(f"{seed}/{family.name}"), sizes)
    for split, want in sizes.items():
        rng = random.Random(f"{seed}/{family.name}/{split}")
        pending = list(drawn[split]) if drawn is not None else None
        seen: set[str] = set()
        attempts = 0
        while len(seen) < want and attempts < 50 * want + 100 and (pending is None or pending):
            attempts += 1
            item = pending.pop(0) if pending is not None else family.generate(rng, split)
            key = normalize_text(item.question)
            if key in seen:
                continue
            seen.add(key)
            record = {
                "id": f"{family.name}-{split}-{len(seen):05d}",
                "task": family.name,
                "split": split,
                "question": item.question,
                "choices": list(item.choices),
                "answer": item.answer,
                "fundamentals": item.fundamentals,
                "chain_of_thought": item.chain_of_thought,
                "common_mistakes": item.common_mistakes,
                "teacher": TEACHER,
                "template": item.template,
                "entities": list(item.entities),
            }
            AugmentedSample.model_validate(record)  # a generator bug should fail loudly, here
            records.append(record)
    return records


def generate_builtin(
    tasks: Sequence[str] | None = None,
    per_task: int = 100,
    seed: int = 0,
    progress: Progress | None = None,
    test_per_task: int = 0,
) -> list[dict[str, Any]]:
    """All records of the chosen families, in family order (no dedup, nothing written)."""
    records: list[dict[str, Any]] = []
    for family in get_families(list(tasks) if tasks else None):
        records += generate_task(family, per_task, seed, test_per_task)
        if progress:
            progress(family.name, 1)
    return records


def build_builtin(
    output_dir: str | Path,
    tasks: Sequence[str] | None = None,
    per_task: int = 100,
    seed: int = 0,
    *,
    test_per_task: int = 0,
    formats: Sequence[str] = ("jsonl",),
    near_threshold: float = NEAR_THRESHOLD,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Generate, deduplicate and write the built-in suite; returns the manifest.

    Args:
        output_dir: where the split files, ``dedup.jsonl`` and ``manifest.json`` go (created).
        tasks: family names (default: :data:`~teacherlm_core.data.tasks.DEFAULT_TASKS`, the eight
            paper-style families; the knowledge families and the control are named explicitly).
        per_task: items requested per family, before the 70/15/15 split.
        seed: the random seed; a different seed gives different items from the same pools.
        test_per_task: test items per family instead of 15% of ``per_task`` (0: the 15%); train
            and validation stay as they are, so a larger held-out set costs no training data.
        formats: ``"jsonl"`` and/or ``"parquet"``.
        near_threshold: MinHash Jaccard threshold for near-duplicates (see :mod:`.dedup`).
        progress: optional ``callback(step_name, advance)``, called once per family and once
            for dedup-and-write.
    """
    if per_task < 3:
        from ..errors import ConfigError

        raise ConfigError("--per-task", [f"must be at least 3 (one item per split), got {per_task}"])
    if test_per_task < 0:
        from ..errors import ConfigError

        raise ConfigError("--test-per-task", [f"must be 0 (15% of --per-task) or more, got {test_per_task}"])
    families = get_families(list(tasks) if tasks else None)
    names = [f.name for f in families]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_outputs(out)

    records = generate_builtin(names, per_task, seed, progress, test_per_task)
    result = deduplicate(records, threshold=near_threshold)
    counts = count_records(result.kept)
    requested = {n: split_sizes(per_task, test_per_task) for n in names}
    generated = count_records(records)["tasks"]
    shortfall = {
        n: {
            s: want - generated.get(n, {}).get(s, 0)
            for s, want in requested[n].items()
            if want > generated.get(n, {}).get(s, 0)
        }
        for n in names
    }
    files = write_splits(out, result.kept, formats)
    report = out / DEDUP_REPORT
    files[DEDUP_REPORT] = file_entry(out, report, write_jsonl(report, result.report))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": "builtin",
        "generator": {
            "name": GENERATOR,
            "version": GENERATOR_VERSION,
            "package_version": __version__,
            "families": {f.name: {"version": f.version, "holdout": f.holdout} for f in families},
        },
        "seed": seed,
        "per_task": per_task,
        "test_per_task": test_per_task,
        "tasks": names,
        "requested": requested,
        # a family whose held-out pool has fewer distinct questions than asked for gives fewer
        "shortfall": {n: s for n, s in shortfall.items() if s},
        "splits": list(SPLITS),
        "counts": counts,
        "records": {
            "in": len(records),
            "out": len(result.kept),
            "quarantined": 0,
            "duplicates": len(records) - len(result.kept),
        },
        "dedup": result.counts,
        "files": files,
    }
    write_json(out / MANIFEST, manifest)
    if progress:
        progress("dedup + write", 1)
    return manifest
