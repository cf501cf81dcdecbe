"""Where a recipe runs: launcher choice, and a recipe as a Kubeflow Trainer TrainJob."""

from __future__ import annotations

from pathlib import Path

import pytest

from teacherlm_core.kfp_support.images import IMAGES
from teacherlm_core.stages._training import launch_overrides
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
    a retried task follows the job it started instead of submitting another."""
    import yaml
    from fake_k8s import FakeK8s

    from teacherlm_core.train import load_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("TEACHERLM_NAMESPACE", "ml")
    shared = tmp_path / "shared"
    cfg = load_config(
        "student",
        "student_tiny",
        {"model": "org/base", "data": str(shared / "train.jsonl"), "output": str(shared / "students" / "plain"),
         **launch_overrides(2, 8, "zero3", 0)},
    )  # fmt: skip
    with FakeK8s() as k8s:
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
        assert len(k8s.jobs) == 1  # the retry followed the existing job
    assert (plural, ns, name) == ("trainjobs", "ml", "tlm-student-01234567-plain")
    trainer = job["spec"]["trainer"]
    config_uri = str(shared / "students" / "plain.config.yaml")
    assert trainer["command"] == ["teacherlm", "train", "student", "--config", config_uri]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert trainer["image"] == IMAGES["train"]
    env = {e["name"]: e for e in trainer["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert (
        env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "teacherlm-minio"
    )  # never the value
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["template"]["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    written = yaml.safe_load(Path(config_uri).read_text())
    assert written["data"] == str(shared / "train.jsonl") and written["launch"]["deepspeed"] == "zero3"
