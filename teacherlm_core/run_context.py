"""Where a task runs: its KFP run id, its run root on shared storage, the images of its kind.

What every stage asks of the pipeline run it belongs to, and nothing Kubeflow-specific to
build: on a cluster each task's pod carries the label ``pipeline/runid``, which the compiled
pipelines map into :data:`RUN_ID_ENV` (:mod:`teacherlm_core.kfp_support.placement`), so that it
never becomes a component input (an input would spoil every cache key); KFP's local runner sets
the same variable. Outside a pipeline the run id is empty and the run root is ``local``.
"""

from __future__ import annotations

import os

from . import __version__, storage

__all__ = ["IMAGES", "RUN_ID_ENV", "kfp_run_id", "run_root"]

RUN_ID_ENV = "TEACHERLM_KFP_RUN_ID"

# The container image of each kind of stage; the tag is the package version (as in GCPC's
# ``_image.py``). ``images/`` builds them: core (CPU stages), vllm (generation and evaluation on
# GPUs), train (the training controller and the TrainJob pods it starts).
IMAGES: dict[str, str] = {
    kind: f"ghcr.io/teacherlm/teacherlm-{kind}:{__version__}" for kind in ("core", "train", "vllm")
}


def kfp_run_id() -> str:
    """This task's KFP run id (``""`` outside a pipeline)."""
    return os.environ.get(RUN_ID_ENV, "")


def run_root(work_root: str, *parts: str) -> str:
    """``work_root/<KFP run id>/<parts...>`` (``local`` for the run id outside a pipeline): where
    the tasks of one pipeline run share files on storage every pod reaches (e.g. ``s3://``)."""
    return storage.join(work_root, kfp_run_id() or "local", *parts)
