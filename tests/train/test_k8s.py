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
    if kind is TRAINJOB:  # the Trainer's own progress report, echoed as it changes
        assert "TrainJob teacher-r1: progress 50%, about 1h05m left, loss=6.8" in lines
        assert "TrainJob teacher-r1: progress 100%, about 0m left, loss=6.6" in lines
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


def test_a_queued_job_is_reported_as_queued_and_its_time_in_the_queue_is_not_its_budget():
    """Kueue holds the job (Suspended) for longer than the follower's timeout; it is admitted, runs, completes:
    followed to the end, reported as queued, not deleted as timed out."""
    lines: list[str] = []
    with FakeK8s() as k8s:
        k8s.script["teacher-r1"], k8s.queue_s = "queued", 1.5
        outcome = run_job(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0.05, timeout_s=1.0,
                          echo=lines.append)  # fmt: skip
        assert ("trainjobs", "ml", "teacher-r1") in k8s.jobs
    assert outcome.state == "Complete" and outcome.seconds > 1.5
    states = [line.split(": ", 1)[1] for line in lines if line.startswith("TrainJob teacher-r1: ")]
    assert states[0].startswith("queued (Suspended: TrainJob is suspended)")
    assert states[1:] == [
        "admitted",
        "Pending",
        "Running",
        "Complete (JobSetCompleted: jobset completed successfully)",
    ]


def test_a_job_queued_past_its_queue_timeout_is_deleted_and_reported():
    with FakeK8s() as k8s:
        k8s.script["teacher-r1"], k8s.queue_s = "queued", 60
        with pytest.raises(JobFailed, match=r"still queued after the 0s queue timeout; deleted it"):
            run_job(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0.05, queue_timeout_s=0.2,
                    echo=lambda _: None)  # fmt: skip
        assert not k8s.jobs


def test_a_preempted_job_is_followed_through_its_requeue_to_the_end_with_no_new_attempt():
    """Running, evicted by a higher-priority workload (Suspended, reason Preempted), readmitted, complete:
    one attempt, followed throughout; the retry of the training task would find it complete."""
    from teacherlm_core.train.k8s import create_or_follow

    lines: list[str] = []
    with FakeK8s() as k8s:
        k8s.script["teacher-r1-a1"] = "preempted"
        outcome = create_or_follow(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0,
                                   echo=lines.append)  # fmt: skip
        assert [name for (_, _, name) in k8s.jobs] == ["teacher-r1-a1"]
    assert outcome.state == "Complete"
    states = [line.split(": ", 1)[1] for line in lines if line.startswith("TrainJob teacher-r1-a1: ")]
    assert [s.split(" (")[0] for s in states] == [
        "Created", "Pending", "Running", "preempted, requeued", "Pending", "Running", "Complete",
    ]  # fmt: skip
    assert "it resumes from its last checkpoint when readmitted" in states[3]
    assert any("Stopped: Preempted to accommodate" in line for line in lines)  # Kueue's event, echoed


def test_a_cluster_that_requires_a_queue_refuses_a_job_without_one_and_names_the_label():
    with FakeK8s(require_queue=True) as k8s:
        with pytest.raises(JobFailed, match=r"creation refused \(422.*kueue.x-k8s.io/queue-name"):
            submit(render_trainjob(job()), api_client=k8s.api_client())
        queued = job(labels={"kueue.x-k8s.io/queue-name": "teacherlm"})
        assert submit(render_trainjob(queued), api_client=k8s.api_client()) == "teacher-r1"


def test_a_cluster_without_what_the_job_needs_is_refused_in_one_line():
    """An older Trainer (no runtimePatches in its TrainJob CRD) refuses the job instead of dropping its GPU
    placement; a cluster without Trainer's API, or without Kueue's v1beta2 when a queue is named, is named."""
    from teacherlm_core.train.k8s import check_server

    with FakeK8s() as k8s:
        client = k8s.api_client()
        check_server(client)  # Trainer served, no queue asked for
        k8s.trainjob_unknown = {"runtimePatches"}
        with pytest.raises(JobFailed) as err:
            submit(render_trainjob(job()), api_client=client)
        assert str(err.value) == ("TrainJob teacher-r1: this cluster's trainer.kubeflow.org/v1alpha1 TrainJob has no "
                                  "spec.runtimePatches (Kubeflow Trainer v2.2 or newer is needed)")  # fmt: skip
        assert not k8s.jobs
        with pytest.raises(
            JobFailed, match=r"^--queue needs Kueue's kueue.x-k8s.io/v1beta2 .*serves no kueue"
        ):
            check_server(client, queue=True)
        k8s.api_groups["kueue.x-k8s.io"] = ["v1beta1"]
        with pytest.raises(JobFailed, match=r"this cluster serves kueue.x-k8s.io/v1beta1$"):
            check_server(client, queue=True)
        k8s.api_groups["kueue.x-k8s.io"] = ["v1beta2", "v1beta1"]
        check_server(client, queue=True)
        del k8s.api_groups["trainer.kubeflow.org"]
        with pytest.raises(
            JobFailed, match=r"serves no trainer\.kubeflow\.org, not trainer\.kubeflow\.org/v1alpha1"
        ):
            check_server(client)


def test_every_trainjob_carries_a_deadline():
    """The run's budget lives on the job (Trainer fails it past activeDeadlineSeconds, reset on each resume),
    so a job whose follower died still ends."""
    assert render_trainjob(job())["spec"]["activeDeadlineSeconds"] == 7 * 86400
    assert render_trainjob(job(active_deadline_seconds=3600))["spec"]["activeDeadlineSeconds"] == 3600


def test_cleanup_of_a_stopped_run_deletes_only_its_unfinished_jobs(monkeypatch):
    """Jobs of two runs: the stopped run's running and queued jobs go; its finished jobs and the other
    run's jobs stay (what `teacherlm train cleanup --run-id` does)."""
    from typer.testing import CliRunner

    from teacherlm_core.cli.train import app

    with FakeK8s() as k8s:
        client = k8s.api_client()
        scripts = {"a-run": ("A", "hang"), "a-queued": ("A", "queued"), "a-done": ("A", "succeed"),
                   "a-failed": ("A", "fail"), "b-run": ("B", "hang")}  # fmt: skip
        k8s.queue_s = 60
        for name, (run, script) in scripts.items():
            k8s.script[name] = script
            submit(render_trainjob(job(name=name, labels={"teacherlm.io/kfp-run": run})), api_client=client)
        for name in ("a-run", "a-done", "a-failed", "b-run", "a-queued"):
            for _ in range(5):
                k8s._advance(("trainer.kubeflow.org", "v1alpha1", "trainjobs"), ("trainjobs", "ml", name))
        monkeypatch.setattr("teacherlm_core.train.k8s.attempts.connect", lambda api_client=None: client)
        res = CliRunner().invoke(app, ["cleanup", "--run-id", "A", "-n", "ml"])
        assert res.exit_code == 0, res.output
        assert sorted(name for (_, _, name) in k8s.jobs) == ["a-done", "a-failed", "b-run"]
    assert "2 unfinished TrainJob(s) of run A deleted" in res.output


def test_a_follower_stopped_before_its_job_ends_deletes_it():
    """The pipeline run is stopped while its training task follows a running TrainJob (SIGTERM, here an
    interrupt at the first Running line): the job does not outlive the run."""
    from teacherlm_core.train.k8s import create_or_follow

    def echo(line: str) -> None:
        if line.endswith(": Running"):
            raise KeyboardInterrupt

    with FakeK8s() as k8s:
        k8s.script["teacher-r1-a1"] = "hang"
        with pytest.raises(KeyboardInterrupt):
            create_or_follow(render_trainjob(job()), api_client=k8s.api_client(), poll_s=0, echo=echo)
        assert not k8s.jobs


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
         "--node-selector", "pool=gpu", "--queue", "team-a", "--priority-class", "teacherlm-training",
         "--timeout", "3600", "--dry-run", "--", *COMMAND],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    body = yaml.safe_load(res.stdout)
    assert body["kind"] == "TrainJob" and body["spec"]["trainer"]["numNodes"] == 2
    # Kueue admits it through the team's queue at the training priority.
    assert body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert body["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "teacherlm-training"
    assert body["spec"]["activeDeadlineSeconds"] == 3600  # --timeout is the job's own budget
    assert body["spec"]["trainer"]["command"] == COMMAND
    assert body["spec"]["trainer"]["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "minio",
        "key": "accesskey",
    }


def test_cli_submit_refuses_a_priority_class_without_a_queue():
    from typer.testing import CliRunner

    from teacherlm_core.cli.train import app

    res = CliRunner().invoke(app, ["submit", "--name", "t1", "--image", "img:1", "--priority-class", "high",
                                   "--dry-run", "--", *COMMAND])  # fmt: skip
    assert res.exit_code != 0 and "--queue" in str(res.exception)


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


def test_a_trainjob_the_namespace_policy_refuses_fails_in_one_line():
    """The namespace's admission policy (manifests/base/admission.yaml, enforced by the stand-in API server)
    refuses a job that would run another image next to the checkpoint key: one line, the rule's message."""
    from fake_k8s import FakeK8s

    with FakeK8s(admission=True) as k8s:
        foreign = render_trainjob(job(name="other", image="busybox:1.36", command=["sh", "-c", "env"]))
        with pytest.raises(JobFailed) as err:
            submit(foreign, api_client=k8s.api_client())
        assert not k8s.jobs
    message = str(err.value)
    assert "\n" not in message and message.startswith("TrainJob other: creation refused (403 Forbidden)")
    assert "denied request: a TrainJob here runs the image ghcr.io/teacherlm/teacherlm-train" in message
