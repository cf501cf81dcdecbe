from kfp import dsl
from kfp.dsl import Dataset, Input

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def augment_plan(data: Input[Dataset], num_shards: int) -> list[int]:
    """Check the dataset to augment and return the shard indices to fan out over.

    Args:
        data: The dataset to augment (its train split).
        num_shards: How many shards to split it into.
    """
    from teacherlm_core.stages.augment_plan import augment_plan

    return augment_plan(data.path, num_shards)
