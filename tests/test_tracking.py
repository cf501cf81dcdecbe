import logging

import pytest

from teacherlm_core.tracking import Tracker, default_tracking_uri, redact


def test_redact_hides_secret_names_and_values(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    out = redact(
        {"model": "tiny", "api_key": "abc", "nested": {"password": "p"}, "uri": "http://u:s3cr3t-value@h"}
    )
    assert out == {
        "model": "tiny",
        "api_key": "<redacted>",
        "nested.password": "<redacted>",
        "uri": "http://h",  # the credentials go, the URL stays
    }


def test_default_store_is_local_sqlite_under_the_workdir(tmp_path):
    assert default_tracking_uri() == f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}"
    with Tracker("t", run_name="local") as t, t.stage("s"):
        t.log_metrics({"x": 1.0})
    assert t.run_id and (tmp_path / "work" / "mlflow.db").exists()
    artifact = tmp_path / "a.txt"
    artifact.write_text("x")
    with Tracker("t", run_name="again") as t2:
        t2.log_artifact(artifact)
    assert list((tmp_path / "work" / "mlartifacts").rglob("a.txt"))  # beside the store, not ./mlruns


@pytest.mark.integration
def test_parent_and_nested_runs_on_a_real_server(mlflow_server, s3_env, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3_env.endpoint)
    artifact = tmp_path / "report.md"
    artifact.write_text("# report")
    with Tracker("teacherlm-test", run_name="pipeline") as t:
        t.log_params({"model": "tiny", "aws_secret_access_key": s3_env.secret_key})
        with t.stage("augment", params={"shards": 2}):
            t.log_metrics({"samples": 10}, step=1)
        with t.stage("eval"):
            t.log_metrics({"accuracy": 0.5})
            t.log_artifact(artifact)
    client = mlflow.MlflowClient(mlflow_server.uri)
    parent = client.get_run(t.run_id)
    assert parent.data.params["model"] == "tiny"
    assert parent.data.params["aws_secret_access_key"] == "<redacted>"
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{t.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
    assert [c.info.run_name for c in children] == ["augment", "eval"]
    assert children[0].data.metrics["samples"] == 10 and children[0].data.params["shards"] == "2"
    assert [a.path for a in client.list_artifacts(children[1].info.run_id)] == ["report.md"]
    # the artifact went to the S3 bucket behind the server
    from teacherlm_core import storage

    assert any(u.endswith("report.md") for u in storage.list_files(f"s3://{s3_env.bucket}/mlflow"))


@pytest.mark.integration
def test_unreachable_server_degrades_to_a_warning(monkeypatch, caplog):
    from servers import free_port

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    done = []
    with caplog.at_level(logging.WARNING), Tracker("t") as t, t.stage("work"):
        t.log_metrics({"x": 1})
        done.append(True)
    assert done == [True] and not t.enabled
    assert sum("tracking is off" in r.message for r in caplog.records) == 1


def test_task_names_mlflow_refuses_never_drop_an_evaluations_metrics():
    import json

    import mlflow

    from teacherlm_core.tracking import METRIC_NAMES_TAG

    names = ["q&a (v2)", "../x", "t" * 300, "plain", "a/./b"]
    metrics = {"accuracy": 0.5} | {f"accuracy.{n}": i / 10 for i, n in enumerate(names)}
    with Tracker("t", run_name="opened") as t:
        t.log_metrics(metrics)
    with Tracker("t", run_name="by id") as t2:
        Tracker.attach(t2.run_id).log_metrics(metrics)
    client = mlflow.MlflowClient(default_tracking_uri())
    for run_id in (t.run_id, t2.run_id):
        run = client.get_run(run_id).data
        assert (
            len(run.metrics) == 6 and run.metrics["accuracy"] == 0.5 and run.metrics["accuracy.plain"] == 0.3
        )
        renamed = json.loads(run.tags[METRIC_NAMES_TAG])  # the report's way back to each name
        assert {renamed.get(k, k): v for k, v in run.metrics.items()} == metrics


def test_a_server_that_never_answers_costs_one_short_probe_per_process(monkeypatch, caplog):
    """MLflow's defaults would retry each call for minutes (GPUs held meanwhile): one probe, then nothing."""
    import socket
    import time

    from teacherlm_core import tracking
    from teacherlm_core.lineage import log_datasets, mark_experiment

    hole = socket.socket()  # accepts connections, never answers
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:pw@127.0.0.1:{hole.getsockname()[1]}")
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # as in a pipeline pod: MLflow's own defaults
    monkeypatch.setattr(tracking, "_REACHABLE", {}, raising=False)
    monkeypatch.setattr(tracking, "PROBE_TIMEOUT_S", 1.0, raising=False)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING), Tracker("t") as t:
        t.log_metrics({"x": 1})
        Tracker.attach("some-run").log_metrics({"accuracy": 0.5})
        mark_experiment("1")
        log_datasets("some-run", [{"name": "d", "digest": "x", "source": "/d", "columns": [], "counts": {}}])
    hole.close()
    assert time.monotonic() - start < 10 and not t.enabled
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert (
        len(warnings) == 1 and "tracking is off for this process" in warnings[0] and "pw" not in warnings[0]
    )


def test_a_first_run_interrupted_while_the_store_is_made_leaves_no_half_migrated_store(tmp_path, monkeypatch):
    """Ctrl-C during the local store's first migration (or two first processes racing): the next run tracks."""
    import mlflow.store.db.utils as db_utils

    from teacherlm_core import tracking

    monkeypatch.setattr(tracking, "_REACHABLE", {}, raising=False)
    real = db_utils._upgrade_db

    def interrupted(engine):
        raise KeyboardInterrupt  # the user's Ctrl-C, after the initial tables, before the migrations

    monkeypatch.setattr(db_utils, "_upgrade_db", interrupted)
    with pytest.raises(KeyboardInterrupt), Tracker("t", run_name="first") as t:
        pass
    monkeypatch.setattr(db_utils, "_upgrade_db", real)
    monkeypatch.setattr(tracking, "_REACHABLE", {}, raising=False)
    with Tracker("t", run_name="second") as t:
        t.log_metrics({"x": 1.0})
    assert t.enabled and t.run_id
    assert not list((tmp_path / "work").glob(".*.tmp"))


def test_a_recipe_run_opened_inside_a_stage_run_nests_under_it_and_each_ends_with_its_own_status():
    """One handle for stages and recipes: runs are held by id, so a recipe's run opened while its
    stage's is open nests under it (children=True), fails on its own, and MLflow's per-process
    active-run stack is left as it was (no run of ours in it)."""
    import mlflow

    from teacherlm_core.stages._run import stage_run

    with stage_run("train student plain", stage="train_student", children=True) as stage:
        with (
            pytest.raises(RuntimeError),
            Tracker(run_name="train-student plain") as recipe,
            recipe.stage("student"),
        ):
            recipe.log_metrics({"loss": 1.5}, step=3)
            raise RuntimeError("rank 1 died")
        stage.log_metrics({"cost.accelerator_seconds": 2.0})
        assert mlflow.active_run() is None
    client = mlflow.MlflowClient(default_tracking_uri())
    run = {r: client.get_run(r) for r in (stage.run_id, recipe.run_id)}
    assert run[recipe.run_id].data.tags["mlflow.parentRunId"] == stage.run_id
    assert (run[stage.run_id].info.status, run[recipe.run_id].info.status) == ("FINISHED", "FAILED")
    assert run[stage.run_id].data.metrics == {"cost.accelerator_seconds": 2.0}
    assert run[stage.run_id].data.tags["teacherlm.stage"] == "train_student"
    assert "mlflow.user" in run[stage.run_id].data.tags  # what MLflow's start_run would have added
    (child,) = client.search_runs(
        [run[recipe.run_id].info.experiment_id], f"tags.mlflow.parentRunId = '{recipe.run_id}'"
    )
    assert (child.info.run_name, child.info.status) == ("student", "FAILED")
    assert [m.step for m in client.get_metric_history(child.info.run_id, "loss")] == [3]
