from kfp import dsl

from ._image import CORE_IMAGE


@dsl.component(base_image=CORE_IMAGE, install_kfp_package=False)
def train_cleanup() -> list[str]:
    """Delete this run's unfinished TrainJobs: runs after the training tasks, whatever their outcome."""
    from teacherlm_core.stages.train_cleanup import train_cleanup

    return train_cleanup()
