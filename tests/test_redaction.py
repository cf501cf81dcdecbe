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
