"""Teacher stage 1's data: the annotated seed samples plus each kept STaR rationale as one more sample."""

from __future__ import annotations

from pathlib import Path

from ..data.splits import split_file
from ..records import load_samples, write_jsonl
from .config import KEPT

__all__ = ["teacher_data"]


def teacher_data(seed_data: str | Path, star_data: str | Path, output: str | Path) -> int:
    """Write the seed data's train split plus the STaR records to ``output`` (JSONL).

    A STaR record keeps its sample's fields but its chain of thought is the teacher's own kept
    rationale; it gets the id ``<id>-star``. ``star_data`` is a STaR output directory (its
    ``train.jsonl``) or the kept file itself. Returns the number of records written.
    """
    seed = [s.to_record() for s in load_samples(split_file(seed_data, "train"))]
    star = Path(star_data, KEPT) if Path(star_data).is_dir() else Path(star_data)
    extra = [
        r.to_record() | {"id": f"{r.id}-star"} for r in (load_samples(star) if star.stat().st_size else [])
    ]
    return write_jsonl(output, seed + extra)
