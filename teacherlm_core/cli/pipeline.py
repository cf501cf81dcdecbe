"""``teacherlm pipeline``: compile the KFP pipelines, run them locally, publish and submit them."""

from __future__ import annotations

from pathlib import Path

import typer

from .progress import console

__all__ = ["app"]

app = typer.Typer(
    help="Kubeflow Pipelines: compile the specs, run them locally, publish them as versions, submit runs.",
    no_args_is_help=True,
)

NAMES_HELP = "teacher, augment, student or end_to_end."
PARAM_HELP = "A pipeline parameter as KEY=VALUE (repeatable); typed by the pipeline's spec."
SPECS_HELP = (
    "Directory of compiled specs (<name>/<name>.yaml); default: the specs shipped in the pipelines package."
)


@app.command("compile")
def compile_(
    output: Path = typer.Option(
        None, "--output", "-o", help="Write <name>/<name>.yaml here (default: beside each source)."
    ),
    gpu_pool: str = typer.Option(None, help="Node label KEY=VALUE of the GPU pool."),
    cpu_pool: str = typer.Option(None, help="Node label KEY=VALUE of the CPU pool ('' for any node)."),
    accelerator: str = typer.Option(None, help="Extended resource a GPU stage asks for."),
    parallelism: int = typer.Option(
        None, help="Augmentation shards and students running at once (default: 4; with --queue: no cap)."
    ),
    retries: int = typer.Option(None, help="Retries of a transient (GPU, training) stage."),
    queue: str = typer.Option(
        None, help="Kueue LocalQueue: GPU pods and TrainJobs carry kueue.x-k8s.io/queue-name."
    ),
    priority_class: str = typer.Option(
        None, help="Kueue WorkloadPriorityClass of the same (kueue.x-k8s.io/priority-class); needs --queue."
    ),
    gpu_timeout: int = typer.Option(
        None, help="Seconds a GPU task's pod may run (its activeDeadlineSeconds; default 3 days)."
    ),
    metrics_port: int = typer.Option(
        None,
        help="GPU tasks serve Prometheus metrics on this port (manifests/components/monitoring scrapes it).",
    ),
    pushgateway: str = typer.Option(
        None, help="Prometheus Pushgateway URL shards push their final metrics to."
    ),
    queue_timeout: int = typer.Option(
        None, help="Seconds a training task waits for its queued TrainJob to be admitted (default: no limit)."
    ),
) -> None:
    """Compile all four pipelines. Node pools, accelerator, parallelism, retries and the Kueue queue are
    fixed at compile time (KFP takes them only as constants); the committed specs use the defaults."""
    from teacherlm_pipelines.compile import compile_pipelines

    settings = {
        "gpu_pool": gpu_pool,
        "cpu_pool": cpu_pool,
        "accelerator": accelerator,
        "parallelism": parallelism,
        "retries": retries,
        "queue": queue,
        "priority_class": priority_class,
        "queue_timeout_s": queue_timeout,
        "gpu_timeout_s": gpu_timeout,
        "metrics_port": metrics_port,
        "pushgateway": pushgateway,
    }
    for path in compile_pipelines(output, settings={k: v for k, v in settings.items() if v is not None}):
        console.print(f"[green]compiled[/] {path}")


@app.command("run")
def run(
    name: str = typer.Argument(..., help=NAMES_HELP),
    local: bool = typer.Option(
        False, "--local", help="Run with KFP's local runner (required: use submit for a cluster)."
    ),
    param: list[str] = typer.Option([], "--param", "-p", help=PARAM_HELP),
    workdir: Path = typer.Option(
        Path("teacherlm-work"),
        envvar="TEACHERLM_WORKDIR",
        help="Outputs go under WORKDIR/kfp/, logs under WORKDIR/logs/.",
    ),
    specs: Path = typer.Option(None, help=SPECS_HELP),
    cache: bool = typer.Option(False, help="Reuse outputs of identical earlier local tasks."),
    verbose_log: bool = typer.Option(
        False, "--show-log", help="Show the runner's full log instead of task status lines."
    ),
) -> None:
    """Run a compiled pipeline on this machine with KFP's local runner (tiny models, CPU)."""
    from ..kfp_support.local import run_local
    from ..kfp_support.specs import parse_param_args

    if not local:
        raise typer.BadParameter(
            "only --local runs here; start a cluster run with `teacherlm pipeline submit`"
        )
    result = run_local(
        name, parse_param_args(param), workdir=workdir, specs=specs, cache=cache, quiet=not verbose_log
    )
    console.print(
        f"[green]pipeline {name} finished[/] in {result['seconds']:.0f} s: {result['run_dir']}",
        soft_wrap=True,
    )
    for key, value in result["outputs"].items():
        console.print(f"  {key}: {getattr(value, 'path', value)}", soft_wrap=True)
    console.print(f"MLflow parent run: {result['mlflow_run_id']}\nlog: {result['log']}", soft_wrap=True)


@app.command("publish")
def publish(
    host: str = typer.Option(
        ..., envvar="KF_PIPELINES_ENDPOINT", help="KFP API server, e.g. http://ml-pipeline.kubeflow:8888."
    ),
    name: list[str] = typer.Option(
        [], "--name", help="Only these pipelines (repeatable); default: all four."
    ),
    specs: Path = typer.Option(None, help=SPECS_HELP),
    namespace: str = typer.Option(None, help="Namespace of the pipelines (multi-user Kubeflow)."),
) -> None:
    """Upload each compiled pipeline as version <package version>. An existing version holding the same spec
    (content hash) is left as it is; one holding another spec is refused: bump the version when a spec changes."""
    from ..kfp_support.client import publish as do_publish
    from ..kfp_support.specs import NAMES

    for row in do_publish(host, tuple(name) or NAMES, specs=specs, namespace=namespace):
        console.print(
            f"{row['pipeline']} {row['version']}: [bold]{row['status']}[/] (version id {row['version_id']})"
        )


@app.command("submit")
def submit(
    name: str = typer.Argument(..., help=NAMES_HELP),
    host: str = typer.Option(..., envvar="KF_PIPELINES_ENDPOINT", help="KFP API server URL."),
    experiment: str = typer.Option(
        "teacherlm", help="Experiment to file the run under (created if missing)."
    ),
    param: list[str] = typer.Option([], "--param", "-p", help=PARAM_HELP),
    run_name: str = typer.Option(None, help="Run name (default: pipeline, version and time)."),
    specs: Path = typer.Option(None, help=SPECS_HELP),
    namespace: str = typer.Option(None, help="Namespace (multi-user Kubeflow)."),
    service_account: str = typer.Option(
        "teacherlm-pipeline-runner",
        help="Service account of the run's pods (manifests/base/rbac.yaml: may create TrainJobs, reads no "
        "Secret but KFP's artifact store); '' for the server's default (default-editor on multi-user Kubeflow).",
    ),
) -> None:
    """Start a run: the published version of this package if there is one, else the local compiled spec."""
    from ..kfp_support.client import submit as do_submit
    from ..kfp_support.specs import parse_param_args

    result = do_submit(
        name,
        host,
        parse_param_args(param),
        experiment=experiment,
        run_name=run_name,
        specs=specs,
        namespace=namespace,
        service_account=service_account or None,
    )
    console.print(f"[green]submitted[/] {name} ({result['source']}): run {result['run_id']}")
