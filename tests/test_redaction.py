"""What counts as a secret (issue 15 item 7): neither too eager nor too lax, wherever anything is written."""

from __future__ import annotations

import json
import logging

import pytest

from teacherlm_core.redaction import (
    REDACTED,
    RedactingFilter,
    is_secret_name,
    redact_document,
    redact_text,
    strip_url_credentials,
)
from teacherlm_core.tracking import redact

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    "name",
    ["max_new_tokens", "tokens_per_second", "author", "authors", "num_tokens", "tokenizer", "keyword",
     "api_key_env", "monkey", "access_log", "s3_endpoint", "TEACHERLM_S3_SECRET", "primary_key_column"],
)  # fmt: skip
def test_names_that_are_not_secret(name):
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "OPENAI_API_KEY", "apiKey", "HF_TOKEN", "password",
     "MLFLOW_TRACKING_PASSWORD", "db.passwd", "client_secret", "Authorization", "auth", "private_key",
     "credentials", "x-api-key", "GITHUB_TOKEN"],
)  # fmt: skip
def test_names_that_are_secret(name):
    assert is_secret_name(name)


def test_mlflow_params_keep_what_is_not_secret(monkeypatch):
    """False positives: settings named like tokens or authors, and an endpoint containing a short key."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minio")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "minio123")
    out = redact({"max_new_tokens": 256, "tokens_per_second": 41.5, "author": "ada",
                  "endpoint": "http://minio:9000", "bucket": "minio-data", "api_key_env": "OPENAI_API_KEY"})  # fmt: skip
    assert out == {"max_new_tokens": "256", "tokens_per_second": "41.5", "author": "ada",
                   "endpoint": "http://minio:9000", "bucket": "minio-data", "api_key_env": "OPENAI_API_KEY"}  # fmt: skip


def test_mlflow_params_hide_what_is_secret(monkeypatch):
    """False negatives: URL credentials, secret names at any depth, a long key anywhere, a short key whole."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdef")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minio")
    out = redact({"base_url": "https://user:hunter2@vllm.internal:8000/v1",
                  "tracking": {"uri": "http://admin:pw@mlflow:5000", "password": "p"},
                  "note": "called with sk-live-0123456789abcdef", "s3_user": "minio",
                  "api_key": "abc", "webhook": "https://hooks.example/x?token=abc123&channel=ml"})  # fmt: skip
    assert out == {
        "base_url": "https://vllm.internal:8000/v1",
        "tracking.uri": "http://mlflow:5000",
        "tracking.password": REDACTED,
        "note": f"called with {REDACTED}",
        "s3_user": REDACTED,  # the whole value is the key
        "api_key": REDACTED,
        "webhook": f"https://hooks.example/x?token={REDACTED}&channel=ml",
    }


def test_url_credentials_are_stripped_inside_any_text():
    text = "GET https://bob:s3cr3t@host/a and s3://AKIA:xyz@bucket/k, mail me@example.org, http://host/p@q"
    assert strip_url_credentials(text) == (
        "GET https://host/a and s3://bucket/k, mail me@example.org, http://host/p@q"
    )
    # the user info ends at the authority's last '@', as a URL parser reads it
    assert strip_url_credentials("to http://bob:p@ss@w0rd@mlflow:5000/x ok") == "to http://mlflow:5000/x ok"


def test_credentials_of_urls_in_the_environment_are_masked_in_every_encoding(monkeypatch):
    import base64

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://admin:p%40ss-w0rd-long@mlflow:5000")
    basic = base64.b64encode(b"admin:p@ss-w0rd-long").decode()
    text = f"server said: Authorization: Basic {basic}; password p@ss-w0rd-long, p%40ss-w0rd-long"
    assert (
        redact_text(text) == f"server said: Authorization: Basic {REDACTED}; password {REDACTED}, {REDACTED}"
    )


def test_documents_keep_their_structure(monkeypatch):
    """A dataset column named ``password`` keeps its type in a plan; only string values are cleaned."""
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "correct-horse-battery")
    doc = {"columns": {"password": "string", "token": "int"}, "input": "https://u:p@h/x",
           "notes": ["uses correct-horse-battery"]}  # fmt: skip
    assert redact_document(doc) == {"columns": {"password": "string", "token": "int"}, "input": "https://h/x",
                                    "notes": [f"uses {REDACTED}"]}  # fmt: skip


def test_log_lines_are_redacted(monkeypatch, caplog):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnop")
    logger = logging.getLogger("teacherlm.test")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.WARNING):
        logger.warning("teacher at %s with %s", "https://u:pw@vllm:8000", "hf_abcdefghijklmnop")
    assert caplog.records[-1].getMessage() == f"teacher at https://vllm:8000 with {REDACTED}"
    assert redact_text("max_new_tokens=256") == "max_new_tokens=256"


def test_nothing_written_by_an_augmentation_holds_a_credential(tmp_path, monkeypatch):
    """plan.json, markers, manifest.json and the dataset card of a run against an endpoint with
    credentials in its URL: neither the password nor the API key appears in any of them."""
    from fake_engines import ScriptedEngine

    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.data import build_builtin

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop")
    build_builtin(tmp_path / "in", per_task=3, seed=0)
    cfg = AugmentConfig(model="scripted-teacher", input=str(tmp_path / "in" / "train.jsonl"),
                        output=str(tmp_path / "out"), engine="openai",
                        base_url="https://alice:hunter2-pass@vllm.internal:8000/v1")  # fmt: skip
    augment(cfg, engine=ScriptedEngine)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file() and p.suffix != ".parquet"]
    assert {p.name for p in written} >= {"plan.json", "manifest.json", "README.md"}
    for path in written:
        text = path.read_text()
        assert "hunter2-pass" not in text and "alice" not in text, path
        assert "sk-test-abcdefghijklmnop" not in text, path
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["base_url"] == "https://vllm.internal:8000/v1"
    assert manifest["config"]["max_new_tokens"] == cfg.max_new_tokens  # settings stay readable


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_engine_errors_and_cli_errors_never_show_url_credentials(tmp_path):
    """An OpenAI-compatible endpoint given as https://user:password@host: the engine's errors (shown
    on stderr, written into quarantine reasons) and the CLI's one-line error name the host only."""
    import subprocess
    import sys

    from teacherlm_core.engines import GenerationParams
    from teacherlm_core.engines.openai import OpenAIEngine
    from teacherlm_core.errors import EngineError

    engine = OpenAIEngine(
        "t", base_url="http://alice:hunter2-pass@127.0.0.1:9/v1", max_attempts=1, backoff=0.01
    )
    with pytest.raises(EngineError) as err:
        engine.generate(["x"], GenerationParams())
    assert "hunter2-pass" not in str(err.value) and "http://127.0.0.1:9/v1/completions" in str(err.value)

    (tmp_path / "in.jsonl").write_text('{"id": "a", "task": "t", "question": "q?", "answer": "yes"}\n')
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "augment", "--teacher", "t", "--engine", "openai",
         "--base-url", "http://alice:hunter2-pass@127.0.0.1:9/v1", "--input", str(tmp_path / "in.jsonl"),
         "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode != 0 and "hunter2-pass" not in res.stderr + res.stdout, res.stderr[-2000:]


def test_a_trainjob_never_carries_url_credentials(tmp_path, monkeypatch):
    from fake_k8s import FakeK8s

    from teacherlm_core.errors import ConfigError
    from teacherlm_core.run_context import IMAGES
    from teacherlm_core.stages._training import stage_launch
    from teacherlm_core.train import load_config
    from teacherlm_core.train.runner import recipe_trainjob

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://admin:pw-123456@mlflow:5000")
    cfg = stage_launch(load_config("student", "student_tiny", {"model": "org/base", "data": str(tmp_path / "t.jsonl"),
                      "output": str(tmp_path / "out")}), 1, 1, "zero2", 0)  # fmt: skip
    with FakeK8s() as k8s, pytest.raises(ConfigError, match=r"MLFLOW_TRACKING_URI: .*credentials"):
        recipe_trainjob(
            "student", cfg, image=IMAGES["train"], run_id="r" * 16, api_client=k8s.api_client(), poll_s=0
        )
    assert not k8s.jobs


def test_every_log_line_and_traceback_of_a_process_is_redacted_without_the_cli(monkeypatch, caplog):
    """A KFP component's process never runs the CLI: MLflow's, urllib3's and our own lines are clean anyway."""
    import subprocess
    import sys

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://admin:hunter2-pass@mlflow:5000")
    # Once mlflow is imported (by any earlier test) its logger stops propagating to caplog's root handler.
    monkeypatch.setattr(logging.getLogger("mlflow"), "propagate", True)
    with caplog.at_level(logging.WARNING):
        logging.getLogger("urllib3.connectionpool").warning(
            "Retrying %s", "http://admin:hunter2-pass@mlflow:5000/api"
        )
        try:
            raise RuntimeError("at http://admin:hunter2-pass@mlflow:5000")
        except RuntimeError:
            logging.getLogger("mlflow").exception("request failed")
    assert caplog.records[0].getMessage() == "Retrying http://mlflow:5000/api"
    assert "hunter2-pass" not in caplog.text and "RuntimeError" in caplog.text
    code = "import teacherlm_core; raise RuntimeError('to http://admin:hunter2-pass@mlflow:5000')"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "RuntimeError: to http://mlflow:5000" in res.stderr, res.stderr


def test_errors_are_redacted_wherever_they_are_shown(monkeypatch):
    import base64

    from teacherlm_core.train.k8s import JobFailed

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter2-pass-long")
    echoed = base64.b64encode(b"hunter2-pass-long").decode()
    err = JobFailed(f"TrainJob failed\n--- node-0 ---\nlogin with hunter2-pass-long ({echoed})")
    assert str(err) == f"TrainJob failed\n--- node-0 ---\nlogin with {REDACTED} ({REDACTED})"


@pytest.mark.parametrize(
    "env",
    ["HF_TOKEN=hf_abcdefgh", "MLFLOW_TRACKING_URI=http://u:pw@mlflow:5000", "NOTE=sk-known-secret-value"],
)
def test_a_plain_env_that_looks_like_a_secret_never_reaches_a_job_spec(monkeypatch, env):
    import subprocess
    import sys

    monkeypatch.setenv("OPENAI_API_KEY", "sk-known-secret-value")
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "train", "submit", "--name", "t1", "--image", "img:1",
         "--env", env, "--dry-run", "--", "teacherlm", "train", "teacher"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "--secret-env" in res.stderr, res.stderr
    assert env.partition("=")[2] not in res.stdout + res.stderr
