"""Publish the compiled pipelines as versions and submit runs, with the kfp SDK.

    teacherlm pipeline publish --host http://ml-pipeline.kubeflow.svc.cluster.local:8888
    teacherlm pipeline submit end_to_end --host URL --experiment demo --param num_shards=16

The pipeline version is the package version: ``publish`` uploads each compiled spec as version
``teacherlm_core.__version__`` of its pipeline (creating the pipeline first), recording the spec's
content hash; an existing version with another spec is refused, and ``submit`` runs a published
version only when it holds the very spec whose parameters it checked. Both read the specs shipped
in the ``pipelines`` package (:mod:`.specs`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import TeacherLMError
from .specs import NAMES, coerce_params, find_spec, load_spec, spec_version

__all__ = ["RUN_SERVICE_ACCOUNT", "client", "publish", "submit"]

# The identity a run's pods use (manifests/base/rbac.yaml): Roles for TrainJobs and KFP's own needs,
# nothing more; never Kubeflow's default-editor, which a profile binds to kubeflow-edit (every
# Secret of the namespace, pods, exec). A KFP API server with an allow list of run service
# accounts must list it (docs/security.md).
RUN_SERVICE_ACCOUNT = "teacherlm-pipeline-runner"


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


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def _pipeline_id(c, display: str, namespace: str | None) -> str | None:
    """The id of pipeline ``display`` in ``namespace`` (``None``: the shared pipelines).

    ``kfp.Client.get_pipeline_id`` lists without a namespace, which on a multi-user server sees
    only shared pipelines: a pipeline published into a namespace would never be found again.
    """
    found = c.list_pipelines(
        filter=_equals("display_name", display), namespace=namespace, page_size=2
    ).pipelines
    if found and len(found) > 1:
        raise TeacherLMError(
            f"{len(found)} pipelines named {display!r} in namespace {namespace or '(shared)'}"
        )
    return found[0].pipeline_id if found else None


def _run_namespace(c, host: str, namespace: str | None) -> str | None:
    """The namespace runs go to: ``namespace``, else the client's; a multi-user server requires one."""
    namespace = namespace or c.get_user_namespace() or None
    if namespace is None and c.get_kfp_healthz().multi_user:
        raise TeacherLMError(
            f"Kubeflow Pipelines at {host} runs in multi-user mode: pass --namespace "
            "(the profile namespace to run in)"
        )
    return namespace


def _published(c, pipeline_id: str, version: str) -> tuple[str | None, str | None]:
    """``(version id, spec hash it was published with)`` of ``version`` of ``pipeline_id``; Nones when absent."""
    found = c.list_pipeline_versions(pipeline_id, page_size=1, filter=_equals("display_name", version))
    found = found.pipeline_versions or []
    if not found:
        return None, None
    recorded = _SPEC_HASH.search(found[0].description or "")
    return found[0].pipeline_version_id, recorded.group(1) if recorded else None


_SPEC_HASH = re.compile(r"spec sha256 ([0-9a-f]{16})")


def spec_hash(path: str | Path) -> str:
    """The content hash of a compiled spec file (the first 16 hex digits of its sha256)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _mismatch(display: str, recorded: str | None, local: str) -> TeacherLMError:
    what = f"spec sha256 {recorded}" if recorded else "a spec of unknown content"
    return TeacherLMError(
        f"pipeline {display!r} version {__version__} on the server holds {what}, not this spec ({local}): "
        "a spec changed without a version bump; bump teacherlm's version (or delete that pipeline version) "
        "and publish again"
    )


def publish(
    host: str,
    names: tuple[str, ...] = NAMES,
    *,
    specs: str | Path | None = None,
    namespace: str | None = None,
) -> list[dict[str, str]]:
    """Upload each compiled spec as version ``__version__`` of its pipeline.

    The version's description records the spec's content hash. An existing version with the same
    hash is left as it is (``exists``); one with another hash is refused: a spec recompiled without
    a version bump would otherwise stay stale on the server.

    Returns one ``{"pipeline", "pipeline_id", "version", "version_id", "status"}`` per pipeline;
    status is ``created`` (new pipeline), ``uploaded`` (new version) or ``exists``.

    Raises:
        TeacherLMError: specs compiled with another version, or a version holding another spec.
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
        local = spec_hash(path)
        description = (
            f"{loaded[name]['pipelineInfo'].get('description', '')} "
            f"(teacherlm {__version__}; spec sha256 {local})"
        )
        status = "uploaded"
        pipeline_id = _pipeline_id(c, display, namespace)
        if pipeline_id is None:
            # Created empty, so that its only version is named after the package version.
            made = c._pipelines_api.pipeline_service_create_pipeline(
                pipeline=kfp_server_api.V2beta1Pipeline(
                    display_name=display, description=description, namespace=namespace
                )
            )
            pipeline_id, status = made.pipeline_id, "created"
        version_id, recorded = _published(c, pipeline_id, __version__)
        if version_id is None:
            version_id = c.upload_pipeline_version(
                str(path), pipeline_version_name=__version__, pipeline_id=pipeline_id, description=description
            ).pipeline_version_id
        elif recorded != local:  # never leave a stale spec behind an existing version
            raise _mismatch(display, recorded, local)
        elif status == "uploaded":
            status = "exists"
        results.append(
            {
                "pipeline": display,
                "pipeline_id": pipeline_id,
                "version": __version__,
                "version_id": version_id,
                "status": status,
            }
        )
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
    service_account: str | None = RUN_SERVICE_ACCOUNT,
) -> dict[str, str]:
    """Start a run of pipeline ``name``: its published version ``__version__``, else the local spec.

    Exactly the spec whose parameters were checked runs: the published version only when it holds
    the same spec (content hash), else the run is refused rather than started from another spec.
    The run's pods use ``service_account`` (default :data:`RUN_SERVICE_ACCOUNT`; ``None`` or ``""``:
    the server's default, which on multi-user Kubeflow is ``default-editor``).

    Returns ``{"run_id", "experiment_id", "source"}`` where source is ``version <id>`` or ``package``.
    """
    spec_file = find_spec(name, specs)
    spec = load_spec(spec_file)
    arguments = coerce_params(spec, params or {})  # bad parameters fail before any call
    c = client(host, namespace)
    namespace = _run_namespace(c, host, namespace)
    run_name = run_name or f"{name} {__version__} {time.strftime('%Y-%m-%d %H-%M-%S')}"
    # Published into the run's namespace, else shared (published without one).
    pipeline_id = _pipeline_id(c, _display_name(spec), namespace) or (
        _pipeline_id(c, _display_name(spec), None) if namespace else None
    )
    version_id, recorded = _published(c, pipeline_id, __version__) if pipeline_id else (None, None)
    if version_id and recorded != spec_hash(spec_file):
        raise _mismatch(_display_name(spec), recorded, spec_hash(spec_file))
    exp = c.create_experiment(experiment, namespace=namespace)  # get or create
    import kfp_server_api

    try:
        if version_id:
            run = c.run_pipeline(
                exp.experiment_id,
                run_name,
                params=arguments,
                pipeline_id=pipeline_id,
                version_id=version_id,
                service_account=service_account,
            )
            return {
                "run_id": run.run_id,
                "experiment_id": exp.experiment_id,
                "source": f"version {version_id}",
            }
        run = c.create_run_from_pipeline_package(
            str(spec_file),
            arguments=arguments,
            run_name=run_name,
            experiment_id=exp.experiment_id,
            service_account=service_account,
        )
    except kfp_server_api.ApiException as exc:  # e.g. a service account the server does not allow
        raise TeacherLMError(
            f"Kubeflow Pipelines at {host} refused the run ({exc.status}): {_message(exc)}"
            + (f" (service account {service_account})" if service_account else "")
        ) from None
    return {"run_id": run.run_id, "experiment_id": exp.experiment_id, "source": "package"}


def _message(exc) -> str:
    """The API server's message of an ``ApiException`` (its JSON body's ``message``), else its reason."""
    try:
        return json.loads(exc.body)["message"]
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)
