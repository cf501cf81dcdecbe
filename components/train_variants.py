from kfp import dsl

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def train_variants(ablation: bool) -> list[str]:
    """The students to train: plain and augmented, plus one per explanation field with ablation.

    Args:
        ablation: Also train one student per field (fundamentals, chain_of_thought, common_mistakes).
    """
    from teacherlm_core.stages.train_variants import train_variants

    return train_variants(ablation)
