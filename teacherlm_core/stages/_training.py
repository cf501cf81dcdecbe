"""What the two training stages share: where a recipe writes, and pipeline parameters as config overrides."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..kfp_support.images import IMAGES
from ..kfp_support.run_id import kfp_run_id

__all__ = ["TRAIN_IMAGE", "launch_overrides", "scratch", "shared"]

TRAIN_IMAGE = IMAGES["train"]  # what a TrainJob's nodes run


def launch_overrides(nnodes: int, nproc_per_node: int, deepspeed: str, seed: int) -> dict[str, Any]:
    """The stage parameters every recipe config takes, as :func:`~teacherlm_core.train.load_config` overrides."""
    return {
        "launch.deepspeed": deepspeed or None,
        "launch.nproc": nproc_per_node,
        "launch.nnodes": nnodes,
        # Checked now, set on each node: a TrainJob's torch runtime gives the nodes PET_MASTER_PORT.
        "launch.master_port": 29500 if nnodes > 1 else None,
        "train.seed": seed,
    }


@contextmanager
def scratch(work_root: str, *parts: str) -> Iterator[str]:
    """Where a recipe writes: under ``work_root/<KFP run id>/`` (kept, so a retry resumes), else a temp dir."""
    from .. import storage

    if work_root:
        yield storage.join(work_root, kfp_run_id() or "local", *parts)
        return
    with tempfile.TemporaryDirectory(prefix="teacherlm-train-") as tmp:
        yield str(Path(tmp, *parts))


def shared(path: Path, work_root: str, launcher: str) -> str:
    """``path`` where the recipe's ranks can read it: as it is for torchrun, on ``work_root`` for a TrainJob."""
    from .. import storage

    if launcher != "trainjob":
        return str(path)
    if not work_root:
        raise ConfigError(
            "work_root", ["a TrainJob needs shared storage (an s3:// prefix) for its data and model"]
        )
    target = storage.join(work_root, kfp_run_id() or "local", "data", path.parent.name, path.name)
    storage.copy(str(path), target)
    return target
