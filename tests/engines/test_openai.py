import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from fake_openai import FakeCompletions

from teacherlm_core.engines import GenerationParams
from teacherlm_core.engines.openai import OpenAIEngine
from teacherlm_core.errors import EngineError


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
    with pytest.raises(EngineError, match="HTTP 401"):  # the whole run's problem: stop
        engine.generate(["unauthorised"], GenerationParams())
    with pytest.raises(EngineError, match="base-url"):
        OpenAIEngine("teacher")


def test_a_request_the_server_refuses_is_that_requests_problem(fake_server):
    """HTTP 400 for one prompt (too long for the model) fails that request alone, with the server's reason."""
    fake_server.flaky = 0
    engine = OpenAIEngine("teacher", base_url=fake_server.url, backoff=0.01)
    gens = engine.generate(["short one", "word " * 200, "short two"], GenerationParams())
    assert [g.finish_reason for g in gens] == ["stop", "error", "stop"]
    assert "HTTP 400" in gens[1].error and "maximum context length is 64 tokens" in gens[1].error


def test_answers_that_are_not_completions_name_the_endpoint_and_keep_every_usable_text(fake_server):
    fake_server.flaky = 0
    engine = OpenAIEngine("teacher", base_url=fake_server.url, backoff=0.01)
    with pytest.raises(EngineError) as err:  # a proxy's login page: the whole run's problem, no retry helps
        engine.generate(["html"], GenerationParams())
    assert f"{fake_server.url}/completions answered HTTP 200 with text/html" in str(err.value)
    assert "Sign in" in str(err.value) and fake_server.seen["html"] == 1
    gens = engine.generate(["no-choices", "null-tokens", "fine"], GenerationParams())
    assert [g.finish_reason for g in gens] == ["error", "stop", "stop"]
    assert "no choices" in gens[0].error and gens[1].text == " kept" and gens[1].num_tokens == 0


def test_credentials_a_server_echoes_are_redacted_in_every_encoding(fake_server, monkeypatch):
    import base64

    fake_server.flaky = 0
    monkeypatch.setenv("MY_KEY", "sk-echoed-abcdefgh")  # a name that does not say it is secret
    url = fake_server.url.replace("http://", "http://alice:hunter2-pass@")
    for engine in (
        OpenAIEngine("t", base_url=url),
        OpenAIEngine("t", base_url=fake_server.url, api_key_env="MY_KEY"),
    ):
        with pytest.raises(EngineError, match="HTTP 401") as err:
            engine.generate(["echo-auth"], GenerationParams())
        message = str(err.value)
        assert "bad credentials" in message
        for secret in (
            "hunter2-pass",
            base64.b64encode(b"alice:hunter2-pass").decode(),
            "sk-echoed-abcdefgh",
        ):
            assert secret not in message, message
    assert any(a.startswith("Basic ") for a in fake_server.auth)  # the URL's user info went out as Basic auth


@pytest.mark.integration
@pytest.mark.slow
def test_against_a_real_vllm_server(tiny_teacher, tmp_path):
    """``vllm serve`` on CPU, on loopback; the augment CLI drives it through --engine openai."""
    from servers import free_port

    port = free_port()
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1"}
    log = open(tmp_path / "vllm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        # (the `vllm serve` CLI looks up the distribution name `vllm`, absent beside vllm-cpu)
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_teacher, "--host", "127.0.0.1", "--port", str(port),
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
             "--output", str(tmp_path / "out"), "--max-new-tokens", "40", "--temperature", "0"],
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
        assert manifest["counts"]["output"] >= 0.9 * manifest["counts"]["input"]  # really augmented
        rows = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
        assert all(len(r["chain_of_thought"].split()) >= 3 for r in rows)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
