"""``train cleanup``: delete the unfinished TrainJobs of this pipeline run (CLI ``teacherlm train cleanup``, component ``train_cleanup``).

The pipelines run it after their training tasks whatever the outcome (``ignore_upstream_failure``,
KFP's form of an exit handler that keeps the pipelines' outputs): after a success it finds every
TrainJob complete and deletes nothing; after a failure it deletes what a follower killed outright
(SIGKILL, a lost node) left running, so no GPU stays held by a run that is over.
"""

from __future__ import annotations

import os

from ..run_context import kfp_run_id

__all__ = ["train_cleanup"]


def train_cleanup() -> list[str]:
    """Delete this KFP run's TrainJobs that have not finished (label ``teacherlm.io/kfp-run``); returns their names.

    Outside Kubernetes (KFP's local runner, a laptop) or outside a run there is nothing to do.
    """
    run_id = kfp_run_id()
    if not run_id or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return []
    from ..train.k8s import RUN_LABEL, delete_unfinished
    from ..train.runner import pod_namespace

    return delete_unfinished(f"{RUN_LABEL}={run_id[:63]}", pod_namespace())
