"""The recipes for real on 2 gloo ranks under torchrun with DeepSpeed ZeRO on the CPU.

One uninterrupted ZeRO-2 run is the reference; a run interrupted and resumed from S3, and a
ZeRO-3 run on two "nodes" on loopback resumed on one node must both reach its losses.
The first DeepSpeed init on a machine JIT-builds the shm_comm op (~1 min on 2 cores; cached in
``TORCH_EXTENSIONS_DIR``), so the first test of a fresh machine is slower.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest
from servers import free_port

from teacherlm_core import storage
from teacherlm_core.data import build_builtin
from teacherlm_core.train import load_config, train_student

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

CONFIG = """\
# teacherlm train student --config {path} --model M --data D --output O
texts: {{max_length: 256}}
train: {{lr: 1.0e-3, warmup_steps: 2, per_device_batch_size: 2, max_steps: 8, save_steps: 2, seed: 0}}
launch: {{deepspeed: zero2, nproc: 2}}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("distributed")
    build_builtin(root / "data", per_task=10, seed=0)
    config = root / "student.yaml"
    config.write_text(CONFIG.format(path=config))
    return {
        "root": root,
        "data": str(root / "data" / "train.jsonl"),
        "config": str(config),
        "model": tiny_model,
    }


def student(setup, output, **overrides):
    flags = {"model": setup["model"], "data": setup["data"], "output": str(output), "track": False}
    return load_config("student", setup["config"], flags | overrides)


def metrics(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def reference(setup):
    """The uninterrupted ZeRO-2 run on 2 ranks that the other runs must reproduce."""
    with pytest.MonkeyPatch.context() as mp:  # module scope: the per-test work dir is not set yet
        mp.setenv("TEACHERLM_WORKDIR", str(setup["root"] / "work"))
        out = setup["root"] / "reference"
        result = train_student(student(setup, out))
    return {"output": out, "result": result, "metrics": metrics((out / "metrics.jsonl").read_text())}


def assert_same_losses(got: list[dict], want: list[dict]) -> None:
    assert [m["step"] for m in got] == [m["step"] for m in want] == list(range(1, 9))
    for g, w in zip(got, want, strict=True):
        assert g["loss"] == pytest.approx(w["loss"], abs=1e-4), (g, w)


def test_zero2_on_two_gloo_ranks_is_engaged(reference):
    from transformers import AutoModelForCausalLM

    result = reference["result"]
    assert result.record["distributed"] == {
        "engine": "DeepSpeedEngine",
        "zero_stage": 2,
        "world_size": 2,
        "backend": "gloo",
    }
    assert result.global_step == 8 and result.real_share > 0.9
    assert all(m["tokens_per_s"] > 0 for m in reference["metrics"])
    AutoModelForCausalLM.from_pretrained(reference["output"])


def test_resume_from_s3_is_exact(setup, reference, s3_env, tmp_path):
    from teacherlm_core.tracking import workdir

    uri = f"s3://{s3_env.bucket}/train-tests/{uuid.uuid4().hex[:8]}/student"
    first = train_student(student(setup, uri, **{"train.max_steps": 4}))
    assert first.global_step == 4 and storage.exists(f"{uri}/_SUCCESS")
    assert storage.exists(f"{uri}/checkpoints/checkpoint-4/_CHECKPOINT.json")
    assert storage.exists(
        f"{uri}/checkpoints/checkpoint-4/global_step4/zero_pp_rank_1_mp_rank_00_optim_states.pt"
    )
    before = metrics(storage.read_text(f"{uri}/metrics.jsonl"))
    shutil.rmtree(workdir() / "train-mirror")  # nothing local survives: the resume must come from S3

    second = train_student(student(setup, uri))
    after = metrics(storage.read_text(f"{uri}/metrics.jsonl"))
    assert second.global_step == 8
    assert after[:4] == before  # steps 1-4 were resumed, not retrained (their timings are unchanged)
    assert_same_losses(after, reference["metrics"])
    kept = {
        u.removeprefix(f"{uri}/checkpoints/").split("/")[0] for u in storage.list_files(f"{uri}/checkpoints")
    }
    assert kept == {"checkpoint-6", "checkpoint-8"}  # save_total_limit applies on S3 too
    local = tmp_path / "model"
    storage.download_dir(uri, local)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(local)


def test_zero3_on_two_loopback_nodes_then_resumed_on_one_node(setup, reference, tmp_path):
    """Two "nodes" (one rank each) train 4 steps with ZeRO-3; one node with two ranks resumes to 8.

    Same world size, same global batch: both must follow the reference's losses exactly, and
    ZeRO-3 must leave a consolidated model that from_pretrained loads.
    """
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out, port = tmp_path / "zero3", free_port()
    common = [
        sys.executable, "-m", "teacherlm_core", "train", "student", "--config", setup["config"],
        "--model", setup["model"], "--data", setup["data"], "--output", str(out), "--no-track",
        "--deepspeed", "zero3", "--max-steps", "4",
        "--nproc", "1", "--nnodes", "2", "--master-addr", "127.0.0.1", "--master-port", str(port),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # two "nodes" share two cores
    nodes = [
        subprocess.Popen(
            [*common, "--node-rank", str(rank)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=240)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    done = json.loads((out / "_SUCCESS").read_text())
    assert done["distributed"] == {
        "engine": "DeepSpeedEngine",
        "zero_stage": 3,
        "world_size": 2,
        "backend": "gloo",
    }
    assert done["global_step"] == 4

    result = train_student(student(setup, out, **{"launch.deepspeed": "zero3"}))
    assert result.global_step == 8 and result.record["distributed"]["zero_stage"] == 3
    assert_same_losses(metrics((out / "metrics.jsonl").read_text()), reference["metrics"])
    model = AutoModelForCausalLM.from_pretrained(out)  # gathered from the shards at save
    mine, theirs = load_file(out / "model.safetensors"), load_file(reference["output"] / "model.safetensors")
    assert sorted(mine) == sorted(theirs)
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for t in theirs.values())
    assert max(float((mine[k] - theirs[k]).abs().max()) for k in theirs) < 1e-3


def test_teacher_stages_run_in_order_with_one_mlflow_run_each(setup, tmp_path):
    import mlflow
    import yaml

    from teacherlm_core.tracking import default_tracking_uri

    out = tmp_path / "teacher"
    config = tmp_path / "teacher.yaml"
    config.write_text(
        f"# teacherlm train teacher --config {config}\n"
        + yaml.safe_dump(
            {
                "model": setup["model"],
                "output": str(out),
                "texts": {"max_length": 256},
                "train": {"lr": 1e-3, "per_device_batch_size": 2, "save_steps": 2},
                "launch": {"deepspeed": "zero2", "nproc": 2},
                "stages": [
                    {"name": "multitask", "data": setup["data"], "max_steps": 3},
                    {
                        "name": "personalise",
                        "data": setup["data"].replace("train", "validation"),
                        "max_steps": 2,
                    },
                    {"name": "specialise", "specialise": True, "max_steps": 1},
                ],
            }
        )
    )
    cmd = [sys.executable, "-m", "teacherlm_core", "train", "teacher", "--config", str(config)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    names = ["1-multitask", "2-personalise", "3-specialise-fundamentals", "3-specialise-chain-of-thought",
             "3-specialise-common-mistakes"]  # fmt: skip
    summary = json.loads((out / "stages.json").read_text())
    assert [s["stage"] for s in summary] == names
    assert [s["global_step"] for s in summary] == [3, 2, 1, 1, 1]
    # Each stage starts from the one before (the specialised teachers all from stage 2).
    state = {n: json.loads((out / n / "train_state.json").read_text()) for n in names}
    assert state["1-multitask"]["identity"]["start"]["path"] == setup["model"]  # the base model by its files
    assert "model.safetensors" in state["1-multitask"]["identity"]["start"]["files"]
    assert state["2-personalise"]["identity"]["start"]["fingerprint"] == state["1-multitask"]["fingerprint"]
    for n in names[2:]:
        assert state[n]["identity"]["start"]["stage"] == "2-personalise"
        assert state[n]["identity"]["texts"]["fields"] == [n.removeprefix("3-specialise-").replace("-", "_")]
        assert (out / n / "model.safetensors").exists() and (out / n / "README.md").exists()
    # The teacher learns the explanations only.
    assert state["1-multitask"]["identity"]["texts"]["loss"] == "completion"
    first = metrics((out / "1-multitask" / "metrics.jsonl").read_text())
    second = metrics((out / "2-personalise" / "metrics.jsonl").read_text())
    assert second[0]["loss"] < first[0]["loss"]  # stage 2 starts from trained weights

    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("teacherlm").experiment_id])
    (parent,) = [r for r in runs if not r.data.tags.get("mlflow.parentRunId")]
    nested = {
        r.data.tags["mlflow.runName"]: r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    }
    assert sorted(nested) == sorted(names)
    assert all(r.data.metrics["global_step"] >= 1 for r in nested.values())

    # A re-run finds every stage done and starts no rank.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(s["skipped"] for s in json.loads((out / "stages.json").read_text()))
    assert "OMP_NUM_THREADS" not in again.stderr  # torchrun's banner: no rank was started


def test_cpu_ranks_share_the_threads_of_their_node():
    """Ranks on CPU once each took the whole thread budget the caller set (OMP_NUM_THREADS=4 and 2
    ranks: 8 threads on 4 cores), or 1 each from torchrun when none was set, whatever the cores."""
    from teacherlm_core.cpus import usable_cpus
    from teacherlm_core.train.launch import worker_env

    base = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    assert worker_env(base | {"OMP_NUM_THREADS": "4"}, nproc_per_node=2)["OMP_NUM_THREADS"] == "2"
    assert worker_env(base, nproc_per_node=2)["OMP_NUM_THREADS"] == str(max(1, usable_cpus() // 2))
    assert (
        worker_env(base | {"OMP_NUM_THREADS": "1"}, nproc_per_node=2)["OMP_NUM_THREADS"] == "1"
    )  # at least one
