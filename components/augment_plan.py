from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def augment_plan(data: Input[Dataset], split: Output[Dataset], num_shards: int, work_root: str) -> list[int]:
    """Split the dataset to augment by shard (one streaming pass) and return the shard indices to fan out over.

    Args:
        data: The dataset to augment (its train split).
        split: split.json + one input file per shard; with work_root only split.json, naming where the files are.
        num_shards: How many shards to split it into.
        work_root: Shared storage (s3:// prefix) the shard files go to, so each shard task reads only its own; empty: into split.
    """
    from teacherlm_core.stages.augment_plan import augment_plan

    return augment_plan(data.path, num_shards, split=split.path, work_root=work_root)
