"""A stand-in OpenAI-compatible completions server on loopback (``POST /v1/completions``).

It answers like ``vllm serve``: 429/503 for the first ``flaky`` tries of each prompt, HTTP 400 with
vLLM's ``ErrorResponse`` body for a prompt longer than ``max_prompt_chars`` (vLLM's "maximum
context length" message), 401 for the prompt ``unauthorised``, else a short completion.

It also speaks the batch API (as hosted batch services and ``vllm run-batch`` do): ``POST /v1/files``
(multipart upload), ``POST /v1/batches``, ``GET /v1/batches/{id}`` (``validating`` ->
``in_progress`` -> ``completed`` over three reads) and ``GET /v1/files/{id}/content``; each
request line is answered as ``/v1/completions`` would answer it (never flaky: a batch retries
inside), one output line per request with ``custom_id``, ``response`` (``status_code``, ``body``)
and ``error``.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeCompletions"]


class FakeCompletions(ThreadingHTTPServer):
    """Speaks ``POST /v1/completions``; the first ``flaky`` answers per prompt are 429 then 503."""

    daemon_threads = True

    def __init__(self, flaky: int = 2, delay: float = 0.02):
        self.flaky, self.delay = flaky, delay
        self.max_prompt_chars = 400
        self.seen: dict[str, int] = {}
        self.auth: set[str] = set()
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        super().__init__(("127.0.0.1", 0), Handler)

    def answer(self, body: dict) -> tuple[int, dict]:
        """What ``POST /v1/completions`` answers ``body`` (past the flaky tries)."""
        if len(body["prompt"]) > self.max_prompt_chars:  # vLLM's answer to a prompt longer than its context
            message = (f"This model's maximum context length is 64 tokens. However, your prompt contains "
                       f"{len(body['prompt'].split())} input tokens, which exceeds this limit even without any "
                       "output tokens. Please reduce the length of the input prompt.")  # fmt: skip
            return 400, {
                "error": {"message": message, "type": "BadRequestError", "param": "input_tokens", "code": 400}
            }
        text = f" echo {body['prompt'][-5:]} seed {body.get('seed')}."
        return 200, {"choices": [{"text": text, "finish_reason": "stop"}], "usage": {"completion_tokens": 7}}

    def run_batch(self, batch: dict) -> None:
        lines = []
        for n, raw in enumerate(self.files[batch["input_file_id"]].decode().splitlines()):
            request = json.loads(raw)
            code, body = self.answer(request["body"])
            lines.append({"id": f"batch_req_{n}", "custom_id": request["custom_id"],
                          "response": {"status_code": code, "request_id": f"req-{n}", "body": body}, "error": None})  # fmt: skip
        out = f"file-{len(self.files)}"
        self.files[out] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        batch |= {"status": "completed", "output_file_id": out,
                  "request_counts": {"total": len(lines), "completed": len(lines), "failed": 0}}  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        srv: FakeCompletions = self.server
        parts = self.path.strip("/").split("/")  # v1/batches/{id} | v1/files/{id}/content
        with srv.lock:
            if parts[:2] == ["v1", "batches"] and parts[2] in srv.batches:
                batch = srv.batches[parts[2]]
                batch["reads"] += 1
                if batch["status"] == "validating":
                    batch["status"] = "in_progress"
                elif batch["status"] == "in_progress" and batch["reads"] >= 3:
                    srv.run_batch(batch)
                return self._send(200, {k: v for k, v in batch.items() if k != "reads"})
            if parts[:2] == ["v1", "files"] and parts[-1] == "content" and parts[2] in srv.files:
                data = srv.files[parts[2]]
                self.send_response(200)
                self.send_header("Content-Type", "application/jsonl")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
        return self._send(
            404, {"error": {"message": f"no {self.path}", "type": "NotFoundError", "code": 404}}
        )

    def _upload(self, raw: bytes) -> None:
        from email.parser import BytesParser

        srv: FakeCompletions = self.server
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                for p in BytesParser().parsebytes(head + raw).get_payload()}  # fmt: skip
        with srv.lock:
            file_id = f"file-{len(srv.files)}"
            srv.files[file_id] = form["file"]
        self._send(200, {"id": file_id, "object": "file", "bytes": len(form["file"]), "created_at": int(time.time()),
                         "filename": "batch.jsonl", "purpose": form["purpose"].decode(), "status": "processed"})  # fmt: skip

    def do_POST(self):
        srv: FakeCompletions = self.server
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/files":
            return self._upload(raw)
        body = json.loads(raw)
        if self.path == "/v1/batches":
            with srv.lock:
                batch_id = f"batch-{len(srv.batches)}"
                srv.batches[batch_id] = {
                    "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "input_file_id": body["input_file_id"],
                    "completion_window": body["completion_window"], "status": "validating", "created_at": int(time.time()),
                    "reads": 0,
                }  # fmt: skip
            return self._send(200, {k: v for k, v in srv.batches[batch_id].items() if k != "reads"})
        with srv.lock:
            srv.auth.add(self.headers.get("Authorization", ""))
            n = srv.seen[body["prompt"]] = srv.seen.get(body["prompt"], 0) + 1
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        time.sleep(srv.delay)
        with srv.lock:
            srv.in_flight -= 1
        if len(body["prompt"]) > srv.max_prompt_chars:  # vLLM's answer to a prompt longer than its context
            message = (f"This model's maximum context length is 64 tokens. However, your prompt contains "
                       f"{len(body['prompt'].split())} input tokens, which exceeds this limit even without any "
                       "output tokens. Please reduce the length of the input prompt.")  # fmt: skip
            error = {"message": message, "type": "BadRequestError", "param": "input_tokens", "code": 400}
            return self._send(400, {"error": error})
        if body["prompt"] == "html":
            return self._send(200, b"<html><body>Sign in to continue</body></html>", "text/html")
        if body["prompt"] == "no-choices":
            return self._send(200, {"choices": [], "usage": {"completion_tokens": 0}})
        if body["prompt"] == "null-tokens":
            return self._send(
                200,
                {
                    "choices": [{"text": " kept", "finish_reason": "stop"}],
                    "usage": {"completion_tokens": None},
                },
            )
        if body["prompt"] == "echo-auth":
            message = f"bad credentials: {self.headers.get('Authorization')}"
            return self._send(401, {"error": {"message": message, "type": "AuthenticationError"}})
        if body["prompt"] == "unauthorised":
            return self._send(
                401, {"error": {"message": "invalid key", "type": "AuthenticationError", "code": 401}}
            )
        if n <= srv.flaky:
            return self._send(429 if n == 1 else 503, {"error": "busy"})
        text = f" echo {body['prompt'][-5:]} seed {body.get('seed')}."
        self._send(
            200, {"choices": [{"text": text, "finish_reason": "stop"}], "usage": {"completion_tokens": 7}}
        )

    def _send(self, code, obj, content_type="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
