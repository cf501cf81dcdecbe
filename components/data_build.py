from kfp import dsl
from kfp.dsl import Dataset, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def data_build(data: Output[Dataset], tasks: str, per_task: int, data_seed: int):
    """Build the built-in annotated task suite (gold fundamentals, chain of thought, common mistakes).

    Args:
        data: The dataset: train/validation/test JSONL (held out by template or entity) + manifest.json.
        tasks: Comma-separated task families; empty for all.
        per_task: Samples per task family, before the 70/15/15 split.
        data_seed: Data seed; the same seed gives byte-identical files.
    """
    from teacherlm_core.stages.data_build import data_build

    manifest = data_build(data.path, tasks=tasks, per_task=per_task, data_seed=data_seed)
    data.metadata.update({k: manifest["records"][k] for k in ("in", "out", "quarantined", "duplicates")})
