"""Local launch: run a :class:`~.stage.Plan` on this machine's ranks with ``torchrun``.

One rank without DeepSpeed runs in-process. Anything else runs::

    python -m torch.distributed.run --nproc_per_node N --nnodes M --node_rank R \\
        --master_addr A --master_port P -m teacherlm_core.train.worker PLAN.json

Every node runs the same command with its own ``--node_rank`` (static rendezvous at
``master_addr:master_port``). On a machine without CUDA the ranks use gloo and DeepSpeed's CPU
accelerator (``DS_ACCELERATOR=cpu``); its ``shm_comm`` op is JIT-built once (about a minute on
two cores) and cached in ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``).
Kubernetes launches (TrainJob, PyTorchJob) live in :mod:`.k8s`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import TeacherLMError
from .config import LaunchConfig
from .stage import Plan

__all__ = ["TrainingFailed", "free_port", "run_plan_local", "torchrun_command", "worker_env"]


class TrainingFailed(TeacherLMError):
    """The ranks exited with an error (their log is above the message)."""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_command(launch: LaunchConfig, plan_path: str | Path, *, port: int | None = None) -> list[str]:
    """The ``torchrun`` command line that runs the worker on this node."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={launch.nproc_per_node}",
        f"--nnodes={launch.nnodes}",
        f"--node_rank={launch.node_rank}",
        f"--master_addr={launch.master_addr}",
        f"--master_port={launch.master_port or port or free_port()}",
        "--max_restarts=0",
        "-m",
        "teacherlm_core.train.worker",
        str(plan_path),
    ]


def worker_env(base: dict[str, str] | None = None, nproc_per_node: int = 1) -> dict[str, str]:
    """The ranks' environment: DeepSpeed on CPU when there is no GPU, unbuffered logs.

    On CPU the ``nproc_per_node`` ranks of this node share its threads (:func:`~teacherlm_core.cpus.cpu_budget`,
    ``OMP_NUM_THREADS`` when set): each gets an equal share, never more threads than cores in all
    (torchrun gives each rank 1 only when nothing is set, and each rank all of a set value).
    """
    import torch

    from ..cpus import cpu_budget, share, thread_env

    env = dict(os.environ if base is None else base)
    if not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")
        env |= thread_env(share(cpu_budget(env), nproc_per_node))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "warning")
    return env


def run_plan_local(plan: Plan, launch: LaunchConfig, plan_dir: str | Path) -> None:
    """Run ``plan`` on this node; returns when this node's ranks are done.

    Raises:
        TrainingFailed: the ranks exited non-zero (their output went to this process's stderr).
    """
    if launch.world_size == 1 and all(s.deepspeed is None for s in plan.stages):
        from .worker import run_plan

        run_plan(plan)
        return
    plan_path = Path(plan_dir) / "plan.json"
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(plan.model_dump_json(indent=2))
    cmd = torchrun_command(launch, plan_path)
    proc = subprocess.Popen(cmd, env=worker_env(nproc_per_node=launch.nproc_per_node), start_new_session=True)
    try:
        code = proc.wait()
    except BaseException:  # Ctrl-C or a kill of this process: take the ranks down too
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    if code != 0:
        names = ", ".join(s.name for s in plan.stages if not s.done)
        raise TrainingFailed(
            f"training ({names}) failed on node {launch.node_rank}: torchrun exited with {code}; "
            "the ranks' errors are above"
        )
