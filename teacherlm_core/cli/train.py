"""``teacherlm train``: the student and teacher recipes, and cluster jobs that run them.

    teacherlm train student --model runs/tiny --data runs/data/train.jsonl --output runs/student \\
        --nproc-per-node 2 --deepspeed zero2 --max-steps 40
    teacherlm train teacher --config teacher_tiny --output runs/teacher
    teacherlm train submit --name teacher-r1 --image IMAGE --nodes 4 --gpus 8 -- \\
        teacherlm train teacher --config s3://teacherlm/configs/teacher.yaml
    teacherlm train cleanup --run-id RUN_ID -n teacherlm     # what a stopped run left running

Flags override the YAML config (``--config``: a file, an ``s3://`` URI or a shipped name such as
``student_tiny``). The launch flags default to the ``PET_*`` variables that Kubeflow Trainer and the
Training Operator set in each pod, so the same command runs on every node of a cluster job.
Re-running a command resumes from its last checkpoint; a finished stage is skipped.
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["app"]

app = typer.Typer(
    help="Train students (multi-task) and teachers (multi-stage) with HF Trainer + DeepSpeed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

NProcPerNode = Annotated[
    str | None,
    typer.Option(
        "--nproc-per-node",
        "--nproc",
        envvar="PET_NPROC_PER_NODE",
        metavar="N|auto",
        help="Ranks on each node (torchrun's --nproc_per_node; auto: one a GPU).",
    ),
]
NNodes = Annotated[int | None, typer.Option("--nnodes", envvar="PET_NNODES", min=1, help="Nodes in total.")]
NodeRank = Annotated[
    int | None, typer.Option("--node-rank", envvar="PET_NODE_RANK", min=0, help="This node's rank (0-based).")
]
MasterAddr = Annotated[
    str | None,
    typer.Option("--master-addr", envvar=["PET_MASTER_ADDR", "MASTER_ADDR"], help="Address of node 0."),
]
MasterPort = Annotated[
    int | None,
    typer.Option(
        "--master-port", envvar=["PET_MASTER_PORT", "MASTER_PORT"], help="Rendezvous port on node 0."
    ),
]
DeepSpeed = Annotated[
    str | None,
    typer.Option(
        "--deepspeed", metavar="zero2|zero3|none|FILE", help="DeepSpeed config (default: the config's)."
    ),
]
Track = Annotated[bool | None, typer.Option("--track/--no-track", help="Log to MLflow (default: on).")]
Seed = Annotated[
    int | None,
    typer.Option(
        "--seed", help="Seed of data order, mixture sampling and initialisation (the config's train.seed)."
    ),
]


def _nproc_per_node(value: str | None) -> int | None:
    if value is None:
        return None
    if value == "auto":
        import torch

        return max(1, torch.cuda.device_count())
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(
            f"{value!r} is not a positive number or 'auto'", param_hint="--nproc-per-node"
        )
    return int(value)


def _launched(cfg, nproc_per_node, nnodes, node_rank, master_addr, master_port, deepspeed, seed):
    """``cfg`` with the launch flags given (:func:`~teacherlm_core.train.with_launch`)."""
    from ..train import with_launch

    return with_launch(
        cfg,
        nproc_per_node=_nproc_per_node(nproc_per_node),
        nnodes=nnodes,
        node_rank=node_rank,
        master_addr=master_addr,
        master_port=master_port,
        deepspeed=deepspeed,
        seed=seed,
    )


def _summary(results, title: str) -> None:
    from rich.table import Table

    from .progress import console

    table = Table(title=title, title_justify="left")
    for col in ("stage", "steps", "final loss", "real tokens", "output"):
        numeric = col in ("steps", "final loss", "real tokens")
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for r in results:
        loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
        note = " (already trained)" if r.skipped else ""
        table.add_row(r.stage + note, str(r.global_step), loss, f"{100 * r.real_share:.1f}%", r.output)
    console.print(table)


@app.command("student")
def student(
    model: Annotated[str | None, typer.Option("--model", metavar="PATH_OR_ID", help="Start model.")] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-i", metavar="FILE_OR_URI", help="Augmented JSONL/Parquet data.")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="DIR_OR_URI", help="Output dir or s3:// prefix.")
    ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Optimizer steps.")] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", min=0.0, help="Epochs (without --max-steps).")
    ] = None,
    nproc_per_node: NProcPerNode = None,
    deepspeed: DeepSpeed = None,
    seed: Seed = None,
    config: Annotated[
        str | None,
        typer.Option("--config", metavar="FILE", help="YAML config (file, s3:// or shipped name)."),
    ] = None,
    nnodes: NNodes = None,
    node_rank: NodeRank = None,
    master_addr: MasterAddr = None,
    master_port: MasterPort = None,
    track: Track = None,
) -> None:
    """Train a multi-task student: plain question + answer, and base text + suffix + each field's text."""
    from ..train import load_config, train_student
    from ..train.outputs import require_key

    require_key()  # a TrainJob node without the checkpoint key stops here, before it reads its config

    overrides = {
        "model": model,
        "data": data,
        "output": output,
        "train.max_steps": max_steps,
        "train.epochs": epochs,
        "track": track,
    }
    cfg = load_config("student", config, overrides)
    cfg = _launched(cfg, nproc_per_node, nnodes, node_rank, master_addr, master_port, deepspeed, seed)
    result = train_student(cfg)
    _summary([result], f"student {cfg.output}")


@app.command("teacher")
def teacher(
    config: Annotated[str, typer.Option("--config", metavar="FILE", help="YAML config with the stages.")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="DIR_OR_URI", help="Output root (default: the config's)."),
    ] = None,
    nproc_per_node: NProcPerNode = None,
    deepspeed: DeepSpeed = None,
    nnodes: NNodes = None,
    node_rank: NodeRank = None,
    master_addr: MasterAddr = None,
    master_port: MasterPort = None,
    seed: Seed = None,
    track: Track = None,
) -> None:
    """Train a teacher in stages: multi-task, personalisation, optional single-field specialisation."""
    from ..train import load_config, train_teacher
    from ..train.outputs import require_key

    require_key()  # a TrainJob node without the checkpoint key stops here, before it reads its config

    cfg = load_config("teacher", config, {"output": output, "track": track})
    cfg = _launched(cfg, nproc_per_node, nnodes, node_rank, master_addr, master_port, deepspeed, seed)
    results = train_teacher(cfg)
    _summary(results, f"teacher {cfg.output}")


@app.command("submit", context_settings={"allow_interspersed_args": False})
def submit(
    command: Annotated[list[str], typer.Argument(help="The command every node runs (after --).")],
    name: Annotated[str, typer.Option("--name", help="Job name (a DNS label).")],
    image: Annotated[str, typer.Option("--image", help="Container image with teacherlm installed.")],
    nodes: Annotated[int, typer.Option("--nodes", min=1)] = 1,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="GPUs per node (0: CPU).")] = 1,
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
    env: Annotated[
        list[str] | None, typer.Option("--env", metavar="NAME=VALUE", help="Plain env (repeat).")
    ] = None,
    secret_env: Annotated[
        list[str] | None,
        typer.Option("--secret-env", metavar="NAME=SECRET:KEY", help="Env from a Secret key (repeat)."),
    ] = None,
    node_selector: Annotated[
        list[str] | None,
        typer.Option("--node-selector", metavar="KEY=VALUE", help="GPU pool label (repeat)."),
    ] = None,
    queue: Annotated[
        str | None, typer.Option("--queue", help="Kueue LocalQueue (label kueue.x-k8s.io/queue-name).")
    ] = None,
    priority_class: Annotated[
        str | None,
        typer.Option("--priority-class", help="Kueue WorkloadPriorityClass (needs --queue)."),
    ] = None,
    pytorchjob: Annotated[
        bool, typer.Option("--pytorchjob", help="A Training Operator v1 PyTorchJob.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the manifest; submit nothing.")] = False,
    timeout: Annotated[
        int,
        typer.Option(
            "--timeout",
            min=1,
            help="The job's budget in seconds (activeDeadlineSeconds; queue time not counted).",
        ),
    ] = 86400,
    queue_timeout: Annotated[
        float | None,
        typer.Option(
            "--queue-timeout", min=1, help="Give up (and delete the job) after this many seconds queued."
        ),
    ] = None,
) -> None:
    """Run a command on N nodes as a Kubeflow Trainer TrainJob (or a PyTorchJob) and follow it to the end."""
    import yaml
    from pydantic import ValidationError

    from ..errors import ConfigError
    from ..train.k8s import (
        ClusterJob,
        SecretEnv,
        check_server,
        kueue_labels,
        render_pytorchjob,
        render_trainjob,
        run_job,
    )

    def pairs(items: list[str] | None, flag: str) -> dict[str, str]:
        out = {}
        for item in items or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(flag, [f"{item!r} is not KEY=VALUE"])
            out[key] = value
        return out

    secrets = []
    for key, ref in pairs(secret_env, "--secret-env").items():
        secret, sep, skey = ref.partition(":")
        if not sep:
            raise ConfigError("--secret-env", [f"{key}={ref}: expected NAME=SECRET:KEY"])
        secrets.append(SecretEnv(name=key, secret=secret, key=skey))
    if priority_class and not queue:
        raise ConfigError("--priority-class", ["Kueue reads it only with a queue: add --queue"])
    try:
        job = ClusterJob(
            name=name,
            namespace=namespace,
            image=image,
            command=command,
            num_nodes=nodes,
            gpus_per_node=gpus,
            env=pairs(env, "--env"),
            secret_env=secrets,
            node_selector=pairs(node_selector, "--node-selector"),
            labels=kueue_labels(queue or "", priority_class or ""),
            active_deadline_seconds=timeout,
        )
    except ValidationError as exc:
        raise ConfigError(
            "submit", [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        ) from None
    body = render_pytorchjob(job) if pytorchjob else render_trainjob(job)
    if dry_run:
        typer.echo(yaml.safe_dump(body, sort_keys=False))
        return
    # The job's own deadline ends it; the follower waits a little longer to report how it ended.
    check_server(queue=bool(queue))  # one line on a cluster without the APIs the job needs
    outcome = run_job(body, timeout_s=timeout + 600, echo=typer.echo, queue_timeout_s=queue_timeout)
    typer.echo(f"{outcome.kind} {outcome.name}: {outcome.state} after {outcome.seconds:.0f}s")


@app.command("cleanup")
def cleanup(
    run_id: Annotated[str, typer.Option("--run-id", help="The KFP run whose unfinished TrainJobs go.")],
    namespace: Annotated[str, typer.Option("--namespace", "-n")] = "default",
) -> None:
    """Delete the unfinished TrainJobs of a stopped or failed pipeline run (label teacherlm.io/kfp-run)."""
    from ..train.k8s import RUN_LABEL, delete_unfinished

    deleted = delete_unfinished(f"{RUN_LABEL}={run_id[:63]}", namespace, echo=typer.echo)
    typer.echo(f"{len(deleted)} unfinished TrainJob(s) of run {run_id} deleted")


@app.command("variants")
def variants(
    ablation: Annotated[
        bool, typer.Option("--ablation", help="Also one student per explanation field.")
    ] = False,
) -> None:
    """The student variants a comparison trains (a pipeline's 'train variants' task), with their fields."""
    from ..stages.train_variants import VARIANTS, train_variants

    for name in train_variants(ablation):
        typer.echo(f"{name}: {', '.join(VARIANTS[name]) or 'question and answer only'}")
