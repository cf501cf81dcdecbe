"""A real (tiny, in-process) `train student` stage: its stage run, registered version, cost and loss page."""

from __future__ import annotations

import json

import pytest

from teacherlm_core.tracking import PARENT_ENV, Tracker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_train_student_registers_its_version_with_lineage_cost_and_page(tiny_model, tmp_path, monkeypatch):
    import mlflow

    from teacherlm_core.cost import Cost, read_cost, write_cost
    from teacherlm_core.data import build_builtin
    from teacherlm_core.stages.train_student import train_student

    data = tmp_path / "augmented"
    build_builtin(
        data, ["claims", "arithmetic"], per_task=10, seed=0
    )  # gold explanations: an augmented dataset
    write_cost(data, {"augmentation": Cost(tokens=50, accelerator_seconds=7.0, samples=14)})
    (data / "lineage.json").write_text(json.dumps({"teacher_version": "teacherlm-teacher/3"}))
    with Tracker(run_name="pipeline") as parent:  # the pipeline run; its stages run in other processes
        pass
    monkeypatch.setenv(PARENT_ENV, parent.run_id)
    out = tmp_path / "student"
    result = train_student(
        tiny_model, str(data), str(out), variant="augmented", student_config="student_tiny", student_max_steps=2,
        deepspeed="none", launcher="torchrun", loss_page=str(tmp_path / "loss.html"),
    )  # fmt: skip
    assert result["steps"] == 2 and result["registered_model"] == "teacherlm-student/1"
    # Cost: the two steps trained here, plus the augmentation behind the explanations it learned from.
    cost = read_cost(out)
    assert cost["augmentation"].accelerator_seconds == 7.0
    assert cost["training"].tokens > 0 and cost["training"].accelerator_seconds > 0
    assert cost["training"].samples == sum(1 for line in (data / "train.jsonl").open() if line.strip())
    assert result["metrics"]["training.tokens"] == cost["training"].tokens
    assert 'src="data:image/png;base64,' in (tmp_path / "loss.html").read_text()

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    mv = client.get_model_version("teacherlm-student", "1")
    assert mv.source == out.resolve().as_uri()
    assert (
        mv.tags["teacherlm.variant"] == "augmented"
        and mv.tags["teacherlm.teacher_version"] == "teacherlm-teacher/3"
    )
    assert mv.tags["teacherlm.pipeline_run"] == parent.run_id
    (stage,) = client.search_runs([mv.run_id and client.get_run(mv.run_id).info.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.run_id}'")  # fmt: skip
    assert stage.info.run_name == "train student augmented" and stage.info.run_id == mv.run_id
    assert stage.info.status == "FINISHED" and stage.data.tags["teacherlm.stage"] == "train_student"
    assert [d.dataset.name for d in stage.inputs.dataset_inputs] == ["augmented data"]
    # The recipe's own run (with its per-step metrics) nests under the stage's run.
    recipe = client.search_runs(
        [stage.info.experiment_id], f"tags.`mlflow.parentRunId` = '{stage.info.run_id}'"
    )
    assert recipe and recipe[0].info.run_name.startswith("train-student")
