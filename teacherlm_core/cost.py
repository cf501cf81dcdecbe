"""What a stage cost: generated or trained tokens, accelerator-seconds and wall time.

Each finished piece of work is counted once, from the record it left when it finished, so a
resumed run does not count again what an earlier attempt already did:

* augmentation: every part marker of every shard (``shards/*/part-*.json``, gathered in the
  shard's ``_SUCCESS``) records its generated tokens and seconds; a part skipped on a re-run keeps
  its first record.
* training: ``metrics.jsonl`` has one line per logged step with its tokens and tokens/s; a resumed
  run truncates it to the checkpoint it resumes from, so each step appears once.

Accelerator-seconds are compute seconds times the accelerators the work held: the shard's
``tensor_parallel_size`` (GPUs per vLLM engine) or the training job's ranks (``nnodes x
nproc_per_node``). On a machine without GPU the process counts as one accelerator, so a CPU run
still shows what the same work costs per accelerator-hour.

The cost per 1,000 samples is ``accelerator_seconds / 3600 * price_per_accelerator_hour /
samples * 1000`` (price in the currency of the price, e.g. USD per GPU-hour).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel

from . import storage

__all__ = ["COST_FILE", "Cost", "augment_cost", "cost_markdown", "read_cost", "training_cost", "write_cost"]

COST_FILE = "cost.json"  # beside a dataset or a model: what producing it cost


class Cost(BaseModel):
    """Work of one stage. ``samples``: records it processed (augmented inputs, training records)."""

    tokens: int = 0
    accelerator_seconds: float = 0.0
    wall_seconds: float = 0.0
    samples: int = 0

    def per_1000(self, price_per_accelerator_hour: float) -> float | None:
        """Cost per 1,000 samples at ``price_per_accelerator_hour``; ``None`` without samples."""
        if not self.samples:
            return None
        return self.accelerator_seconds / 3600 * price_per_accelerator_hour / self.samples * 1000

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) + getattr(other, k) for k in Cost.model_fields})


def augment_cost(shard_roots: Iterable[str], accelerators: int, wall_seconds: float = 0.0) -> Cost:
    """The cost of the finished shards under each of ``shard_roots`` (``<root>/shards/<shard>/_SUCCESS``).

    Args:
        shard_roots: Augmentation outputs (local dirs or ``s3://`` prefixes), one per shard task or one for all.
        accelerators: Accelerators per shard (the engine's tensor-parallel size; 1 on CPU).
        wall_seconds: The merge's own wall time, added to the shards' generation time.
    """
    total = Cost(wall_seconds=wall_seconds)
    for root in shard_roots:
        for uri in storage.list_files(storage.join(root, "shards")):
            if uri.endswith("/_SUCCESS"):
                done = json.loads(storage.read_text(uri))
                seconds = sum(float(p.get("seconds", 0.0)) for p in done.get("parts", []))
                total += Cost(
                    tokens=int(done.get("tokens", 0)),
                    accelerator_seconds=seconds * accelerators,
                    wall_seconds=seconds,
                    samples=int(done.get("in", 0)),
                )
    return total


def training_cost(model_dir: str | Path, accelerators: int, samples: int, wall_seconds: float) -> Cost:
    """The cost of the steps in ``model_dir/metrics.jsonl`` (each line: ``tokens``, ``tokens_per_s``)."""
    path = Path(model_dir, "metrics.jsonl")
    tokens, seconds = 0, 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                tokens += int(row.get("tokens") or 0)
                if row.get("tokens_per_s"):
                    seconds += (row.get("tokens") or 0) / row["tokens_per_s"]
    return Cost(
        tokens=tokens, accelerator_seconds=seconds * accelerators, wall_seconds=wall_seconds, samples=samples
    )


def write_cost(directory: str | Path, costs: Mapping[str, Cost]) -> None:
    """Write ``{stage: cost}`` to ``directory/cost.json``."""
    storage.write_text(
        storage.join(str(directory), COST_FILE),
        json.dumps({k: v.model_dump() for k, v in costs.items()}, indent=1, sort_keys=True) + "\n",
    )


def read_cost(directory: str | Path) -> dict[str, Cost]:
    """``{stage: cost}`` from ``directory/cost.json`` (empty when there is none)."""
    uri = storage.join(str(directory), COST_FILE)
    if not storage.exists(uri):
        return {}
    return {k: Cost.model_validate(v) for k, v in json.loads(storage.read_text(uri)).items()}


def cost_markdown(costs: Mapping[str, Cost], price_per_accelerator_hour: float) -> str:
    """A Markdown table: one row per stage with tokens, accelerator-seconds, wall time and cost per 1,000 samples."""
    lines = [
        f"| stage | samples | tokens | accelerator-s | wall s | cost per 1,000 samples at {price_per_accelerator_hour:g}/accelerator-hour |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, c in costs.items():
        per = c.per_1000(price_per_accelerator_hour)
        lines.append(
            f"| {name} | {c.samples} | {c.tokens} | {c.accelerator_seconds:.1f} | {c.wall_seconds:.1f} | "
            + (f"{per:.4f}" if per is not None else "-")
            + " |"
        )
    return "\n".join(lines)
