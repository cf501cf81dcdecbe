import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from teacherlm_core.engines import GenerationParams
from teacherlm_core.engines.openai import OpenAIEngine
from teacherlm_core.errors import EngineError


class FakeCompletions(ThreadingHTTPServer):
    """Speaks ``POST /v1/completions``; the first ``flaky`` answers per prompt are 429 then 503."""

    daemon_threads = True

    def __init__(self, flaky: int = 2, delay: float = 0.02):
        self.flaky, self.delay = flaky, delay
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
        if body["prompt"] == "bad request":
            return self._send(400, {"error": "bad"})
        if n <= srv.flaky:
            return self._send(429 if n == 1 else 503, {"error": "busy"})
        text = f" echo {body['prompt'][-5:]} seed {body.get('seed')}."
        self._send(
            200, {"choices": [{"text": text, "finish_reason": "stop"}], "usage": {"completion_tokens": 7}}
        )

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_server():
    srv = FakeCompletions()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def test_retries_429_and_5xx_with_bounded_concurrency(fake_server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    engine = OpenAIEngine(
        "teacher", base_url=fake_server.url, api_key_env="MY_KEY", max_concurrency=4, backoff=0.01
    )
    prompts = [f"prompt number {i:03d}" for i in range(20)]
    gens = engine.generate(prompts, [GenerationParams(seed=i) for i in range(20)])
    assert [g.text for g in gens] == [f" echo {p[-5:]} seed {i}." for i, p in enumerate(prompts)]
    assert all(g.num_tokens == 7 for g in gens)
    assert set(fake_server.seen.values()) == {3}  # 429, 503, then success
    assert 1 < fake_server.max_in_flight <= 4
    assert fake_server.auth == {"Bearer sk-test-123"}
    assert "sk-test-123" not in repr(engine.__dict__)  # the key is read when needed, not stored


def test_gives_up_with_a_clear_error(fake_server):
    fake_server.flaky = 100
    engine = OpenAIEngine("teacher", base_url=fake_server.url, max_attempts=2, backoff=0.01)
    with pytest.raises(EngineError, match="failed after 2 attempts"):
        engine.generate(["x"], GenerationParams())
    with pytest.raises(EngineError, match="HTTP 400"):
        engine.generate(["bad request"], GenerationParams())
    with pytest.raises(EngineError, match="base-url"):
        OpenAIEngine("teacher")


@pytest.mark.integration
@pytest.mark.slow
def test_against_a_real_vllm_server(tiny_model, tmp_path):
    """``vllm serve`` on CPU, on loopback; the augment CLI drives it through --engine openai."""
    from servers import free_port

    port = free_port()
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1"}
    log = open(tmp_path / "vllm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        # (the `vllm serve` CLI looks up the distribution name `vllm`, absent beside vllm-cpu)
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_model, "--host", "127.0.0.1", "--port", str(port),
         "--served-model-name", "tiny", "--dtype", "float32", "--max-model-len", "512",
         "--no-enable-chunked-prefill"],  # see teacherlm_core.engines.vllm
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "vllm.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "vllm serve did not come up"
                time.sleep(1)
        engine = OpenAIEngine("tiny", base_url=f"http://127.0.0.1:{port}/v1")
        a = engine.generate(["Q: Is ice cold?", "Q: hello"], GenerationParams(max_new_tokens=8))
        b = engine.generate(["Q: Is ice cold?"], GenerationParams(max_new_tokens=8))
        assert a[0] == b[0] and a[0].num_tokens == 8 and a[0].finish_reason == "length"
        from teacherlm_core.data import build_builtin

        build_builtin(tmp_path / "d", per_task=6, seed=0)
        res = subprocess.run(
            [sys.executable, "-m", "teacherlm_core", "augment", "--model", "tiny", "--engine", "openai",
             "--base-url", f"http://127.0.0.1:{port}/v1", "--input", str(tmp_path / "d" / "train.jsonl"),
             "--output", str(tmp_path / "out"), "--max-new-tokens", "16", "--max-retries", "0"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert (
            manifest["counts"]["input"]
            == manifest["counts"]["output"] + manifest["counts"]["quarantined"]
            > 0
        )
        assert manifest["tokens_generated"] > 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
