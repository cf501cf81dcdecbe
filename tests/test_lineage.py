"""Lineage in MLflow: dataset inputs, registered teacher/student versions, the champion alias, `teacherlm runs`.

The same flow runs against the local SQLite store (the default) and a real MLflow server whose
artifacts live in a real S3 server (weights on S3 there, as on a cluster).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from teacherlm_core.tracking import PARENT_ENV, Tracker

pytestmark = pytest.mark.timeout(180)


def _dataset(root: Path, records: list[dict]) -> Path:
    """A dataset dir as `data build` / `augment merge` write it: train.jsonl + manifest.json with its sha256."""
    from teacherlm_core.storage import sha256_file

    root.mkdir(parents=True, exist_ok=True)
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = {
        "kind": "augmented",
        "counts": {"input": len(records) + 1, "output": len(records), "quarantined": 1},
        "files": {"train.jsonl": {"records": len(records), "sha256": sha256_file(root / "train.jsonl")}},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _trained(root: Path, steps: int = 4) -> Path:
    """A model dir as a training stage leaves it: weights + metrics.jsonl (one line per logged step)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.safetensors").write_bytes(b"weights")
    lines = [
        {"step": s, "loss": 3.0 - 0.1 * s, "tokens": 100, "tokens_per_s": 50.0} for s in range(1, steps + 1)
    ]
    (root / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


RECORDS = [
    {"id": f"r{i}", "task": "claims", "question": f"q{i}", "choices": ["yes", "no"], "answer": "yes"}
    for i in range(3)
]


def _pipeline(
    tmp_path: Path, monkeypatch, run_name: str, accuracies: dict[str, float], weights_root: str, eval_ids
):
    """One pipeline run: teacher trained + registered, data augmented by it, students trained, compared."""
    from teacherlm_core.evaluate import Accuracy, EvalReport, SampleScore
    from teacherlm_core.lineage import describe_dataset, log_datasets, registered_version
    from teacherlm_core.stages._run import pipeline_run_id, stage_run
    from teacherlm_core.stages._training import record_training
    from teacherlm_core.stages.compare import compare

    base = tmp_path / run_name
    with Tracker(run_name=run_name) as parent:  # as the local runner does; its stages run in other processes
        pass
    if True:
        monkeypatch.setenv(PARENT_ENV, parent.run_id)
        run = pipeline_run_id()
        teacher_data = _dataset(base / "teacher-data", RECORDS)
        with stage_run("train teacher", {"x": 1}, stage="train_teacher", children=True) as r:
            teacher = _trained(base / "teacher")
            rec = record_training(
                r, role="teacher", registered_model="t-teacher", output=str(teacher),
                model_uri=f"{weights_root}/{run_name}/teacher", data=str(teacher_data / "train.jsonl"),
                data_name="teacher data", accelerators=2, wall_seconds=1.0, pipeline_run=run,
            )  # fmt: skip
        teacher_version = rec["registered_model"]
        augmented = _dataset(base / "augmented", [r | {"chain_of_thought": "x"} for r in RECORDS])
        (augmented / "lineage.json").write_text(
            json.dumps({"teacher_version": registered_version(str(teacher))})
        )
        with stage_run("augment merge", stage="augment_merge") as t:
            log_datasets(
                t.run_id,
                [describe_dataset(teacher_data, "data to augment")],
                [describe_dataset(augmented, "augmented data")],
            )
        reports = []
        for variant, acc in accuracies.items():
            with stage_run(f"train student {variant}", stage="train_student", children=True) as r:
                student = _trained(base / f"student-{variant}", steps=2)
                record_training(
                    r, role="student", registered_model="t-student", output=str(student),
                    model_uri=f"{weights_root}/{run_name}/student-{variant}", data=str(augmented / "train.jsonl"),
                    data_name="augmented data", accelerators=1, wall_seconds=1.0, pipeline_run=run,
                    teacher_version=registered_version(str(augmented)), extra_tags={"teacherlm.variant": variant},
                )  # fmt: skip
            n_right = round(acc * len(eval_ids))
            samples = [SampleScore(id=i, task="claims", choice_loglikelihoods=[-1.0, -2.0], prediction=0,
                                   correct=k < n_right, gold=0 if k < n_right else 1) for k, i in enumerate(eval_ids)]  # fmt: skip
            report = EvalReport(model=variant, tasks={"claims": Accuracy(accuracy=acc, n=len(eval_ids))},
                                overall=Accuracy(accuracy=acc, n=len(eval_ids)), samples=samples)  # fmt: skip
            path = base / f"eval-{variant}.json"
            path.write_text(report.model_dump_json())
            reports.append(str(path))
        summary = compare(reports, str(base / "report"), student_registered_model="t-student")
        monkeypatch.delenv(PARENT_ENV)
    return parent.run_id, teacher_version, summary


def _check_store(client, tmp_path, monkeypatch, weights_root, expect_source):
    import mlflow

    ids = [f"e{i}" for i in range(10)]
    parent, teacher_version, summary = _pipeline(
        tmp_path, monkeypatch, "run1", {"plain": 0.5, "augmented": 0.7}, weights_root, ids
    )
    # The experiment opens on its runs in `mlflow ui`: marked as model training.
    exp = client.get_experiment_by_name("teacherlm")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # A registered teacher version whose source is where the weights are, with its lineage.
    name, version = teacher_version.split("/")
    assert name == "t-teacher"
    tv = client.get_model_version("t-teacher", version)
    assert tv.source == expect_source("run1/teacher")
    assert tv.tags["teacherlm.package_version"] and tv.tags["teacherlm.pipeline_run"] == parent
    digest = json.loads((tmp_path / "run1" / "teacher-data" / "manifest.json").read_text())["files"][
        "train.jsonl"
    ]["sha256"]
    assert tv.tags["teacherlm.data_digest"] == digest
    # Each student names the teacher version that wrote its data.
    students = client.search_model_versions("name = 't-student'")
    assert {mv.tags["teacherlm.variant"] for mv in students} == {"plain", "augmented"}
    assert {mv.tags["teacherlm.teacher_version"] for mv in students} == {teacher_version}
    # The best student of the comparison is the champion.
    champ = client.get_model_version_by_alias("t-student", "champion")
    assert champ.tags["teacherlm.variant"] == "augmented" and summary["champion"]["promoted"]
    # The pipeline run lists the datasets of its stages too, once each.
    parent_inputs = [(d.dataset.name, d.dataset.digest) for d in client.get_run(parent).inputs.dataset_inputs]
    assert {"teacher data", "data to augment", "augmented data"} <= {n for n, _ in parent_inputs}
    assert len(parent_inputs) == len(set(parent_inputs))
    # Each child run names its stage, its datasets and its registered version.
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    by_name = {c.info.run_name: c for c in children}
    assert set(by_name) >= {
        "train teacher",
        "augment merge",
        "train student plain",
        "train student augmented",
        "compare",
    }
    assert by_name["train teacher"].data.tags["teacherlm.stage"] == "train_teacher"
    assert by_name["train teacher"].data.tags["teacherlm.registered_model"] == teacher_version
    merge_inputs = {
        (d.dataset.name, {t.key: t.value for t in d.tags}["mlflow.data.context"], d.dataset.digest)
        for d in by_name["augment merge"].inputs.dataset_inputs
    }
    augmented_digest = json.loads((tmp_path / "run1" / "augmented" / "manifest.json").read_text())["files"][
        "train.jsonl"
    ]["sha256"]
    assert ("data to augment", "input", digest[:36]) in merge_inputs
    assert ("augmented data", "output", augmented_digest[:36]) in merge_inputs
    (ds,) = [
        d.dataset
        for d in by_name["augment merge"].inputs.dataset_inputs
        if d.dataset.name == "augmented data"
    ]
    assert json.loads(ds.profile) == {"records": 3, "input": 4, "output": 3, "quarantined": 1}
    assert "chain_of_thought" in json.loads(ds.schema)["mlflow_colspec"][0]["name"] or any(
        c["name"] == "chain_of_thought" for c in json.loads(ds.schema)["mlflow_colspec"]
    )
    # The training stage's cost, counted from metrics.jsonl: 4 steps of 100 tokens at 50 tok/s, 2 ranks.
    cost = json.loads((tmp_path / "run1" / "teacher" / "cost.json").read_text())["training"]
    assert cost["tokens"] == 400 and cost["accelerator_seconds"] == pytest.approx(16.0)

    # A later run whose best student is worse on the same evaluation set leaves the champion alone...
    _, _, s2 = _pipeline(tmp_path, monkeypatch, "run2", {"plain": 0.4, "augmented": 0.6}, weights_root, ids)
    assert not s2["champion"]["promoted"] and "stays champion" in s2["champion"]["reason"]
    assert client.get_model_version_by_alias("t-student", "champion").version == champ.version
    # ... one measured on another evaluation set is not compared with it ...
    _, _, s3 = _pipeline(
        tmp_path, monkeypatch, "run3", {"augmented": 0.9}, weights_root, [f"x{i}" for i in range(10)]
    )
    assert not s3["champion"]["promoted"] and "another set" in s3["champion"]["reason"]
    # ... and a better one on the same set takes the alias.
    _, _, s4 = _pipeline(tmp_path, monkeypatch, "run4", {"plain": 0.5, "augmented": 0.9}, weights_root, ids)
    assert s4["champion"]["promoted"]
    new = client.get_model_version_by_alias("t-student", "champion")
    assert new.version != champ.version and new.tags["teacherlm.eval_accuracy"].startswith("0.9")
    assert mlflow.MlflowClient  # the client module stays importable


def test_lineage_in_the_local_sqlite_store(tmp_path, monkeypatch):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    weights = tmp_path / "weights"
    _check_store(client, tmp_path, monkeypatch, str(weights), lambda rel: (weights / rel).resolve().as_uri())

    # `teacherlm runs`: a table of the recent pipeline runs with their stages and registered versions.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), COLUMNS="250")
    res = subprocess.run([sys.executable, "-m", "teacherlm_core", "runs", "-n", "2"], capture_output=True, text=True,
                         env=env, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "run4" in res.stdout and "run3" in res.stdout and "run1" not in res.stdout
    assert (
        "t-student/" in res.stdout
        and "train student augmented" in res.stdout
        and "augmented data" in res.stdout
    )


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_runs_without_a_store_or_with_an_unreachable_one(tmp_path):
    import mlflow

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    runs = [sys.executable, "-m", "teacherlm_core", "runs"]
    res = subprocess.run(runs, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and f"no MLflow store at {tmp_path / 'work' / 'mlflow.db'}" in res.stderr
    assert not (tmp_path / "work" / "mlflow.db").exists()  # looking created nothing
    mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}").search_experiments()  # an empty store
    res = subprocess.run(runs, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "no pipeline runs" in res.stdout
    res = subprocess.run([*runs, "--tracking-uri", "http://127.0.0.1:9"], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert res.returncode == 2 and "cannot read the MLflow store http://127.0.0.1:9" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_lineage_on_a_real_mlflow_server_with_weights_on_s3(mlflow_server, s3_env, tmp_path, monkeypatch):
    import mlflow

    from teacherlm_core import storage

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    root = f"s3://{s3_env.bucket}/models"
    for run in ("run1", "run2", "run3", "run4"):
        for who in ("teacher", "student-plain", "student-augmented"):
            storage.write_bytes(f"{root}/{run}/{who}/model.safetensors", b"weights")
    _check_store(
        mlflow.MlflowClient(mlflow_server.uri), tmp_path, monkeypatch, root, lambda rel: f"{root}/{rel}"
    )


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_mlflow_ui_opens_on_the_runs_with_their_datasets(tmp_path, monkeypatch):
    """`mlflow ui` on a pipeline's store, in a real headless browser: the experiment opens on its runs
    (not the GenAI traces view), and the stage runs show their datasets."""
    import mlflow
    from browser import dump_dom
    from servers import free_port

    db = tmp_path / "work" / "mlflow.db"
    _pipeline(tmp_path, monkeypatch, "ui-run", {"plain": 0.5, "augmented": 0.7}, str(tmp_path / "w"),
                             [f"e{i}" for i in range(10)])  # fmt: skip
    exp = mlflow.MlflowClient(f"sqlite:///{db}").get_experiment_by_name("teacherlm")
    port = free_port()
    log = open(tmp_path / "ui.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db}", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        import time
        import urllib.parse
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mlflow ui did not come up; see {tmp_path / 'ui.log'}") from None
                time.sleep(0.5)
        page = f"http://127.0.0.1:{port}/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning"
        dom = dump_dom(page, wait_ms=20000)
        # The stages' runs (children of the pipeline run), found by their stage tag, with their datasets.
        query = urllib.parse.quote("tags.`teacherlm.stage` = 'augment_merge'")
        stages = dump_dom(f"{page}&searchFilter={query}", wait_ms=20000)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
    (tmp_path / "ui.html").write_text(dom)
    (tmp_path / "ui-stage.html").write_text(stages)
    text = _text(dom)
    assert "Run Name" in text and "ui-run" in text, "the experiment page does not open on the runs"
    # The pipeline run's row lists the data it went through, seed to augmented, without expanding it.
    assert "data to augment" in text and "augmented data" in text, "the runs table shows no dataset"
    # Searching by stage tag finds the stage run (MLflow nests it under its pipeline run).
    assert "2 matching runs" in _text(stages)


def _text(dom: str) -> str:
    """The visible text of a dumped DOM (styles and scripts left out)."""
    import re

    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@pytest.mark.parametrize("name", ["eval.parquet", "eval.jsonl", "eval.jsonl.gz", "eval"])
def test_a_dataset_file_is_described_whatever_its_format_and_name(tmp_path, name):
    import gzip

    from teacherlm_core.lineage import describe_dataset
    from teacherlm_core.records import write_jsonl, write_parquet

    records = [
        {"id": f"q{i}", "task": "t", "question": "Q?", "choices": ["a", "b"], "answer": "a"} for i in range(3)
    ]
    path = tmp_path / name
    if name.endswith("parquet") or name == "eval":  # Parquet, also under a name that says nothing
        write_parquet(path, records)
    else:
        write_jsonl(tmp_path / "plain.jsonl", records)
        data = (tmp_path / "plain.jsonl").read_bytes()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    ref = describe_dataset(path, "eval data")
    assert ref["columns"] == ["answer", "choices", "id", "question", "task"]
    assert ref["counts"] == {"records": 3} and ref["digest"]
