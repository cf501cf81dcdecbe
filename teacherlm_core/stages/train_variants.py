"""``train variants``: the students to train (CLI ``teacherlm train variants``, component ``train_variants``)."""

from __future__ import annotations

from ..schema import FIELDS
from .params import P

__all__ = ["VARIANTS", "train_variants"]

# Which explanation fields each student trains on. "plain" is the question and its answer only;
# the single-field variants are the paper's per-field ablation.
VARIANTS: dict[str, tuple[str, ...]] = {"plain": (), "augmented": FIELDS, **{f: (f,) for f in FIELDS}}


def train_variants(ablation: bool = P.ablation) -> list[str]:
    """``["plain", "augmented"]``, plus one variant per explanation field when ``ablation``."""
    return list(VARIANTS) if ablation else ["plain", "augmented"]
