"""Teacher data: the built-in annotated suite, real-dataset import, dedup and contamination checks.

* :func:`build_builtin` writes the procedural suite (``teacherlm data build``).
* :func:`import_dataset` maps a real dataset's columns onto the data contract
  (``teacherlm data import``), with mappings for ECQA, StrategyQA, CREAK and MMLU shipped in
  ``mappings/``.
* :func:`split_file` finds a split's file in a dataset directory.
* :func:`deduplicate` removes exact / normalised / cross-split near duplicates (in memory, for
  small lists; an import streams through :func:`.dedup.dedup_stream` in bounded memory).

Every build writes a ``manifest.json`` (counts, sha256 of each file, schema version,
provenance); see :mod:`teacherlm_core.data.manifest`.
"""

from __future__ import annotations

from .builtin import build_builtin, generate_builtin
from .dedup import DedupResult, deduplicate, normalize_text
from .importer import import_dataset
from .manifest import read_manifest
from .mapping import BUILTIN_MAPPINGS, ImportMapping, load_mapping
from .splits import split_file
from .tasks import FAMILIES

__all__ = [
    "BUILTIN_MAPPINGS",
    "FAMILIES",
    "DedupResult",
    "ImportMapping",
    "build_builtin",
    "deduplicate",
    "generate_builtin",
    "import_dataset",
    "load_mapping",
    "normalize_text",
    "read_manifest",
    "split_file",
]
