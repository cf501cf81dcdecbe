"""The cluster launcher: TrainJob / PyTorchJob rendering, and their life cycle against a fake API server."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from fake_k8s import FakeK8s, runner_role

from teacherlm_core.train.k8s import (
    PYTORCHJOB,
    TRAINJOB,
    ClusterJob,
    JobFailed,
    SecretEnv,
    follow,
    render_pytorchjob,
    render_trainjob,
    run_job,
    submit,
)

pytestmark = pytest.mark.timeout(60)

COMMAND = ["teacherlm", "train", "teacher", "--config", "s3://teacherlm/configs/teacher.yaml"]


def job(**kw) -> ClusterJob:
    spec = {
        "name": "teacher-r1",
        "namespace": "ml",
        "image": "ghcr.io/teacherlm/train:0.1.0",
        "command": COMMAND,
        "num_nodes": 4,
        "gpus_per_node": 8,
        "cpu": "32",
        "memory": "256Gi",
        "env": {
            "AWS_ENDPOINT_URL_S3": "http://minio.teacherlm:9000",
            "MLFLOW_TRACKING_URI": "http://mlflow:5000",
        },
        "secret_env": [
            SecretEnv(name="AWS_ACCESS_KEY_ID", secret="minio-creds", key="accesskey"),
            SecretEnv(name="AWS_SECRET_ACCESS_KEY", secret="minio-creds", key="secretkey"),
        ],
        "node_selector": {"teacherlm.io/pool": "gpu"},
        "service_account": "teacherlm-train",
    }
    return ClusterJob(**(spec | kw))


def test_trainjob_is_typed_and_carries_nodes_gpus_secrets_and_the_gpu_pool():
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    body = render_trainjob(job())
    typed = TrainerV1alpha1TrainJob.from_dict(body)  # round-trips through the typed models
    assert typed.to_dict() == body
    assert (body["apiVersion"], body["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    trainer = body["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"], trainer["command"]) == (4, 8, COMMAND)
    assert trainer["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "8", "cpu": "32", "memory": "256Gi"}
    env = {e["name"]: e for e in trainer["env"]}
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == {
        "secretKeyRef": {"name": "minio-creds", "key": "accesskey"}
    }
    assert "value" not in env["AWS_SECRET_ACCESS_KEY"]  # secrets travel by reference only
    # The namespaced runtime manifests/ ships, never Trainer's default ClusterTrainingRuntime.
    assert body["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "TrainingRuntime",
                                          "name": "teacherlm-deepspeed"}  # fmt: skip
    (patch,) = body["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert node["name"] == "node" and pod["nodeSelector"] == {"teacherlm.io/pool": "gpu"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "teacherlm-train"
    # A CPU job asks for no GPU and tolerates no GPU taint.
    cpu = render_trainjob(job(gpus_per_node=0, cpu=None, memory=None, node_selector={}, service_account=None))
    assert "runtimePatches" not in cpu["spec"] and "resourcesPerNode" not in cpu["spec"]["trainer"]
    assert cpu["spec"]["trainer"]["numProcPerNode"] == 1


def test_pytorchjob_for_training_operator_v1():
    body = render_pytorchjob(job())
    assert (body["apiVersion"], body["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    specs = body["spec"]["pytorchReplicaSpecs"]
    assert (specs["Master"]["replicas"], specs["Worker"]["replicas"], body["spec"]["nprocPerNode"]) == (
        1,
        3,
        "8",
    )
    pod = specs["Worker"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "pytorch" and container["command"] == COMMAND
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert (
        pod["nodeSelector"] == {"teacherlm.io/pool": "gpu"}
        and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    )
    assert "Worker" not in render_pytorchjob(job(num_nodes=1))["spec"]["pytorchReplicaSpecs"]
    yaml.safe_dump(body)  # plain data, no shared references


@pytest.mark.parametrize("render, kind", [(render_trainjob, TRAINJOB), (render_pytorchjob, PYTORCHJOB)])
def test_a_job_is_followed_from_creation_to_success(render, kind):
    lines: list[str] = []
    with FakeK8s() as k8s:
        outcome = run_job(render(job()), api_client=k8s.api_client(), poll_s=0, echo=lines.append)
        created = k8s.jobs[(kind.plural, "ml", "teacher-r1")]
    assert (outcome.kind, outcome.state) == (kind.kind, kind.succeeded)
    text = "\n".join(lines)
    assert lines[0] == f"submitted {kind.kind} ml/teacher-r1"
    for state in ("Created", "Running", kind.succeeded):
        assert f"{kind.kind} teacher-r1: {state}" in text
    assert "Scheduled" in text and "loss" in text and "training done" in text  # events and rank-0 log
    assert created["spec"] == render(job())["spec"]


def test_a_failed_job_raises_with_reason_events_and_log_tail():
    with FakeK8s() as k8s:
        k8s.script["teacher-r1"] = "fail"
        with pytest.raises(JobFailed) as err:
            run_job(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0, echo=lambda _: None)
    message = str(err.value)
    assert message.startswith("TrainJob ml/teacher-r1 failed after")
    assert "JobSetFailed: jobset failed: node-0 exited with 1" in message
    assert "Warning Pod/teacher-r1-node-0-0: BackOff" in message
    assert "RuntimeError: CUDA out of memory" in message


def test_a_job_past_its_timeout_is_deleted_and_reported():
    with FakeK8s() as k8s:
        k8s.script["teacher-r1"] = "hang"
        client = k8s.api_client()
        name = submit(render_trainjob(job()), api_client=client)
        with pytest.raises(JobFailed, match="still Created after the 0s timeout; deleted it"):
            follow(name, TRAINJOB, "ml", api_client=client, timeout_s=0, poll_s=0, echo=lambda _: None)
        assert ("trainjobs", "ml", "teacher-r1") not in k8s.jobs
        assert (
            "DELETE",
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/trainjobs/teacher-r1",
        ) in k8s.requests


def test_refused_and_vanished_jobs_are_clear_errors():
    with FakeK8s() as k8s:
        client = k8s.api_client()
        submit(render_trainjob(job()), api_client=client)
        with pytest.raises(JobFailed, match=r"creation refused \(409 .*already exists"):
            submit(render_trainjob(job()), api_client=client)
        bad = render_trainjob(job(name="other"))
        bad["spec"]["trainer"]["numNodes"] = "four"
        with pytest.raises(JobFailed, match=r"creation refused \(422"):
            submit(bad, api_client=client)
        with pytest.raises(JobFailed, match="disappeared"):
            follow("missing", TRAINJOB, "ml", api_client=client, poll_s=0, echo=lambda _: None)


def test_an_invalid_job_name_is_caught_before_submission():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        job(name="Teacher_R1")


def test_cli_submit_dry_run_prints_the_manifest():
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "train", "submit", "--name", "t1", "--image", "img:1",
         "--nodes", "2", "--gpus", "4", "--secret-env", "AWS_ACCESS_KEY_ID=minio:accesskey",
         "--node-selector", "pool=gpu", "--dry-run", "--", *COMMAND],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    body = yaml.safe_load(res.stdout)
    assert body["kind"] == "TrainJob" and body["spec"]["trainer"]["numNodes"] == 2
    assert body["spec"]["trainer"]["command"] == COMMAND
    assert body["spec"]["trainer"]["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "minio",
        "key": "accesskey",
    }


def test_the_fake_api_server_enforces_the_rendered_role():
    """A call the manifests' Role does not grant gets the 403 a cluster gives (here: deleting pods)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with FakeK8s() as k8s:
        core = client.CoreV1Api(k8s.api_client())
        with pytest.raises(ApiException) as err:
            core.delete_namespaced_pod("p", "ml")
        assert err.value.status == 403 and 'cannot delete resource "pods"' in k8s.forbidden[0]
        core.list_namespaced_pod("ml")  # granted: list pods
    role = {"rules": [r for r in runner_role()["rules"] if "trainjobs" not in r["resources"]]}
    with FakeK8s(role=role) as k8s, pytest.raises(JobFailed, match="403"):
        run_job(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0, echo=lambda _: None)


def test_a_long_job_is_followed_reading_only_what_is_new():
    """Issue 14 item 6: each poll reads the log since its last line and the events since the last
    resourceVersion, so following a job costs the same per poll on day 7 as on day 1; every line
    and event is shown exactly once."""
    lines: list[str] = []
    with FakeK8s() as k8s:
        k8s.script["teacher-r1"] = "long"
        k8s.long_polls, k8s.lines_per_poll = 30, 5
        run_job(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0, echo=lines.append)
        logged = [line for _, line in k8s.logs["teacher-r1-node-0-0"]]
        log_bytes = sum(len(k8s._stamp(t)) + len(line) + 2 for t, line in k8s.logs["teacher-r1-node-0-0"])
        n_events, served = len(k8s.events), dict(k8s.served)
        event_reads = [q for m, p, q in k8s.queries if p.endswith("/events")]
    shown = [line.split("] ", 1)[1] for line in lines if line.startswith("[teacher-r1-node-0-0]")]
    assert shown == logged and len(logged) >= 150
    assert sum(line.startswith("event ") for line in lines) == n_events
    # Read once each, give or take the line at the boundary of each read: not once per poll.
    assert served["log_bytes"] <= 1.5 * log_bytes, served
    assert served["event_objects"] <= n_events + 5, served
    assert all(q.get("watch") == ["True"] and q.get("resourceVersion") for q in event_reads[1:])


def test_events_after_an_expired_resource_version_are_listed_again_without_repeats():
    from kubernetes import client

    from teacherlm_core.train.k8s import EventFeed

    with FakeK8s() as k8s:
        feed = EventFeed(client.CoreV1Api(k8s.api_client()), "ml", wait_s=1)
        k8s._event("ml", "Pod", "p", "Normal", "Scheduled", "one")
        assert [e.message for e in feed.new()] == ["one"]
        k8s._event("ml", "Pod", "p", "Normal", "Pulled", "two")
        assert [e.message for e in feed.new()] == ["two"]
        assert feed.new() == []
        k8s._event("ml", "Pod", "p", "Warning", "BackOff", "three")
        k8s.oldest_watchable = k8s.resource_version + 1  # the server dropped what the feed last saw
        assert [e.message for e in feed.new()] == ["three"]  # 410 Gone: listed again, nothing repeated


def test_log_lines_with_one_timestamp_are_returned_once():
    """Several lines in one instant, over two reads; fractions of uneven length sort as times."""
    from kubernetes import client

    from teacherlm_core.train.k8s import LogCursor

    with FakeK8s() as k8s:
        cursor = LogCursor(client.CoreV1Api(k8s.api_client()), "p", "ml", "node")
        k8s.logs["p"] = [(1_700_000_000_500_000_000, "a"), (1_700_000_000_500_000_000, "b")]
        assert cursor.new_lines() == ["a", "b"]
        k8s.logs["p"] += [
            (1_700_000_000_500_000_000, "c"),
            (1_700_000_000_250_000_000, "late"),
            (1_700_000_000_750_000_000, "d"),
        ]
        k8s.logs["p"].sort(key=lambda x: x[0])
        assert cursor.new_lines() == ["c", "d"]
        assert cursor.new_lines() == []
        assert LogCursor._key("2026-01-01T00:00:00.5Z") > LogCursor._key("2026-01-01T00:00:00.25Z")


def test_gpus_per_node_always_go_with_cpu_and_memory():
    trainer = render_trainjob(job(gpus_per_node=2, cpu=None, memory=None))["spec"]["trainer"]
    assert trainer["resourcesPerNode"] == {
        "limits": {"nvidia.com/gpu": "2", "cpu": "16", "memory": "128Gi"},
        "requests": {"nvidia.com/gpu": "2", "cpu": "16", "memory": "128Gi"},
    }
