from kfp import dsl
from kfp.dsl import Dataset, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def build_data(data: Output[Dataset], tasks: str, per_task: int, seed: int):
    """Build the built-in annotated task suite (gold fundamentals, chain of thought, common mistakes).

    Args:
        data: The dataset: train/validation/test JSONL (held out by template or entity) + manifest.json.
        tasks: Comma-separated task families; empty for all.
        per_task: Samples per task family, before the 70/15/15 split.
        seed: Data seed; the same seed gives byte-identical files.
    """
    from teacherlm_core import pipeline_ops

    counts = pipeline_ops.build_data(data.path, tasks=tasks, per_task=per_task, seed=seed)
    data.metadata.update(counts)
