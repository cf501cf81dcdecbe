"""The KFP run id a task runs under.

On a cluster each task's pod carries the label ``pipeline/runid``; the pipelines map it into the
environment variable :data:`RUN_ID_ENV` (:mod:`.placement`), so that it never becomes a
component input (an input would spoil every cache key). The local runner sets the same variable.
"""

from __future__ import annotations

import os

__all__ = ["RUN_ID_ENV", "kfp_run_id"]

RUN_ID_ENV = "TEACHERLM_KFP_RUN_ID"


def kfp_run_id() -> str:
    """This task's KFP run id (``""`` outside a pipeline)."""
    return os.environ.get(RUN_ID_ENV, "")
