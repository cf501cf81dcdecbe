from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def augment_merge(shards: Input[list[Dataset]], augmented: Output[Dataset]):
    """Merge the finished shards into the augmented dataset, its manifest and dataset card.

    Args:
        shards: Every shard's output (one plan).
        augmented: train.jsonl, data/*.parquet, quarantine/, manifest.json, README.md.
    """
    from teacherlm_core.stages.augment_merge import augment_merge

    manifest = augment_merge(augmented.path, [s.path for s in shards])
    consistency = manifest["chain_of_thought_consistency"]["rate"]
    augmented.metadata.update(manifest["counts"] | {"chain_of_thought_consistency": consistency})
