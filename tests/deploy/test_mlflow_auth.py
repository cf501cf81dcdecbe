"""MLflow's basic auth as the manifests switch it on, run for real (issue 15 item 8).

The mlflow Deployment's start script turns the auth app on when the optional Secret
teacherlm-mlflow-auth is mounted. Here that very snippet of the rendered manifest runs in bash
(paths moved under a temp dir, SQLite for PostgreSQL), a real ``mlflow server`` starts with what it
produced, and teacherlm's tracker logs in with the Secret's keys as pipeline steps do.
"""

from __future__ import annotations

import json
import logging
import subprocess

import pytest
from servers import MLflowServer

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _auth_snippet() -> str:
    (deployment,) = [d for d in dh.render("prod")[1]
                     if d["kind"] == "Deployment" and d["metadata"]["name"] == "teacherlm-mlflow"]  # fmt: skip
    script = deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
    start = script.index("auth=()")
    return script[start : script.index("\nfi\n", start) + 4]


def _run_snippet(tmp_path, secret: dict[str, str] | None) -> tuple[dict[str, str], list[str]]:
    mounted = tmp_path / "secrets" / "mlflow-auth"
    mounted.mkdir(parents=True)
    for key, value in (secret or {}).items():
        (mounted / key).write_text(value)
    snippet = (_auth_snippet().replace("/run/secrets/mlflow-auth", str(mounted))
               .replace("/tmp/basic_auth.ini", str(tmp_path / "basic_auth.ini"))
               .replace("postgresql://teacherlm-postgres:5432/mlflow", f"sqlite:///{tmp_path / 'auth.db'}"))  # fmt: skip
    report = "python3 -c \"import json, os, sys; print(json.dumps([{k: v for k, v in os.environ.items() if k.startswith(('MLFLOW_AUTH', 'MLFLOW_FLASK'))}, sys.argv[1:]]))\" \"${auth[@]}\""
    out = subprocess.run(["bash", "-c", f"set -euo pipefail\n{snippet}\n{report}"],
                         capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    env, args = json.loads(out.stdout)
    return env, args


def test_without_the_secret_mlflow_runs_without_auth(tmp_path):
    env, args = _run_snippet(tmp_path, None)
    assert env == {} and args == []


def test_with_the_secret_mlflow_asks_for_the_login_pipeline_steps_send(tmp_path, monkeypatch, caplog):
    import mlflow

    from teacherlm_core.tracking import Tracker

    login = {"MLFLOW_TRACKING_USERNAME": "teacherlm", "MLFLOW_TRACKING_PASSWORD": "a-long-random-password-1"}
    env, args = _run_snippet(tmp_path, login)
    assert args == ["--app-name", "basic-auth"]
    server = MLflowServer(tmp_path / "mlflow", args=args, env=env).start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        for key in login:
            monkeypatch.delenv(key, raising=False)
        with caplog.at_level(logging.WARNING), Tracker("auth-test", run_name="anonymous") as t:
            t.log_params({"x": 1})
        assert (
            not t.enabled and "401" in caplog.text
        ) or "Unauthorized" in caplog.text  # refused, work goes on
        for key, value in login.items():
            monkeypatch.setenv(key, value)
        with Tracker("auth-test", run_name="logged-in") as t:
            t.log_params({"max_new_tokens": 256})
        assert t.enabled and t.run_id
        run = mlflow.MlflowClient(server.uri).get_run(t.run_id)
        assert run.data.params == {"max_new_tokens": "256"}
    finally:
        server.stop()
