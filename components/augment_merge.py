from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def augment_merge(
    shards: Input[list[Dataset]],
    augmented: Output[Dataset],
    summary: Output[Markdown],
    card: Output[Markdown],
    price_per_accelerator_hour: float,
):
    """Merge the finished shards into the augmented dataset, its manifest and dataset card.

    Args:
        shards: Every shard's output (one plan).
        augmented: train.jsonl, data/*.parquet, quarantine/, manifest.json, README.md, cost.json.
        summary: Sample explanations per task (does the chain of thought reach the gold answer?) and quarantine reasons with counts.
        card: The dataset card (README.md), with the cost per 1,000 samples.
        price_per_accelerator_hour: Price of one accelerator-hour, for the card's cost per 1,000 samples.
    """
    from teacherlm_core.stages.augment_merge import augment_merge

    manifest = augment_merge(
        augmented.path, [s.path for s in shards], price_per_accelerator_hour=price_per_accelerator_hour,
        summary=summary.path, card=card.path,
    )  # fmt: skip
    consistency = manifest["chain_of_thought_consistency"]["rate"]
    augmented.metadata.update(manifest["counts"] | {"chain_of_thought_consistency": consistency})
