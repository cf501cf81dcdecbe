"""A fake of the Kubeflow Pipelines v2beta1 API on loopback, as strict as the real one for the calls teacherlm makes.

It plays healthz, pipelines (list, create, upload, upload_version), pipeline versions (list),
experiments (list, create) and runs (create), keeps what it was sent, and records every request
(method, path, query, Authorization header) so tests can check what the SDK did.

Checked against the KFP backend (kubeflow/pipelines ``backend/src/apiserver``), it refuses what
the real server refuses:

* **Uploads** (``template/v2_template.go``, ``NewV2SpecTemplate``): every YAML document is read;
  a document that parses as a ``PipelineSpec`` with a name and a root is the pipeline spec (schema
  version 2.1.0, a DNS-style name), one with ``platforms.kubernetes`` the platform spec; two of
  either, or no pipeline spec, is a 400. Both are kept (``pipeline_spec``, ``platform_spec``).
* **Multi-user mode** (``FakeKFP(multi_user=True)``; ``resource_manager.go``, ``experiment_server.go``,
  ``run_server.go``): an experiment needs a namespace ("An experiment cannot have an empty namespace
  in multi-user mode"), a run needs an experiment id, and pipelines live in their namespace (``""``:
  shared): a list sees only the namespace it names. In single-user mode namespaces are ignored
  (``ReplaceNamespace`` returns ``""``).
* **Pagination** (``list/list.go``): ``page_size`` 0 means 20, more than 200 means 200, negative is a
  400; ``next_page_token`` is opaque and carries the filter; a token that does not decode is a 400.
* **Runs** (``api_converter.go``, ``resource_manager.go``): a display name is required; the spec
  comes from exactly one of ``pipeline_spec`` (itself checked like an upload) and
  ``pipeline_version_reference`` (naming an existing version of that pipeline); the run's
  namespace is its experiment's, and another one in the body is a 400.
* **Service accounts** (``resource_manager.go``, ``common/config.go``): a run's ``service_account``
  is a string; empty, the server's default (``DEFAULTPIPELINERUNNERSERVICEACCOUNT``:
  ``default-editor`` in multi-user mode, else ``pipeline-runner``) runs it. Newer servers keep an
  allow list of other accounts (``FakeKFP(allowed_service_accounts=[...])``): one not on it is a 400
  that does not name the list. The run records the account its pods use (``service_account``).

Filters: only ``EQUALS`` predicates are played (all the SDK calls here send); anything else is a
400 that says it is the fake's limit.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

API = "/apis/v2beta1"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 200  # backend/src/apiserver/list/list.go
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


_GRPC_CODES = {400: 3, 404: 5, 409: 6}  # InvalidArgument, NotFound, AlreadyExists


class ApiError(Exception):
    """An error the real API server answers: HTTP status, gRPC code and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message

    def body(self) -> dict[str, Any]:
        return {
            "error": self.message,
            "code": _GRPC_CODES.get(self.status, 2),
            "message": self.message,
            "details": [],
        }


@dataclass
class State:
    multi_user: bool = False
    allowed_service_accounts: list[str] | None = None  # None: any account (servers without the allow list)
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def namespace(self, value: str | None) -> str:
        """``ResourceManager.ReplaceNamespace``: the namespace in multi-user mode, else ``""``."""
        return (value or "") if self.multi_user else ""


def parse_template(docs: list[Any]) -> dict[str, Any]:
    """``{"pipeline_spec", "platform_spec"}`` from the documents of an upload, by the server's rules."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = platform = None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ApiError(400, "Invalid pipeline spec: unable to decode yaml document")
        try:
            parsed = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
            is_spec = bool(parsed.pipeline_info.name) and parsed.HasField("root")
        except json_format.ParseError:
            is_spec = False
        if is_spec:
            if spec is not None:
                raise ApiError(400, "Invalid pipeline spec: multiple pipeline specs provided")
            if parsed.schema_version != "2.1.0":
                raise ApiError(400, f"Invalid pipeline spec: KFP only supports schema version 2.1.0, "
                                    f"but the pipeline spec has version {parsed.schema_version}")  # fmt: skip
            if not _NAME.match(parsed.pipeline_info.name):
                raise ApiError(400, "Invalid pipeline spec: invalid v2 pipeline spec: name should consist of lower "
                                    "case alphanumeric characters, '-' or '.'")  # fmt: skip
            spec = doc
        elif "kubernetes" in (doc.get("platforms") or {}):
            if platform is not None:
                raise ApiError(400, "Invalid platform spec: multiple platform specs provided")
            try:
                json_format.ParseDict(doc, pipeline_spec_pb2.PlatformSpec())
            except json_format.ParseError as exc:
                raise ApiError(
                    400, f"Invalid platform spec: cannot unmarshal platform specific configs: {exc}"
                ) from None
            platform = doc
    if spec is None:
        raise ApiError(400, "Invalid pipeline spec: no pipeline spec is provided")
    return {"pipeline_spec": spec, "platform_spec": platform}


def _equals_filter(raw: str | None) -> list[tuple[str, str]]:
    """``[(key, value)]`` of a filter's ``EQUALS`` predicates."""
    if not raw:
        return []
    try:
        predicates = json.loads(raw).get("predicates") or []
    except (ValueError, AttributeError):
        raise ApiError(400, f"failed to parse filter spec: {raw}") from None
    out = []
    for pred in predicates:
        if pred.get("operation") not in ("EQUALS", 1):
            raise ApiError(400, f"the fake plays only EQUALS filters, got {pred.get('operation')!r}")
        out.append((pred["key"], pred.get("stringValue", pred.get("string_value"))))
    return out


def _page(items: list[dict[str, Any]], key: str, query: dict[str, str]) -> dict[str, Any]:
    """One page of ``items`` (already in order) under ``key``, as ``list.go`` pages them."""
    try:
        size = int(query.get("page_size") or 0)
    except ValueError:
        raise ApiError(400, f"invalid page_size {query.get('page_size')!r}") from None
    if size < 0:
        raise ApiError(400, f"The page size should be greater than 0. Got {size}")
    size = DEFAULT_PAGE_SIZE if size == 0 else min(size, MAX_PAGE_SIZE)
    token, offset, filt = query.get("page_token"), 0, query.get("filter")
    if token:
        try:
            decoded = json.loads(base64.b64decode(token, validate=True))
            offset, filt = int(decoded["offset"]), decoded["filter"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "Invalid package token") from None
    matches = _equals_filter(filt)
    found = [i for i in items if all(i.get(k) == v for k, v in matches)]
    body: dict[str, Any] = {}
    if found[offset : offset + size]:
        body[key] = found[offset : offset + size]
    if found:
        body["total_size"] = len(found)
    if offset + size < len(found):
        body["next_page_token"] = base64.b64encode(
            json.dumps({"offset": offset + size, "filter": filt}).encode()
        ).decode()
    return body


class _Handler(BaseHTTPRequestHandler):
    state: State

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> tuple[str, dict[str, str]]:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.state.requests.append(
            {
                "method": self.command,
                "path": url.path,
                "query": query,
                "auth": self.headers.get("Authorization"),
            }
        )
        return url.path, {k: v[0] for k, v in query.items()}

    def _json_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise ApiError(400, "request body is not JSON") from None

    def _upload(self) -> dict[str, Any]:
        """The pipeline and platform spec of a multipart upload (field ``uploadfile``)."""
        from email.parser import BytesParser
        from email.policy import default

        body = self.rfile.read(int(self.headers["Content-Length"]))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=default).parsebytes(head + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                try:
                    docs = list(yaml.safe_load_all(part.get_payload(decode=True)))
                except yaml.YAMLError as exc:
                    raise ApiError(
                        400, f"Invalid pipeline spec: unable to decode yaml document: {exc}"
                    ) from None
                return parse_template(docs)
        raise ApiError(400, "Failed to read pipeline from file: http: no such file")

    def _version(
        self, pipeline_id: str, name: str, template: dict[str, Any], description: str | None
    ) -> dict:
        if not name:
            raise ApiError(400, "name is required")
        if any(v["display_name"] == name for v in self.state.versions.get(pipeline_id, [])):
            raise ApiError(409, f"Failed to create a pipeline version: version {name} already exists")
        version = {
            "pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "display_name": name,
            "description": description, **template,
        }  # fmt: skip
        self.state.versions.setdefault(pipeline_id, []).append(version)
        return version

    def _new_pipeline(self, name: str, namespace: str | None, description: str | None) -> dict[str, Any]:
        if not name:
            raise ApiError(400, "name is required")
        ns = self.state.namespace(namespace)
        if any(p["display_name"] == name and p["namespace"] == ns for p in self.state.pipelines.values()):
            raise ApiError(
                409, f"Failed to create a pipeline: pipeline {name!r} already exists in namespace {ns!r}"
            )
        pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": name, "description": description,
                    "namespace": ns}  # fmt: skip
        self.state.pipelines[pipeline["pipeline_id"]] = pipeline
        return pipeline

    def _experiment_namespace(self, namespace: str | None) -> str:
        ns = self.state.namespace(namespace)
        if self.state.multi_user and not ns:
            raise ApiError(400, "An experiment cannot have an empty namespace in multi-user mode")
        return ns

    def _serve(self, route) -> None:
        try:
            self._send(200, route())
        except ApiError as exc:
            self._send(exc.status, exc.body())

    def do_GET(self) -> None:
        path, query = self._record()
        self._serve(lambda: self._get(path, query))

    def _get(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        if path == f"{API}/healthz":
            return {"commit_sha": "fake", "tag_name": "2.5.0", "multi_user": self.state.multi_user}
        if path == f"{API}/pipelines":
            ns = self.state.namespace(query.get("namespace"))
            return _page(
                [p for p in self.state.pipelines.values() if p["namespace"] == ns], "pipelines", query
            )
        if path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pipeline_id = path.split("/")[4]
            if pipeline_id not in self.state.pipelines:
                raise ApiError(404, f"Pipeline {pipeline_id} not found")
            return _page(self.state.versions.get(pipeline_id, []), "pipeline_versions", query)
        if path == f"{API}/experiments":
            ns = self._experiment_namespace(query.get("namespace"))
            found = [e for e in self.state.experiments.values() if e["namespace"] == ns]
            return _page(found, "experiments", query)
        raise ApiError(404, f"no route {path}")

    def do_POST(self) -> None:
        path, query = self._record()
        self._serve(lambda: self._post(path, query))

    def _post(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        if path == f"{API}/pipelines":
            body = self._json_body()
            return self._new_pipeline(
                body.get("display_name", ""), body.get("namespace"), body.get("description")
            )
        if path == f"{API}/pipelines/upload":
            template = self._upload()
            name = (
                query.get("display_name")
                or query.get("name")
                or template["pipeline_spec"]["pipelineInfo"]["name"]
            )
            pipeline = self._new_pipeline(name, query.get("namespace"), query.get("description"))
            self._version(pipeline["pipeline_id"], name, template, query.get("description"))
            return pipeline
        if path == f"{API}/pipelines/upload_version":
            template = self._upload()
            pipeline_id = query.get("pipelineid")
            if not pipeline_id:
                raise ApiError(400, "Failed to create a pipeline version due to empty parent pipeline id")
            if pipeline_id not in self.state.pipelines:
                raise ApiError(404, f"Pipeline {pipeline_id} not found")
            name = query.get("display_name") or query.get("name") or ""
            return self._version(pipeline_id, name, template, query.get("description"))
        if path == f"{API}/experiments":
            body = self._json_body()
            if not body.get("display_name"):
                raise ApiError(400, "Experiment name is empty. Please specify a valid experiment name")
            ns = self._experiment_namespace(body.get("namespace"))
            if any(e["display_name"] == body["display_name"] and e["namespace"] == ns
                   for e in self.state.experiments.values()):  # fmt: skip
                raise ApiError(
                    409, f"Failed to create a new experiment: {body['display_name']!r} already exists"
                )
            experiment = {**body, "namespace": ns, "experiment_id": str(uuid.uuid4())}
            self.state.experiments[experiment["experiment_id"]] = experiment
            return experiment
        if path == f"{API}/runs":
            return self._create_run(self._json_body())
        raise ApiError(404, f"no route {path}")

    def _create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("display_name"):
            raise ApiError(400, "Failed to create a run due to invalid name: The run name is empty")
        experiment_id = body.get("experiment_id") or ""
        if self.state.multi_user and not experiment_id:
            raise ApiError(400, "Experiment id can not be empty in multi-user mode")
        ns = ""
        if experiment_id:
            if experiment_id not in self.state.experiments:
                raise ApiError(404, f"Failed to fetch namespace for experiment {experiment_id}")
            ns = self.state.experiments[experiment_id]["namespace"]
            if self.state.namespace(body.get("namespace")) not in ("", ns):
                raise ApiError(400, f"Experiment {experiment_id} belongs to namespace {ns!r} instead of "
                                    f"{body.get('namespace')!r}")  # fmt: skip
        spec, ref = body.get("pipeline_spec"), body.get("pipeline_version_reference")
        if bool(spec) == bool(ref):
            raise ApiError(400, "a run needs exactly one of pipeline_spec and pipeline_version_reference")
        if spec:
            docs = [spec["pipeline_spec"], spec.get("platform_spec")] if "pipeline_spec" in spec else [spec]
            parse_template(docs)
        else:
            versions = self.state.versions.get(ref.get("pipeline_id") or "", [])
            if not any(v["pipeline_version_id"] == ref.get("pipeline_version_id") for v in versions):
                raise ApiError(404, f"Pipeline version {ref.get('pipeline_version_id')} of pipeline "
                                    f"{ref.get('pipeline_id')} not found")  # fmt: skip
        account = body.get("service_account") or ""
        if not isinstance(account, str):
            raise ApiError(400, "Invalid input error: service_account must be a string")
        default = "default-editor" if self.state.multi_user else "pipeline-runner"
        allowed = self.state.allowed_service_accounts
        if account and account != default and allowed is not None and account not in allowed:
            raise ApiError(400, f"Invalid input error: service account {account!r} is not allowed")
        run = {
            **body,
            "service_account": account or default,
            "namespace": ns,
            "run_id": str(uuid.uuid4()),
            "state": "PENDING",
        }
        self.state.runs[run["run_id"]] = run
        return run


class FakeKFP:
    """``with FakeKFP() as kfp: kfp.url`` -- a fake KFP API server on 127.0.0.1, in a thread.

    ``multi_user=True`` plays a multi-user (Kubeflow profiles) deployment.
    """

    def __init__(self, multi_user: bool = False, allowed_service_accounts: list[str] | None = None) -> None:
        self.state = State(multi_user=multi_user, allowed_service_accounts=allowed_service_accounts)
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKFP:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.state.requests if r["method"] == method and r["path"] == f"{API}{path}"]
