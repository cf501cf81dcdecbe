"""The student recipe on one in-process rank: outputs, exact resume, re-run rules, MLflow, CLI errors.

The multi-rank / DeepSpeed runs are in ``test_train_distributed.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from teacherlm_core.data import build_builtin
from teacherlm_core.errors import ConfigError
from teacherlm_core.train import load_config, train_student

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("train-data")
    build_builtin(out, per_task=10, seed=0)
    return out


def student(tiny_model, data, output, **overrides):
    flags = {
        "model": tiny_model,
        "data": str(data / "train.jsonl"),
        "output": str(output),
        "launch.nproc_per_node": 1,
        "launch.deepspeed": "none",
        "train.max_steps": 4,
        "train.save_steps": 2,
        "train.per_device_batch_size": 2,
    }
    return load_config("student", "student_tiny", flags | overrides)


def losses(output):
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


def test_student_writes_a_loadable_model_card_metrics_and_checkpoints(tiny_model, data, tmp_path):
    import mlflow
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from teacherlm_core.tracking import default_tracking_uri

    out = tmp_path / "student"
    result = train_student(student(tiny_model, data, out))
    assert (result.global_step, result.skipped) == (4, False)
    n = len((data / "train.jsonl").read_text().splitlines())
    assert result.texts == {"plain": n, "fundamentals": n, "chain_of_thought": n, "common_mistakes": n}
    model = AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).pad_token == "<pad>" and model.config.use_cache
    assert not [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth")]  # safetensors only
    lines = losses(out)
    assert [m["step"] for m in lines] == [1, 2, 3, 4]
    assert all(m["loss"] > 0 and m["tokens_per_s"] > 0 and m["lr"] is not None for m in lines)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert all((p / "_CHECKPOINT.json").exists() for p in (out / "checkpoints").iterdir())
    done = json.loads((out / "_SUCCESS").read_text())
    assert done["global_step"] == 4 and done["distributed"]["world_size"] == 1
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and f"fundamentals x{n}" in card
    assert "% real tokens" in card and str(data / "train.jsonl") in card

    # One parent run, one nested run for the stage with the loss curve.
    client = mlflow.MlflowClient(default_tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("teacherlm").experiment_id])
    (nested,) = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert nested.data.tags["mlflow.runName"] == "student"
    assert [m.value for m in client.get_metric_history(nested.info.run_id, "loss")] == [
        m["loss"] for m in lines
    ]
    assert nested.data.params["train.max_steps"] == "4"


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_resume_is_exact_and_a_finished_run_is_not_redone(tiny_model, data, tmp_path):
    reference = tmp_path / "reference"
    train_student(student(tiny_model, data, reference, **{"train.max_steps": 8}))
    out = tmp_path / "resumed"
    train_student(student(tiny_model, data, out))
    result = train_student(student(tiny_model, data, out, **{"train.max_steps": 8}))
    assert result.global_step == 8
    assert [m["loss"] for m in losses(out)] == pytest.approx([m["loss"] for m in losses(reference)], abs=1e-6)

    again = train_student(student(tiny_model, data, out, **{"train.max_steps": 8}))
    assert again.skipped and again.final_loss == result.final_loss
    with pytest.raises(ConfigError, match="already trained to step 8, beyond max_steps 6"):
        train_student(student(tiny_model, data, out, **{"train.max_steps": 6}))
    with pytest.raises(ConfigError) as err:
        train_student(student(tiny_model, data, out, **{"train.lr": 0.01, "texts.loss": "all"}))
    assert "changed: texts.loss, train.lr" in str(err.value)


def test_a_tampered_checkpoint_is_refused_before_it_is_loaded(tiny_model, data, tmp_path):
    """Issue 15 item 8: resuming unpickles the checkpoint (torch.load, weights_only=False), so a file
    changed after the save (here: the optimizer state) is refused, naming it, and nothing is loaded."""
    from teacherlm_core.train.outputs import CheckpointRefused

    out = tmp_path / "student"
    train_student(student(tiny_model, data, out))
    ckpt = out / "checkpoints" / "checkpoint-4"
    marker = json.loads((ckpt / "_CHECKPOINT.json").read_text())
    assert marker["files"] and all(len(h) == 64 for h in marker["files"].values())
    (pickled,) = [p for p in ckpt.iterdir() if p.name == "optimizer.pt"]
    pickled.write_bytes(pickled.read_bytes() + b"\x00")
    with pytest.raises(
        CheckpointRefused, match=r"checkpoint-4: refusing to load it .*optimizer\.pt: changed"
    ):
        train_student(student(tiny_model, data, out, **{"train.max_steps": 8}))


def test_a_rewritten_marker_is_refused_when_markers_are_signed(tmp_path, monkeypatch):
    """Someone who can write the bucket can recompute the checksums too; with a key from a Secret
    the marker is signed, and a marker rewritten to match a changed file is refused."""
    from teacherlm_core.train.outputs import (
        CheckpointRefused,
        checkpoint_marker,
        file_checksums,
        verify_checkpoint,
    )

    monkeypatch.setenv("TEACHERLM_CHECKPOINT_KEY", "k" * 32)
    ckpt = tmp_path / "checkpoint-2"
    (ckpt / "global_step2").mkdir(parents=True)
    (ckpt / "global_step2" / "optim_states.pt").write_bytes(b"state")
    (ckpt / "rng_state.pth").write_bytes(b"rng")
    marker = checkpoint_marker(2, "fp", file_checksums(ckpt))
    verify_checkpoint(ckpt, marker)  # as saved: accepted
    (ckpt / "global_step2" / "optim_states.pt").write_bytes(b"evil pickle")
    forged = marker | {"files": file_checksums(ckpt)}
    with pytest.raises(CheckpointRefused, match="not signed"):
        verify_checkpoint(ckpt, forged)
    (ckpt / "extra.pkl").write_bytes(b"x")
    monkeypatch.delenv("TEACHERLM_CHECKPOINT_KEY")
    with pytest.raises(CheckpointRefused, match=r"extra\.pkl: not part of the saved checkpoint"):
        verify_checkpoint(ckpt, checkpoint_marker(2, "fp", marker["files"]))
    with pytest.raises(CheckpointRefused, match="records no checksums"):
        verify_checkpoint(ckpt, {"step": 2, "fingerprint": "fp"})


def test_the_engaged_check_stops_a_run_that_is_not_distributed_as_planned(tmp_path):
    """A launch that silently fell back to one plain process must not train."""
    import torch

    from teacherlm_core.train.outputs import StageOutput
    from teacherlm_core.train.worker import Dist, _callbacks

    spec = SimpleNamespace(deepspeed={"zero_optimization": {"stage": 2}}, name="student", fingerprint="x")
    trainer = SimpleNamespace(model_wrapped=torch.nn.Linear(2, 2), real_tokens=0)
    dist = Dist(rank=0, local_rank=0, world_size=2, cpu=True, shared_fs=True)
    check = _callbacks(trainer, spec, dist, StageOutput(str(tmp_path)))[0]
    with pytest.raises(RuntimeError) as err:
        check.on_train_begin(SimpleNamespace(world_size=1), None, None)
    assert "the trainer sees 1 process(es), not 2" in str(err.value)
    assert "wrapped in Linear, not a DeepSpeedEngine" in str(err.value)


def cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "train", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_cli_names_the_fields_that_the_data_lacks(tiny_model, data, tmp_path):
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        "".join(
            json.dumps({k: r[k] for k in ("id", "task", "question", "choices", "answer")}) + "\n"
            for r in rows
        )
    )
    res = cli(
        "student",
        "--model",
        tiny_model,
        "--data",
        str(plain),
        "--output",
        str(tmp_path / "o"),
        "--nproc",
        "1",
    )
    assert res.returncode == 2, res.stderr
    assert f"{plain}:1: field 'fundamentals, chain_of_thought, common_mistakes'" in res.stderr
    assert "leave them out of texts.fields" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "o").exists()  # nothing started


def test_cli_reports_every_config_problem_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "train: {lr: -1, max_steps: 0}\nlaunch: {nnodes: 2, node_rank: 3}\ntexts: {fields: [rationale]}\n"
    )
    res = cli("student", "--config", str(bad), "--data", "d.jsonl", "--output", "o")
    assert res.returncode == 2
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {bad}: 6 problem(s): model: is required;"), line
    for part in (
        "texts.fields.0:",
        "train.lr:",
        "train.max_steps:",
        "launch.node_rank:",
        "launch.master_port:",
    ):
        assert part in line
    res = cli("teacher", "--config", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2 and "cannot read the config" in res.stderr


@pytest.mark.parametrize("command", [["student"], ["teacher"], ["submit"]])
def test_train_commands_explain_themselves(command):
    res = cli(*command, "--help")
    assert res.returncode == 0 and "Usage" in res.stdout
