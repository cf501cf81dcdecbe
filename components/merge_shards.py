from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def merge_shards(shards: Input[list[Dataset]], augmented: Output[Dataset]):
    """Merge the finished shards into the augmented dataset, its manifest and dataset card.

    Args:
        shards: Every shard's output (one plan).
        augmented: train.jsonl, data/*.parquet, quarantine/, manifest.json, README.md.
    """
    from teacherlm_core import pipeline_ops

    counts = pipeline_ops.merge_shards([s.path for s in shards], augmented.path)
    augmented.metadata.update(counts)
