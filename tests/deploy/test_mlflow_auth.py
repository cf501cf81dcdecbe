"""MLflow's basic auth as the manifests switch it on, run for real (issue 15 item 8, issue 24 item 11).

The mlflow Deployment's start script turns the auth app on when the optional Secret
teacherlm-mlflow-auth (the pipelines' login) is mounted, with the admin from the Secret
teacherlm-mlflow-admin, and makes the pipelines' user a plain (non-admin) user. Here that very
snippet of the rendered manifest runs in bash (paths moved under a temp dir, SQLite for
PostgreSQL), a real ``mlflow server`` starts with what it produced, and teacherlm's tracker logs
in with the pipelines' Secret as pipeline steps do.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import httpx
import pytest
from servers import MLflowServer

try:
    import deploy_helpers as dh
except ImportError:  # tests/ imported as a package
    from tests import deploy_helpers as dh

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PIPELINES = {"MLFLOW_TRACKING_USERNAME": "teacherlm", "MLFLOW_TRACKING_PASSWORD": "a-long-random-password-1"}
ADMIN = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "another-long-password-2"}


def _auth_snippet() -> str:
    (deployment,) = [
        d
        for d in dh.render("prod")[1]
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "teacherlm-mlflow"
    ]
    script = deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]
    start = script.index("auth=()")
    return script[start : script.index("\nfi\n", start) + 4]


def _run_snippet(tmp_path, auth: dict | None, admin: dict | None) -> subprocess.CompletedProcess:
    snippet = _auth_snippet()
    for name, secret in (("mlflow-auth", auth), ("mlflow-admin", admin)):
        mounted = tmp_path / "secrets" / name
        mounted.mkdir(parents=True, exist_ok=True)
        for key, value in (secret or {}).items():
            (mounted / key).write_text(value)
        snippet = snippet.replace(f"/run/secrets/{name}", str(mounted))
    snippet = (
        snippet.replace("/tmp/basic_auth.ini", str(tmp_path / "basic_auth.ini"))
        .replace("postgresql://teacherlm-postgres:5432/mlflow", f"sqlite:///{tmp_path / 'auth.db'}")
        .replace("\npython - ", f"\n{sys.executable} - ")
        .replace("  python - ", f"  {sys.executable} - ")
    )
    report = f"{sys.executable} -c \"import json, os, sys; print(json.dumps([{{k: v for k, v in os.environ.items() if k.startswith(('MLFLOW_AUTH', 'MLFLOW_FLASK'))}}, sys.argv[1:]]))\" \"${{auth[@]}}\""
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{snippet}\n{report}"], capture_output=True, text=True, timeout=120
    )


def _env_args(proc: subprocess.CompletedProcess) -> tuple[dict[str, str], list[str]]:
    assert proc.returncode == 0, proc.stderr
    env, args = json.loads(proc.stdout.strip().splitlines()[-1])
    return env, args


def test_without_the_secret_mlflow_runs_without_auth(tmp_path):
    env, args = _env_args(_run_snippet(tmp_path, None, None))
    assert env == {} and args == []


@pytest.mark.parametrize("admin", [None, PIPELINES], ids=["no-admin-secret", "admin-is-the-pipelines-user"])
def test_the_pipelines_login_never_doubles_as_the_admin(tmp_path, admin):
    """Auth on without a separate admin Secret (the layout before issue 24), or both Secrets naming one
    user: MLflow does not start, and says why in one line."""
    proc = _run_snippet(tmp_path, PIPELINES, admin)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert proc.returncode == 1 and len(lines) == 1 and "teacherlm-mlflow-admin" in lines[0], proc.stderr


def test_pipeline_steps_log_in_as_a_plain_user_with_edit_where_given(tmp_path, monkeypatch, caplog):
    import mlflow

    from teacherlm_core.tracking import Tracker

    env, args = _env_args(_run_snippet(tmp_path, PIPELINES, ADMIN))
    assert args == ["--app-name", "basic-auth"]
    _env_args(_run_snippet(tmp_path, PIPELINES, ADMIN))  # every start: the user exists already
    server = MLflowServer(tmp_path / "mlflow", args=args, env=env).start()
    as_admin = (ADMIN["MLFLOW_TRACKING_USERNAME"], ADMIN["MLFLOW_TRACKING_PASSWORD"])
    as_pipelines = (PIPELINES["MLFLOW_TRACKING_USERNAME"], PIPELINES["MLFLOW_TRACKING_PASSWORD"])
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
        for key in PIPELINES:
            monkeypatch.delenv(key, raising=False)
        with caplog.at_level(logging.WARNING), Tracker("auth-test", run_name="anonymous") as t:
            t.log_params({"x": 1})
        assert (
            not t.enabled and "401" in caplog.text
        ) or "Unauthorized" in caplog.text  # refused, work goes on
        for key, value in PIPELINES.items():
            monkeypatch.setenv(key, value)
        with Tracker("auth-test", run_name="logged-in") as t:  # its own experiment: it may log there
            t.log_params({"max_new_tokens": 256})
        assert t.enabled and t.run_id
        run = mlflow.MlflowClient(server.uri).get_run(t.run_id)
        assert run.data.params == {"max_new_tokens": "256"}

        api = f"{server.uri}/api/2.0/mlflow"
        user = httpx.get(f"{api}/users/get", params={"username": "teacherlm"}, auth=as_admin, timeout=30)
        assert user.status_code == 200 and user.json()["user"]["is_admin"] is False
        # Not an admin: it may not make users, nor write into an experiment it was not given.
        made = httpx.post(
            f"{api}/users/create", json={"username": "x", "password": "p" * 16}, auth=as_pipelines, timeout=30
        )
        assert made.status_code == 403
        other = httpx.post(f"{api}/experiments/create", json={"name": "admins"}, auth=as_admin, timeout=30)
        experiment_id = other.json()["experiment_id"]
        new_run = {"experiment_id": experiment_id, "start_time": 0}
        assert (
            httpx.post(f"{api}/runs/create", json=new_run, auth=as_pipelines, timeout=30).status_code == 403
        )
        # MLflow 3's grant API (docs/security.md); EDIT lets it log runs there, not delete or manage.
        grant = {
            "username": "teacherlm",
            "resource_type": "experiment",
            "resource_id": experiment_id,
            "permission": "EDIT",
        }
        granted = httpx.post(
            f"{server.uri}/api/3.0/mlflow/users/permissions/grant", json=grant, auth=as_admin, timeout=30
        )
        assert granted.status_code == 200, granted.text
        assert (
            httpx.post(f"{api}/runs/create", json=new_run, auth=as_pipelines, timeout=30).status_code == 200
        )
    finally:
        server.stop()
