"""A small fake Kubernetes API server on loopback that plays the life cycle of a training job.

It answers the calls :mod:`teacherlm_core.train.k8s` makes through the real Kubernetes Python
client: create / get / delete a ``TrainJob`` (``trainer.kubeflow.org/v1alpha1``) or a
``PyTorchJob`` (``kubeflow.org/v1``), list events, list pods by label, read a pod's log. Created
TrainJobs are validated with ``kubeflow-trainer-api``'s models and the CRD's name rule (422 if
invalid); a taken name is a 409, as on a real API server.

Every request is authorised against the Role that ``manifests/`` grants the pipeline runner
(``teacherlm-trainjob-runner``, rendered with ``kubectl kustomize``), as RBAC would: a call the
Role does not allow gets the API server's 403, so the code and the manifests cannot drift apart.
``FakeK8s(role=None)`` turns this off (only for tests about the fake itself).

Events carry a ``resourceVersion`` and can be watched from one (``watch=true&resourceVersion=N``:
the events after N, one JSON object a line, then the stream ends; too old a version answers the
410 Gone a real server gives once it dropped them, see ``oldest_watchable``). Pod logs are
timestamped lines and honour ``timestamps``, ``sinceTime``, ``sinceSeconds``, ``tailLines`` and
``limitBytes``.
``served`` counts the bytes and objects each kind of read returned, so tests can check that a
follower reads only what is new.

Each job follows a script, advanced by every GET of the job (so tests never sleep)::

    "succeed": Created -> pods Pending -> Running (log lines) -> Complete / Succeeded
    "fail":    Created -> pods Pending -> Running -> Failed (pod 0 Failed with a traceback)
    "hang":    Created -> pods Pending -> Running, forever
    "long":    like "succeed", but runs ``long_polls`` polls, logging ``lines_per_poll`` lines each
    "queued":  Suspended (Kueue has not admitted it) for ``queue_s`` seconds, then like "succeed"
    "preempted": like "succeed" until Running, then Suspended with reason Preempted (pods gone, Kueue's
               "Stopped" event) for ``preempted_polls`` polls, then resumed: Pending -> Running -> Complete

``FakeK8s(require_queue=True)`` refuses a TrainJob without ``kueue.x-k8s.io/queue-name``, as a
cluster's admission policy does where every job must go through a queue. ``FakeK8s(admission=True)``
enforces the TrainJob admission policy the manifests render (manifests/base/admission.yaml, its
CEL evaluated by tests/vap.py): a refused job gets the API server's 403 with the rule's message. ``api_groups`` is what
discovery (``GET /apis``) serves; ``trainjob_unknown`` names TrainJob ``spec`` fields the CRD lacks
(an older Trainer): dropped, or refused with ``fieldValidation=Strict``, as the API server does.
"""

from __future__ import annotations

import calendar
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["FakeK8s", "admission_policy", "runner_role"]

RUNNER_ROLE = "teacherlm-trainjob-runner"


def runner_role(env: str = "dev") -> dict[str, Any]:
    """The Role the rendered manifests give the pipeline runner (what the launcher may do)."""
    import deploy_helpers as dh

    (role,) = [d for d in dh.render(env)[1] if d["kind"] == "Role" and d["metadata"]["name"] == RUNNER_ROLE]
    return role


def admission_policy(env: str = "dev") -> dict[str, Any]:
    """The TrainJob ValidatingAdmissionPolicy the rendered manifests define."""
    import deploy_helpers as dh

    (policy,) = [d for d in dh.render(env)[1] if d["kind"] == "ValidatingAdmissionPolicy"]
    return policy


_KINDS = {
    ("trainer.kubeflow.org", "v1alpha1", "trainjobs"): (
        "TrainJob",
        "Complete",
        "jobset.sigs.k8s.io/jobset-name",
        "node",
    ),
    ("kubeflow.org", "v1", "pytorchjobs"): (
        "PyTorchJob",
        "Succeeded",
        "training.kubeflow.org/job-name",
        "pytorch",
    ),
}
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _flag(query: dict[str, list[str]], name: str) -> bool:
    """A boolean query parameter as the API server reads it (Go's strconv.ParseBool: true, True, 1...)."""
    return query.get(name, ["false"])[0] in ("1", "t", "T", "TRUE", "true", "True")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeK8s:
    """``with FakeK8s() as k8s: client = k8s.api_client()``; ``k8s.script[name] = "fail"``."""

    def __init__(
        self,
        default_script: str = "succeed",
        role: dict[str, Any] | str | None = "manifests",
        require_queue: bool = False,
        admission: bool = False,
    ):
        self.default_script = default_script
        self.require_queue = require_queue
        self.admission = admission_policy() if admission else None
        self.queue_s, self.preempted_polls = 1.0, 3
        self.api_groups = {"trainer.kubeflow.org": ["v1alpha1"], "kubeflow.org": ["v1"]}
        self.trainjob_unknown: set[str] = set()
        self.created: dict[tuple[str, str, str], float] = {}  # job -> time.monotonic() at creation
        self.role = runner_role() if role == "manifests" else role
        self.forbidden: list[str] = []
        self.script: dict[str, str] = {}
        self.jobs: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name) -> object
        self.polls: dict[tuple[str, str, str], int] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[tuple[int, str]]] = {}  # pod -> (unix time in ns, line)
        self.events: list[dict[str, Any]] = []
        self.resource_version = 0
        self.oldest_watchable = 0  # a watch from an older resourceVersion gets 410 Gone
        self.served: dict[str, int] = {"log_bytes": 0, "event_objects": 0}
        self.long_polls, self.lines_per_poll = 20, 5
        self.requests: list[tuple[str, str]] = []
        self.queries: list[tuple[str, str, dict[str, list[str]]]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- server plumbing -------------------------------------------------------------------------
    def __enter__(self) -> FakeK8s:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake.lock:
                    fake.requests.append((method, url.path))
                    fake.queries.append((method, url.path, parse_qs(url.query)))
                    denied = fake.authorise(method, url.path, parse_qs(url.query))
                    code, payload, ctype = denied or fake.route(method, url.path, parse_qs(url.query), body)
                self._send(code, payload, ctype)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def api_client(self):
        from kubernetes import client

        config = client.Configuration()
        config.host = self.url
        return client.ApiClient(config)

    # -- the API ---------------------------------------------------------------------------------
    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any], str]:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": code,
        }
        return code, body, "application/json"

    def authorise(self, method: str, path: str, query: dict[str, list[str]]):
        """``None`` when the Role allows the request, else the 403 a real API server answers."""
        if self.role is None:
            return None
        parts = path.strip("/").split("/")
        if len(parts) < 4:  # discovery (/api, /apis, /apis/{group}...): readable by every user
            return None
        if parts[0] == "api":  # /api/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]]
            group, rest = "", parts[2:]
        else:  # /apis/{group}/{version}/namespaces/{ns}/{resource}[/{name}[/{sub}]]
            group, rest = parts[1], parts[3:]
        ns, resource = rest[1], rest[2]
        name = rest[3] if len(rest) > 3 else None
        if len(rest) > 4:
            resource = f"{resource}/{rest[4]}"
        verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}.get(method)
        verb = verb or ("get" if name else "watch" if _flag(query, "watch") else "list")
        for rule in self.role.get("rules", []):
            if (
                group in rule.get("apiGroups", [])
                and resource in rule.get("resources", [])
                and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
            ):
                return None
        what = f"{resource.split('/')[0]}{'.' + group if group else ''}"
        message = (f'{what} "{name or ""}" is forbidden: User "system:serviceaccount:{ns}:teacherlm-pipeline-runner" '
                   f'cannot {verb} resource "{resource}" in API group "{group}" in the namespace "{ns}"')  # fmt: skip
        self.forbidden.append(message)
        return self._status(403, "Forbidden", message)

    def route(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        parts = path.strip("/").split("/")
        if parts == ["apis"] and method == "GET":
            groups = [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                 "preferredVersion": {"groupVersion": f"{g}/{versions[0]}", "version": versions[0]}}
                for g, versions in self.api_groups.items()
            ]  # fmt: skip
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}, "application/json"
        # /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]
        if parts[0] == "apis" and len(parts) >= 6 and (parts[1], parts[2], parts[5]) in _KINDS:
            key = (parts[1], parts[2], parts[5])
            ns, name = parts[4], parts[6] if len(parts) > 6 else None
            if method == "POST":
                return self._create(key, ns, body, strict=query.get("fieldValidation") == ["Strict"])
            if name is None and method == "GET":
                return self._list(key, ns, query)
            if name is None:
                return self._status(405, "MethodNotAllowed", f"{method} on a collection")
            job_key = (parts[5], ns, name)
            if job_key not in self.jobs:
                return self._status(404, "NotFound", f'{parts[5]}.{parts[1]} "{name}" not found')
            if method == "DELETE":
                del self.jobs[job_key]
                return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}, "application/json"
            return 200, self._advance(key, job_key), "application/json"
        # /api/v1/namespaces/{ns}/events | pods | pods/{name}/log
        if parts[:2] == ["api", "v1"] and len(parts) >= 5 and parts[2] == "namespaces":
            ns, what = parts[3], parts[4]
            if what == "events":
                items = [e for e in self.events if e["metadata"]["namespace"] == ns]
                if _flag(query, "watch"):
                    since = int(query.get("resourceVersion", ["0"])[0] or 0)
                    if since < self.oldest_watchable:
                        gone = self._status(410, "Expired", f"too old resource version: {since}")[1]
                        return 200, json.dumps({"type": "ERROR", "object": gone}) + "\n", "application/json"
                    new = [e for e in items if int(e["metadata"]["resourceVersion"]) > since]
                    self.served["event_objects"] += len(new)
                    lines = "".join(json.dumps({"type": "ADDED", "object": e}) + "\n" for e in new)
                    return 200, lines, "application/json"
                self.served["event_objects"] += len(items)
                meta = {"resourceVersion": str(self.resource_version)}
                return (
                    200,
                    {"kind": "EventList", "apiVersion": "v1", "metadata": meta, "items": items},
                    "application/json",
                )
            if what == "pods" and len(parts) == 5:
                selector = query.get("labelSelector", [""])[0]
                label, _, value = selector.partition("=")
                items = [
                    p for p in self.pods.values()
                    if p["metadata"]["namespace"] == ns and p["metadata"]["labels"].get(label) == value
                ]  # fmt: skip
                return (
                    200,
                    {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items},
                    "application/json",
                )
            if what == "pods" and len(parts) == 7 and parts[6] == "log":
                if parts[5] not in self.logs:
                    return self._status(400, "BadRequest", f"container in pod {parts[5]} is waiting to start")
                return 200, self._log_text(parts[5], query), "text/plain"
        return self._status(404, "NotFound", f"the fake has no route for {method} {path}")

    @staticmethod
    def _selected(labels: dict[str, str], selector: str) -> bool:
        """Equality-based label selectors (``a=b,c!=d``), as the API server reads them."""
        for term in filter(None, selector.split(",")):
            if "!=" in term:
                k, v = term.split("!=", 1)
                if labels.get(k.strip()) == v.strip():
                    return False
            else:
                k, _, v = term.replace("==", "=").partition("=")
                if labels.get(k.strip()) != v.strip():
                    return False
        return True

    def _list(self, key, ns: str, query: dict[str, list[str]]):
        kind = _KINDS[key][0]
        selector = query.get("labelSelector", [""])[0]
        items = [
            obj for (plural, obj_ns, _), obj in sorted(self.jobs.items())
            if plural == key[2] and obj_ns == ns and self._selected(obj["metadata"].get("labels") or {}, selector)
        ]  # fmt: skip
        body = {"apiVersion": f"{key[0]}/{key[1]}", "kind": f"{kind}List", "metadata": {}, "items": items}
        return 200, body, "application/json"

    def _create(self, key, ns: str, body: dict[str, Any], strict: bool = False):
        kind = _KINDS[key][0]
        name = (body.get("metadata") or {}).get("name", "")
        unknown = sorted(f for f in self.trainjob_unknown if kind == "TrainJob" and f in body.get("spec", {}))
        if unknown and strict:
            fields = ", ".join(f'unknown field "spec.{f}"' for f in unknown)
            return self._status(400, "BadRequest", f'{kind} in version "{key[1]}" cannot be handled as a {kind}: '
                                                   f"strict decoding error: {fields}")  # fmt: skip
        for f in unknown:  # pruned, as a structural schema does
            body = {**body, "spec": {k: v for k, v in body["spec"].items() if k != f}}
        problems = []
        if body.get("kind") != kind or body.get("apiVersion") != f"{key[0]}/{key[1]}":
            problems.append(f"expected {key[0]}/{key[1]} {kind}")
        if not _NAME.match(name) or len(name) > 63:
            problems.append("metadata.name must match RFC 1035 DNS label format")
        if kind == "TrainJob":
            from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob
            from pydantic import ValidationError

            try:
                TrainerV1alpha1TrainJob.from_dict(body)
            except ValidationError as exc:
                problems.append(str(exc).splitlines()[0])
        if problems:
            return self._status(
                422, "Invalid", f'{kind}.{key[0]} "{name}" is invalid: ' + "; ".join(problems)
            )
        labels = (body.get("metadata") or {}).get("labels") or {}
        if self.require_queue and kind == "TrainJob" and not labels.get("kueue.x-k8s.io/queue-name"):
            return self._status(
                422, "Invalid",
                f'{key[2]}.{key[0]} "{name}" is forbidden: ValidatingAdmissionPolicy \'require-queue-name\' with '
                "binding 'require-queue-name' denied request: jobs in this namespace must carry the label "
                "kueue.x-k8s.io/queue-name",
            )  # fmt: skip
        if self.admission is not None and kind == "TrainJob":
            from vap import denials

            denied = denials(self.admission, body)
            if denied:
                policy = self.admission["metadata"]["name"]
                return self._status(
                    403,
                    "Forbidden",
                    f"{key[2]}.{key[0]} \"{name}\" is forbidden: ValidatingAdmissionPolicy '{policy}' with binding "
                    f"'{policy}' denied request: {denied[0]}",
                )
        job_key = (key[2], ns, name)
        if job_key in self.jobs:
            return self._status(409, "AlreadyExists", f'{key[2]}.{key[0]} "{name}" already exists')
        obj = json.loads(json.dumps(body))
        obj["metadata"] |= {"namespace": ns, "uid": f"uid-{name}", "creationTimestamp": _now()}
        self.jobs[job_key] = obj
        self.polls[job_key] = 0
        self.created[job_key] = time.monotonic()
        self._event(ns, kind, name, "Normal", "Created", f"{kind} {name} created")
        return 201, obj, "application/json"

    def _log_text(self, pod: str, query: dict[str, list[str]]) -> str:
        """The pod's log as the kubelet serves it: ``sinceSeconds``, then ``tailLines``, then ``limitBytes``."""
        lines = self.logs[pod]
        if "sinceSeconds" in query:
            since = time.time_ns() - int(query["sinceSeconds"][0]) * 10**9
            lines = [(t, line) for t, line in lines if t >= since]
        if "sinceTime" in query:  # RFC 3339; the kubelet keeps lines at or after it
            whole, _, frac = query["sinceTime"][0].rstrip("Z").partition(".")
            since = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(f"{frac:0<9}")
            lines = [(t, line) for t, line in lines if t >= since]
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"][0]) :] if int(query["tailLines"][0]) else []
        stamps = _flag(query, "timestamps")
        text = "".join((self._stamp(t) + " " if stamps else "") + line + "\n" for t, line in lines)
        if "limitBytes" in query:
            text = text.encode()[: int(query["limitBytes"][0])].decode(errors="ignore")
        self.served["log_bytes"] += len(text.encode())
        return text

    @staticmethod
    def _stamp(t: int) -> str:
        """RFC 3339 with nanoseconds (``t`` in ns), trailing zeros dropped (Go's RFC3339Nano, as the kubelet writes)."""
        frac = f"{t % 10**9:09d}".rstrip("0")
        return (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + (f".{frac}" if frac else "") + "Z"
        )

    def _log(self, pod: str, lines: list[str]) -> None:
        """The pod has now logged ``lines`` (the ones it had are kept with their times)."""
        have = self.logs.setdefault(pod, [])
        for line in lines[len(have) :]:
            have.append((time.time_ns(), line))

    # -- the life cycle --------------------------------------------------------------------------
    def _event(self, ns: str, kind: str, name: str, type_: str, reason: str, message: str) -> None:
        n = len(self.events)
        self.resource_version += 1
        self.events.append(
            {
                "metadata": {
                    "name": f"{name}.{n}",
                    "namespace": ns,
                    "uid": f"ev-{n}",
                    "resourceVersion": str(self.resource_version),
                },
                "involvedObject": {"kind": kind, "name": name, "namespace": ns},
                "type": type_,
                "reason": reason,
                "message": message,
                "lastTimestamp": _now(),
            }
        )

    def _pod_names(self, key, obj) -> list[str]:
        name = obj["metadata"]["name"]
        if key[2] == "trainjobs":
            nodes = obj["spec"].get("trainer", {}).get("numNodes", 1)
            return [f"{name}-node-{i}-0" for i in range(nodes)]
        workers = obj["spec"]["pytorchReplicaSpecs"].get("Worker", {}).get("replicas", 0)
        return [f"{name}-master-0"] + [f"{name}-worker-{i}" for i in range(workers)]

    def _set_pods(self, key, obj, phase: str) -> None:
        _, _, label, container = _KINDS[key]
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        for pod in self._pod_names(key, obj):
            if pod not in self.pods:
                self._event(ns, "Pod", pod, "Normal", "Scheduled", f"assigned {ns}/{pod} to gpu-node")
            self.pods[pod] = {
                "metadata": {"name": pod, "namespace": ns, "labels": {label: name}, "uid": f"uid-{pod}"},
                "spec": {"containers": [{"name": container, "image": "teacherlm"}]},
                "status": {"phase": phase},
            }

    def _advance(self, key, job_key) -> dict[str, Any]:
        obj = self.jobs[job_key]
        kind, succeeded, _, _ = _KINDS[key]
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        script = self.script.get(name, self.default_script)
        pods = self._pod_names(key, obj)
        conditions: list[dict[str, Any]] = []
        if script == "queued" and time.monotonic() - self.created[job_key] < self.queue_s:
            obj["status"] = {
                "conditions": [self._condition("Suspended", "Suspended", "TrainJob is suspended")]
            }
            return obj  # no pods until Kueue admits it
        self.polls[job_key] += 1
        step = self.polls[job_key]
        if script == "preempted" and 5 <= step < 5 + self.preempted_polls:  # ran 2 polls, then evicted
            if step == 5:
                for pod in pods:
                    self.pods.pop(pod, None)
                self._event(ns, kind, name, "Normal", "Stopped",
                            "Preempted to accommodate a workload (UID: 42) due to prioritization in the ClusterQueue")  # fmt: skip
            obj["status"] = {
                "conditions": [self._condition("Suspended", "Preempted", "TrainJob is suspended")]
            }
            return obj
        if script == "preempted" and step >= 5 + self.preempted_polls:  # readmitted: starts over from Pending
            step = step - self.preempted_polls - 3
        if script in ("queued", "preempted"):  # admitted from here on
            conditions.append(self._condition("Suspended", "Resumed", "TrainJob is resumed", status="False"))
        if step == 2:
            self._set_pods(key, obj, "Pending")
        elif step >= 3 and script == "long":
            done = step >= 3 + self.long_polls
            self._set_pods(key, obj, "Succeeded" if done else "Running")
            n = (step - 2) * self.lines_per_poll
            self._log(pods[0], [f"[student] step {i} loss {7 - 0.001 * i:.4f}" for i in range(1, n + 1)])
            if step % 3 == 0:
                self._event(ns, "Pod", pods[0], "Normal", "Progress", f"poll {step}")
            if done:
                conditions.append(
                    self._condition(succeeded, "JobSetCompleted", "jobset completed successfully")
                )
        elif step >= 3:
            terminal = (step >= 4 and script in ("succeed", "fail", "queued")) or (
                step >= 6 and script == "preempted"
            )
            phase = "Running" if not terminal else ("Failed" if script == "fail" else "Succeeded")
            self._set_pods(key, obj, phase)
            if kind == "PyTorchJob":
                conditions.append(
                    self._condition("Running", "PyTorchJobRunning", f"{kind} {name} is running")
                )
            lines = [f"[student] step {i}/4 loss {7 - 0.1 * i:.4f}" for i in range(1, min(step - 1, 5))]
            if terminal and script != "fail":
                conditions.append(
                    self._condition(succeeded, "JobSetCompleted", "jobset completed successfully")
                )
                lines.append("training done")
            elif terminal:
                lines += ["Traceback (most recent call last):", "RuntimeError: CUDA out of memory"]
                conditions.append(
                    self._condition("Failed", "JobSetFailed", "jobset failed: node-0 exited with 1")
                )
                if step == 4:
                    self._event(ns, "Pod", pods[0], "Warning", "BackOff", "container node exited with code 1")
            self._log(pods[0], lines)
        obj["status"] = {"conditions": conditions} if conditions else {}
        if (
            kind == "TrainJob" and script == "succeed" and step >= 3
        ):  # HF Trainer's progress (TrainJobStatus gate)
            done = any(c["type"] == succeeded for c in conditions)
            obj["status"]["trainerStatus"] = {
                "progressPercentage": 100 if done else 50, "estimatedRemainingSeconds": 0 if done else 3900,
                "metrics": [{"name": "loss", "value": "6.6" if done else "6.8"}],
                "lastUpdatedTime": _now(),
            }  # fmt: skip
        return obj

    @staticmethod
    def _condition(type_: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": _now(),
        }
