"""A small fake of the Kubeflow Pipelines v2beta1 API on loopback, enough for ``kfp.Client``.

It plays healthz, pipelines (list with a display-name filter, create, upload, upload_version),
pipeline versions (list with a filter), experiments (list, create) and runs (create), keeps
what it was sent, and records every request (method, path, query, Authorization header) so tests
can check what the SDK did.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml

API = "/apis/v2beta1"


@dataclass
class State:
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)


def _equals_filter(raw: str | None) -> tuple[str, str] | None:
    """``(key, value)`` of a ``{"predicates": [{"operation": "EQUALS", ...}]}`` filter."""
    if not raw:
        return None
    pred = json.loads(raw)["predicates"][0]
    assert pred["operation"] in ("EQUALS", 1), pred
    return pred["key"], pred.get("stringValue", pred.get("string_value"))


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

    def _record(self) -> tuple[str, dict[str, list[str]]]:
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
        return url.path, query

    def _json_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _upload(self) -> dict[str, Any]:
        """The pipeline spec of a multipart upload (field ``uploadfile``)."""
        from email.parser import BytesParser
        from email.policy import default

        body = self.rfile.read(int(self.headers["Content-Length"]))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=default).parsebytes(head + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                return next(yaml.safe_load_all(part.get_payload(decode=True)))
        raise ValueError("no uploadfile in the multipart body")

    def _version(self, pipeline_id: str, name: str, spec: dict[str, Any], description: str | None) -> dict:
        version = {
            "pipeline_id": pipeline_id, "pipeline_version_id": str(uuid.uuid4()), "display_name": name,
            "description": description, "pipeline_spec": spec,
        }  # fmt: skip
        self.state.versions.setdefault(pipeline_id, []).append(version)
        return version

    def do_GET(self) -> None:
        path, query = self._record()
        if path == f"{API}/healthz":
            return self._send(200, {"multi_user": False})
        if path == f"{API}/pipelines":
            match = _equals_filter(query.get("filter", [None])[0])
            found = [p for p in self.state.pipelines.values() if not match or p.get(match[0]) == match[1]]
            return self._send(200, {"pipelines": found, "total_size": len(found)} if found else {})
        if path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pipeline_id = path.split("/")[4]
            match = _equals_filter(query.get("filter", [None])[0])
            found = [
                v
                for v in self.state.versions.get(pipeline_id, [])
                if not match or v.get(match[0]) == match[1]
            ]
            return self._send(200, {"pipeline_versions": found, "total_size": len(found)} if found else {})
        if path == f"{API}/experiments":
            match = _equals_filter(query.get("filter", [None])[0])
            found = [e for e in self.state.experiments.values() if not match or e.get(match[0]) == match[1]]
            return self._send(200, {"experiments": found, "total_size": len(found)} if found else {})
        return self._send(404, {"error": f"no route {path}"})

    def do_POST(self) -> None:
        path, query = self._record()
        first = {k: v[0] for k, v in query.items()}
        if path == f"{API}/pipelines":
            body = self._json_body()
            if any(p["display_name"] == body["display_name"] for p in self.state.pipelines.values()):
                return self._send(409, {"error": "pipeline exists"})
            pipeline = {**body, "pipeline_id": str(uuid.uuid4())}
            self.state.pipelines[pipeline["pipeline_id"]] = pipeline
            return self._send(200, pipeline)
        if path == f"{API}/pipelines/upload":
            spec = self._upload()
            name = first.get("display_name") or first["name"]
            pipeline = {
                "pipeline_id": str(uuid.uuid4()),
                "display_name": name,
                "description": first.get("description"),
            }
            self.state.pipelines[pipeline["pipeline_id"]] = pipeline
            self._version(pipeline["pipeline_id"], name, spec, first.get("description"))
            return self._send(200, pipeline)
        if path == f"{API}/pipelines/upload_version":
            spec = self._upload()
            pipeline_id, name = first["pipelineid"], first.get("display_name") or first["name"]
            if pipeline_id not in self.state.pipelines:
                return self._send(404, {"error": "no such pipeline"})
            if any(v["display_name"] == name for v in self.state.versions.get(pipeline_id, [])):
                return self._send(409, {"error": f"version {name} exists"})
            return self._send(200, self._version(pipeline_id, name, spec, first.get("description")))
        if path == f"{API}/experiments":
            body = self._json_body()
            experiment = {**body, "experiment_id": str(uuid.uuid4())}
            self.state.experiments[experiment["experiment_id"]] = experiment
            return self._send(200, experiment)
        if path == f"{API}/runs":
            body = self._json_body()
            run = {**body, "run_id": str(uuid.uuid4()), "state": "PENDING"}
            self.state.runs[run["run_id"]] = run
            return self._send(200, run)
        return self._send(404, {"error": f"no route {path}"})


class FakeKFP:
    """``with FakeKFP() as kfp: kfp.url`` -- a fake KFP API server on 127.0.0.1, in a thread."""

    def __init__(self) -> None:
        self.state = State()
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
