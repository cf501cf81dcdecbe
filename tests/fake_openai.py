"""A stand-in OpenAI-compatible completions server on loopback (``POST /v1/completions``).

It answers like ``vllm serve``: 429/503 for the first ``flaky`` tries of each prompt, HTTP 400 with
vLLM's ``ErrorResponse`` body for a prompt longer than ``max_prompt_chars`` (vLLM's "maximum
context length" message), 401 for the prompt ``unauthorised``, else a short completion.
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
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv: FakeCompletions = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
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
