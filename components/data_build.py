from kfp import dsl
from kfp.dsl import Dataset, Output

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def data_build(
    data: Output[Dataset],
    source: str,
    annotated: bool,
    tasks: str,
    per_task: int,
    test_per_task: int,
    data_seed: int,
):
    """Build the built-in annotated task suite (gold fundamentals, chain of thought, common mistakes),
    or check and copy a user's dataset in its place.

    Args:
        data: The dataset: train/validation/test JSONL (held out by template or entity) + manifest.json.
        source: A dataset directory URI with train and test splits to use instead; empty: the built-in suite.
        annotated: With source: every record must carry the three explanations (the teacher's seed data).
        tasks: Comma-separated task families; empty for all.
        per_task: Samples per task family, before the 70/15/15 split.
        test_per_task: Test items per task family instead of 15% of per_task (0: the 15%).
        data_seed: Data seed; the same seed gives byte-identical files.
    """
    from teacherlm_core.stages.data_build import data_build

    manifest = data_build(
        data.path, source=source, annotated=annotated, tasks=tasks, per_task=per_task,
        test_per_task=test_per_task, data_seed=data_seed,
    )  # fmt: skip
    data.metadata.update({k: manifest["records"][k] for k in ("in", "out", "quarantined", "duplicates")})
