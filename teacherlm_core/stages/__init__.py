"""One module per pipeline step: what that step does, called by its component and its CLI subcommand alike.

| CLI (``teacherlm ...``) | stage function | component | pipeline task |
|---|---|---|---|
| ``data build`` | :func:`.data_build.data_build` | ``components.data_build`` | ``data build`` |
| ``data star`` | :func:`.data_star.data_star` | ``components.data_star`` | ``data star`` |
| ``train teacher`` | :func:`.train_teacher.train_teacher` | ``components.train_teacher`` | ``train teacher`` |
| ``augment plan`` | :func:`.augment_plan.augment_plan` | ``components.augment_plan`` | ``augment plan`` |
| ``augment shard`` | :func:`.augment_shard.augment_shard` | ``components.augment_shard`` | ``augment shard`` |
| ``augment merge`` | :func:`.augment_merge.augment_merge` | ``components.augment_merge`` | ``augment merge`` |
| ``train variants`` | :func:`.train_variants.train_variants` | ``components.train_variants`` | ``train variants`` |
| ``train student`` | :func:`.train_student.train_student` | ``components.train_student`` | ``train student`` |
| ``evaluate`` | :func:`.evaluate.evaluate` | ``components.evaluate`` | ``evaluate`` |
| ``compare`` | :func:`.compare.compare` | ``components.compare`` | ``compare`` |
| ``train cleanup`` | :func:`.train_cleanup.train_cleanup` | ``components.train_cleanup`` | ``clean up training`` |

A stage takes local paths (a component's ``artifact.path``) or URIs and the pipeline's parameters
under the pipeline's names, calls the domain packages (``data``, ``star``, ``augment``, ``train``,
``evaluate``), records one MLflow run nested under the pipeline run's parent (:mod:`._run`), and
returns a small JSON-able summary. Heavy imports happen inside the functions, so a component's
pod imports only what its stage needs.
"""

STAGES = (
    "data_build",
    "data_star",
    "train_teacher",
    "augment_plan",
    "augment_shard",
    "augment_merge",
    "train_variants",
    "train_student",
    "evaluate",
    "compare",
    "train_cleanup",
)

__all__ = ["STAGES"]
