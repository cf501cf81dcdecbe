"""The pipelines with the kfp SDK: compile, publish (as versions) and submit; typed parameters.

    teacherlm pipeline compile                       # pipelines/<name>/<name>.yaml, beside each source
    teacherlm pipeline run end_to_end --local --param per_task=12   # see pipeline_local
    teacherlm pipeline publish --host http://ml-pipeline.kubeflow.svc.cluster.local:8888
    teacherlm pipeline submit end_to_end --host URL --experiment demo --param num_shards=16

The pipeline version is the package version: ``publish`` uploads each compiled spec as version
``teacherlm_core.__version__`` of its pipeline (creating the pipeline first), and leaves an
existing version as it is. Compiling needs the sources (a checkout: ``pipelines/`` and
``components/``); running, publishing and submitting need only the compiled specs, found under
``--specs DIR``, ``$TEACHERLM_PIPELINES_DIR``, ``./pipelines`` (the core image's
``/opt/teacherlm``), or the checkout this package was installed from.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConfigError, TeacherLMError

__all__ = [
    "NAMES",
    "coerce_params",
    "compile_pipelines",
    "find_spec",
    "load_spec",
    "publish",
    "source_root",
    "submit",
]

log = logging.getLogger(__name__)

NAMES = ("teacher", "augment", "student", "end_to_end")
SPECS_ENV = "TEACHERLM_PIPELINES_DIR"
_CHECKOUT = Path(__file__).resolve().parent.parent  # the repository root of an editable install


def _check_name(name: str) -> str:
    if name not in NAMES:
        raise ConfigError("pipeline", [f"{name!r}: choose one of {', '.join(NAMES)}"])
    return name


# -- finding sources and specs -------------------------------------------------------------------
def source_root() -> Path:
    """The directory holding ``pipelines/`` and ``components/`` (the working dir or the checkout)."""
    for root in (Path.cwd(), _CHECKOUT):
        if (root / "pipelines" / "end_to_end" / "pipeline.py").is_file() and (root / "components").is_dir():
            return root
    raise TeacherLMError(
        "pipeline sources not found: run from a teacherlm checkout (pipelines/ and components/), "
        "or use the compiled specs (run, publish and submit need only those)"
    )


def spec_dirs(specs: str | Path | None = None) -> list[Path]:
    """Where compiled specs are looked for, first match wins."""
    dirs = [Path(specs)] if specs else []
    if os.environ.get(SPECS_ENV):
        dirs.append(Path(os.environ[SPECS_ENV]))
    return [*dirs, Path.cwd() / "pipelines", _CHECKOUT / "pipelines"]


def find_spec(name: str, specs: str | Path | None = None) -> Path:
    """The compiled spec ``<dir>/<name>/<name>.yaml`` of pipeline ``name``."""
    _check_name(name)
    for d in spec_dirs(specs):
        if (d / name / f"{name}.yaml").is_file():
            return d / name / f"{name}.yaml"
    tried = ", ".join(str(d) for d in spec_dirs(specs))
    raise TeacherLMError(
        f"no compiled spec of pipeline {name!r} under {tried}; run `teacherlm pipeline compile`"
    )


def load_spec(path: str | Path) -> dict[str, Any]:
    """The pipeline spec (first YAML document) of a compiled file."""
    import yaml

    return next(yaml.safe_load_all(Path(path).read_text()))


def spec_version(spec: dict[str, Any]) -> str | None:
    """The teacherlm version a spec was compiled with (the tag of its teacherlm images)."""
    tags = {
        ex["container"]["image"].rsplit(":", 1)[-1]
        for ex in spec["deploymentSpec"]["executors"].values()
        if "container" in ex and "/teacherlm-" in ex["container"]["image"]
    }
    return tags.pop() if len(tags) == 1 else None


# -- compile -------------------------------------------------------------------------------------
def compile_pipelines(
    output: str | Path | None = None,
    names: tuple[str, ...] = NAMES,
    settings: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Compile ``names`` to ``<output>/<name>/<name>.yaml`` (default: beside their sources).

    ``settings`` are the compile-time :class:`pipelines._settings.Settings` (node pools,
    accelerator, parallelism, retries); the committed specs use the defaults.
    """
    from kfp import compiler

    root = source_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from pipelines._settings import Settings  # type: ignore[import-not-found]

    try:
        s = Settings(**(settings or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError("pipeline settings", [str(exc)]) from None
    out_root = Path(output) if output else root / "pipelines"
    written = []
    for name in map(_check_name, names):
        module = importlib.import_module(f"pipelines.{name}.pipeline")
        target = out_root / name / f"{name}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(module.build(s), str(target))
        written.append(target)
    return written


# -- parameters ----------------------------------------------------------------------------------
_TYPES = {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "STRING": str}


def _parse(value: str, kind: str) -> Any:
    if kind == "BOOLEAN":
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("expected true or false")
        return value.lower() in ("true", "1", "yes")
    if kind in ("LIST", "STRUCT"):
        return json.loads(value)
    return _TYPES[kind](value)


def coerce_params(spec: dict[str, Any], params: Mapping[str, str]) -> dict[str, Any]:
    """``--param k=v`` strings as the pipeline's typed parameters; every problem reported at once."""
    declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    out, problems = {}, []
    for key, value in params.items():
        if key not in declared:
            problems.append(f"{key}: not a parameter of this pipeline (known: {', '.join(sorted(declared))})")
            continue
        kind = declared[key]["parameterType"]
        try:
            out[key] = _parse(value, kind)
        except (ValueError, KeyError) as exc:
            problems.append(f"{key}={value!r}: not a {kind.lower()} ({exc})")
    if problems:
        raise ConfigError("--param", problems)
    return out


def parse_param_args(args: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a malformed entry is an error."""
    bad = [a for a in args if "=" not in a or not a.split("=", 1)[0]]
    if bad:
        raise ConfigError("--param", [f"{a!r}: expected KEY=VALUE" for a in bad])
    return dict(a.split("=", 1) for a in args)


# -- publish and submit --------------------------------------------------------------------------
def client(host: str, namespace: str | None = None):
    """A ``kfp.Client`` for ``host``; inside a cluster it authenticates with the projected token.

    The KFP API server checks ``/apis/v2beta1/healthz`` on construction, so a wrong host fails here.
    """
    import warnings

    import kfp
    from kfp.client import KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH

    token = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV) or KF_PIPELINES_SA_TOKEN_PATH
    credentials = kfp.client.ServiceAccountTokenVolumeCredentials(token) if os.path.isfile(token) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        try:
            return kfp.Client(host=host, namespace=namespace or "kubeflow", credentials=credentials)
        except Exception as exc:
            raise TeacherLMError(f"cannot reach Kubeflow Pipelines at {host}: {exc}") from None


def _display_name(spec: dict[str, Any]) -> str:
    return spec["pipelineInfo"]["name"]


def _version_id(c, pipeline_id: str, version: str) -> str | None:
    query = json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": version}]}
    )
    found = c.list_pipeline_versions(pipeline_id, page_size=1, filter=query).pipeline_versions or []
    return found[0].pipeline_version_id if found else None


def publish(
    host: str,
    names: tuple[str, ...] = NAMES,
    *,
    specs: str | Path | None = None,
    namespace: str | None = None,
) -> list[dict[str, str]]:
    """Upload each compiled spec as version ``__version__`` of its pipeline; an existing version is a no-op.

    Returns one ``{"pipeline", "pipeline_id", "version", "version_id", "status"}`` per pipeline;
    status is ``created`` (new pipeline), ``uploaded`` (new version) or ``exists``.
    """
    import kfp_server_api

    files = {name: find_spec(name, specs) for name in names}  # every spec found before any upload
    loaded = {name: load_spec(path) for name, path in files.items()}
    stale = [
        f"{n}: compiled with {spec_version(s)}" for n, s in loaded.items() if spec_version(s) != __version__
    ]
    if stale:
        raise TeacherLMError(
            f"specs not compiled with teacherlm {__version__} ({'; '.join(stale)}); run `teacherlm pipeline compile`"
        )
    c = client(host, namespace)
    results = []
    for name, path in files.items():
        display = _display_name(loaded[name])
        description = f"{loaded[name]['pipelineInfo'].get('description', '')} (teacherlm {__version__})"
        status = "uploaded"
        pipeline_id = c.get_pipeline_id(display)
        if pipeline_id is None:
            # Created empty, so that its only version is named after the package version.
            made = c._pipelines_api.pipeline_service_create_pipeline(
                pipeline=kfp_server_api.V2beta1Pipeline(
                    display_name=display, description=description, namespace=namespace
                )
            )
            pipeline_id, status = made.pipeline_id, "created"
        version_id = _version_id(c, pipeline_id, __version__)
        if version_id is None:
            version_id = c.upload_pipeline_version(
                str(path), pipeline_version_name=__version__, pipeline_id=pipeline_id, description=description
            ).pipeline_version_id
        elif status == "uploaded":
            status = "exists"
        results.append(
            {"pipeline": display, "pipeline_id": pipeline_id, "version": __version__, "version_id": version_id,
             "status": status}
        )  # fmt: skip
    return results


def submit(
    name: str,
    host: str,
    params: Mapping[str, str] | None = None,
    *,
    experiment: str = "teacherlm",
    run_name: str | None = None,
    specs: str | Path | None = None,
    namespace: str | None = None,
    service_account: str | None = None,
) -> dict[str, str]:
    """Start a run of pipeline ``name``: its published version ``__version__``, else the local spec.

    Returns ``{"run_id", "experiment_id", "source"}`` where source is ``version <id>`` or ``package``.
    """
    spec_file = find_spec(name, specs)
    spec = load_spec(spec_file)
    arguments = coerce_params(spec, params or {})  # bad parameters fail before any call
    c = client(host, namespace)
    run_name = run_name or f"{name} {__version__} {time.strftime('%Y-%m-%d %H-%M-%S')}"
    pipeline_id = c.get_pipeline_id(_display_name(spec))
    version_id = _version_id(c, pipeline_id, __version__) if pipeline_id else None
    exp = c.create_experiment(experiment, namespace=namespace)  # get or create
    if version_id:
        run = c.run_pipeline(
            exp.experiment_id, run_name, params=arguments, pipeline_id=pipeline_id, version_id=version_id,
            service_account=service_account,
        )  # fmt: skip
        return {"run_id": run.run_id, "experiment_id": exp.experiment_id, "source": f"version {version_id}"}
    run = c.create_run_from_pipeline_package(
        str(spec_file), arguments=arguments, run_name=run_name, experiment_id=exp.experiment_id,
        service_account=service_account,
    )  # fmt: skip
    return {"run_id": run.run_id, "experiment_id": exp.experiment_id, "source": "package"}
