"""Where a recipe runs: launcher choice, and a recipe as a Kubeflow Trainer TrainJob."""

from __future__ import annotations

from pathlib import Path

import pytest

from teacherlm_core.run_context import IMAGES
from teacherlm_core.stages._training import stage_launch
from teacherlm_core.train.runner import recipe_trainjob, resolve_launcher


def test_launcher_choice(monkeypatch):
    from teacherlm_core.errors import ConfigError

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert resolve_launcher("auto", 1) == "torchrun"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert resolve_launcher("auto", 4) == "trainjob"
    with pytest.raises(ConfigError, match="nnodes"):
        resolve_launcher("torchrun", 2)
    with pytest.raises(ConfigError, match="launcher"):
        resolve_launcher("slurm", 1)


def test_training_on_a_cluster_submits_and_follows_a_trainjob(tmp_path, monkeypatch):
    """launcher=trainjob: config and data on shared storage, a TrainJob on the GPU pool, followed to the end;
    a retried task follows the job it started instead of submitting another. The stand-in API server
    enforces the namespace's TrainJob admission policy as rendered: the pipeline's job passes it."""
    import yaml
    from fake_k8s import FakeK8s

    from teacherlm_core.train import load_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("TEACHERLM_NAMESPACE", "ml")
    monkeypatch.setenv("TEACHERLM_TRAIN_MEMORY", "300Gi")  # the environment sizes a node; CPU by default
    shared = tmp_path / "shared"
    paths = {"data": str(shared / "train.jsonl"), "output": str(shared / "students" / "plain")}
    cfg = stage_launch(
        load_config("student", "student_tiny", {"model": "org/base", **paths}), 2, 8, "zero3", 0
    )
    with FakeK8s(admission=True) as k8s:
        recipe_trainjob(
            "student",
            cfg,
            image=IMAGES["train"],
            run_id="0123456789abcdef",
            api_client=k8s.api_client(),
            poll_s=0,
        )
        ((plural, ns, name), job), *_ = k8s.jobs.items()
        recipe_trainjob(
            "student",
            cfg,
            image=IMAGES["train"],
            run_id="0123456789abcdef",
            api_client=k8s.api_client(),
            poll_s=0,
        )
        assert len(k8s.jobs) == 1  # the retry found the job complete and started none
    assert (plural, ns, name) == ("trainjobs", "ml", "tlm-student-01234567-plain-a1")
    trainer = job["spec"]["trainer"]
    config_uri = str(shared / "students" / "plain.config.yaml")
    assert trainer["command"] == ["teacherlm", "train", "student", "--config", config_uri]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    # Trainer replaces the runtime's resources with these: GPUs never go without CPU and memory
    for amounts in (trainer["resourcesPerNode"]["limits"], trainer["resourcesPerNode"]["requests"]):
        assert amounts == {"nvidia.com/gpu": "8", "cpu": "64", "memory": "300Gi"}
    assert trainer["image"] == IMAGES["train"]
    env = {e["name"]: e for e in trainer["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert (
        env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "teacherlm-pipelines-s3"
    )  # never the value
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["template"]["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    written = yaml.safe_load(Path(config_uri).read_text())
    assert written["data"] == str(shared / "train.jsonl") and written["launch"]["deepspeed"] == "zero3"
    assert not any(k.startswith("kueue.x-k8s.io/") for k in job["metadata"]["labels"])  # no queue compiled in
    assert (
        job["spec"]["activeDeadlineSeconds"] == 7 * 86400
    )  # the budget is the job's, queue time not counted


def test_a_pipeline_compiled_with_a_queue_submits_its_trainjob_to_that_queue(tmp_path, monkeypatch):
    """`pipeline compile --queue Q --priority-class P` sets these on the training task; its TrainJob
    carries Kueue's labels (without them a cluster that manages every job would suspend or refuse it)."""
    from fake_k8s import FakeK8s

    monkeypatch.setenv("TEACHERLM_NAMESPACE", "ml")
    monkeypatch.setenv("TEACHERLM_QUEUE", "team-a")
    monkeypatch.setenv("TEACHERLM_PRIORITY_CLASS", "teacherlm-training")
    with FakeK8s() as k8s:
        k8s.api_groups["kueue.x-k8s.io"] = ["v1beta2"]  # a cluster with Kueue v0.15+
        recipe_trainjob("student", _student_cfg(tmp_path), image=IMAGES["train"], run_id="0123456789abcdef",
                        api_client=k8s.api_client(), poll_s=0)  # fmt: skip
        (job,) = k8s.jobs.values()
    labels = job["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a"
    assert labels["kueue.x-k8s.io/priority-class"] == "teacherlm-training"


def _student_cfg(tmp_path):
    from teacherlm_core.train import load_config

    shared = tmp_path / "shared"
    paths = {"data": str(shared / "train.jsonl"), "output": str(shared / "students" / "plain")}
    return stage_launch(
        load_config("student", "student_tiny", {"model": "org/base", **paths}), 1, 1, "zero2", 0
    )


def test_a_retried_task_starts_a_new_attempt_after_a_failure_and_never_rereports_it(tmp_path, monkeypatch):
    """KFP retries a training task whose TrainJob failed: the retry runs a new TrainJob (same command,
    same output, so the recipe resumes from the last checkpoint) instead of re-reading the old failure;
    a further retry after success starts nothing."""
    from fake_k8s import FakeK8s

    from teacherlm_core.train.k8s import JobFailed

    monkeypatch.setenv("TEACHERLM_NAMESPACE", "ml")
    cfg = _student_cfg(tmp_path)
    run = dict(image=IMAGES["train"], run_id="0123456789abcdef", poll_s=0)
    with FakeK8s() as k8s:
        k8s.script["tlm-student-01234567-plain-a1"] = "fail"
        with pytest.raises(JobFailed, match="a1 failed"):
            recipe_trainjob("student", cfg, api_client=k8s.api_client(), **run)
        recipe_trainjob("student", cfg, api_client=k8s.api_client(), **run)  # the KFP retry succeeds
        names = [name for (_, _, name) in k8s.jobs]
        assert names == ["tlm-student-01234567-plain-a1", "tlm-student-01234567-plain-a2"]
        first, second = (k8s.jobs[("trainjobs", "ml", n)] for n in names)
        assert second["spec"]["trainer"]["command"] == first["spec"]["trainer"]["command"]  # same output
        assert second["metadata"]["labels"]["teacherlm.io/attempt"] == "2"
        recipe_trainjob("student", cfg, api_client=k8s.api_client(), **run)  # retried after success
        assert len(k8s.jobs) == 2


def test_a_retried_task_follows_its_still_running_attempt():
    """The pod following a TrainJob died, the TrainJob did not: the retry follows it, starting no other."""
    from fake_k8s import FakeK8s

    from teacherlm_core.train.k8s import ClusterJob, attempt_name, create_or_follow, render_trainjob, submit

    with FakeK8s() as k8s:
        client = k8s.api_client()
        task = ClusterJob(name="tlm-student-01234567-plain", namespace="ml", image=IMAGES["train"],
                          command=["teacherlm", "train", "student"], gpus_per_node=0)  # fmt: skip
        body = render_trainjob(task)
        first = render_trainjob(task.model_copy(update={"name": attempt_name(task.name, 1)}))
        first["metadata"]["labels"] |= {"teacherlm.io/task": task.name, "teacherlm.io/attempt": "1"}
        submit(first, api_client=client)
        lines: list[str] = []
        outcome = create_or_follow(body, api_client=client, poll_s=0, echo=lines.append)
        assert outcome.name == "tlm-student-01234567-plain-a1" and outcome.state == "Complete"
        assert len(k8s.jobs) == 1 and "following it" in lines[0]


_FOLLOWER = """
import sys
from kubernetes import client
from teacherlm_core.stages._training import stage_launch
from teacherlm_core.train import load_config
from teacherlm_core.train.runner import recipe_trainjob

url, shared = sys.argv[1:3]
cfg = stage_launch(load_config("student", "student_tiny", {"model": "org/base", "data": shared + "/train.jsonl",
                  "output": shared + "/students/plain"}), 1, 1, "zero2", 0)
config = client.Configuration()
config.host = url
recipe_trainjob("student", cfg, image="img", run_id="0123456789abcdef", api_client=client.ApiClient(config),
                poll_s=0.05)
"""


def test_a_stopped_training_task_takes_its_trainjob_with_it(tmp_path):
    """KFP stops a run by stopping its pods (SIGTERM): the training task's follower deletes its running
    TrainJob on the way out and exits 143, so no GPUs stay held by a run that is over."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from fake_k8s import FakeK8s

    with FakeK8s() as k8s:
        k8s.default_script = "hang"
        env = os.environ | {"TEACHERLM_NAMESPACE": "ml"}
        proc = subprocess.Popen([sys.executable, "-c", _FOLLOWER, k8s.url, str(tmp_path / "shared")], env=env,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while not any(n >= 3 for n in k8s.polls.values()) and time.monotonic() < deadline:  # its pods run
            time.sleep(0.05)
        assert k8s.jobs, proc.stderr.read() if proc.poll() is not None else "no job"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert not k8s.jobs


def test_the_pipelines_cleanup_task_deletes_only_this_runs_unfinished_trainjobs(monkeypatch):
    """Jobs of two runs on the stand-in server: this run's running job goes; its finished job and the
    other run's running job stay. Outside Kubernetes (the local runner) it does nothing."""
    from fake_k8s import FakeK8s

    from teacherlm_core.stages.train_cleanup import train_cleanup
    from teacherlm_core.train.k8s import ClusterJob, render_trainjob, submit

    monkeypatch.setenv("TEACHERLM_KFP_RUN_ID", "run-a")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert train_cleanup() == []
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("TEACHERLM_NAMESPACE", "ml")
    with FakeK8s() as k8s:
        client = k8s.api_client()
        for name, run, script in (
            ("a-run", "run-a", "hang"),
            ("a-done", "run-a", "succeed"),
            ("b-run", "run-b", "hang"),
        ):
            k8s.script[name] = script
            job = ClusterJob(
                name=name, namespace="ml", image="i", command=["x"], labels={"teacherlm.io/kfp-run": run}
            )
            submit(render_trainjob(job), api_client=client)
            for _ in range(5):
                k8s._advance(("trainer.kubeflow.org", "v1alpha1", "trainjobs"), ("trainjobs", "ml", name))
        monkeypatch.setattr("teacherlm_core.train.k8s.attempts.connect", lambda api_client=None: client)
        assert train_cleanup() == ["a-run"]
        assert sorted(name for (_, _, name) in k8s.jobs) == ["a-done", "b-run"]
