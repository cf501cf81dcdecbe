"""The KFP components are thin, typed, versioned interfaces; the stage functions they call work."""

from __future__ import annotations

import ast
import inspect
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import components  # noqa: E402 (after the path)
from teacherlm_core import __version__, pipeline_ops  # noqa: E402

COMPONENTS = [getattr(components, name) for name in components.__all__]


@pytest.mark.parametrize("component", COMPONENTS, ids=components.__all__)
def test_component_is_a_thin_versioned_interface(component):
    container = component.component_spec.implementation.container
    assert container.image.startswith("ghcr.io/teacherlm/teacherlm-")
    assert container.image.endswith(f":{__version__}")
    source = inspect.getsource(component.python_func)
    assert "pip install" not in " ".join(container.command)  # install_kfp_package=False, no packages
    tree = ast.parse(source).body[0]
    body = tree.body[1:]  # after the docstring
    code_lines = sum(node.end_lineno - node.lineno + 1 for node in body)
    assert code_lines <= 12, f"{component.name}: {code_lines} lines of code; logic belongs in teacherlm_core"
    imports = [n for n in body if isinstance(n, ast.ImportFrom)]
    assert [i.module for i in imports] == ["teacherlm_core"], "one import: teacherlm_core"
    calls = {
        f"{n.func.value.id}.{n.func.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
    }
    assert len({c for c in calls if c.startswith("pipeline_")}) == 1, calls
    for name, spec in component.component_spec.inputs.items():  # KFP keeps input descriptions only
        assert spec.description, f"{component.name}.{name} has no description"
    documented = tree.body[0].value.value
    for name in component.component_spec.outputs or {}:
        assert name == "Output" or f"{name}: " in documented, f"{component.name}: output {name} undocumented"


def test_component_files_are_short():
    for path in (ROOT / "components").glob("*.py"):
        assert len(path.read_text().splitlines()) <= 55, path


def _data(tmp_path, per_task=6):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims", "arithmetic"], per_task=per_task, seed=0)
    return tmp_path / "data"


def test_split_file_and_plan_shards(tmp_path):
    from teacherlm_core.errors import ConfigError, DataError

    data = _data(tmp_path)
    assert pipeline_ops.split_file(data, "test") == data / "test.jsonl"
    assert pipeline_ops.split_file(data / "train.jsonl", "anything") == data / "train.jsonl"
    assert pipeline_ops.plan_shards(str(data), 3) == [0, 1, 2]
    with pytest.raises(ConfigError, match="num_shards"):
        pipeline_ops.plan_shards(str(data), 0)
    with pytest.raises(DataError, match=r"no train\.jsonl"):
        pipeline_ops.plan_shards(str(tmp_path), 2)


def test_student_variants():
    assert pipeline_ops.student_variants(False) == ["plain", "augmented"]
    assert pipeline_ops.student_variants(True) == [
        "plain", "augmented", "fundamentals", "chain_of_thought", "common_mistakes",
    ]  # fmt: skip
    assert pipeline_ops.VARIANTS["plain"] == ()


def test_teacher_data_adds_star_rationales_as_samples(tmp_path):
    from teacherlm_core.pipeline_train import teacher_data
    from teacherlm_core.schema import load_samples

    data = _data(tmp_path)
    star = tmp_path / "star"
    star.mkdir()
    first = load_samples(data / "train.jsonl")[0].to_record()
    (star / "train.jsonl").write_text(
        json.dumps(first | {"chain_of_thought": "Mine. So the answer is x."}) + "\n"
    )
    n = teacher_data(str(data), str(star), tmp_path / "out.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert n == len(rows) == len(load_samples(data / "train.jsonl")) + 1
    assert rows[-1]["id"] == f"{first['id']}-star" and rows[-1]["chain_of_thought"].startswith("Mine")
    (star / "train.jsonl").write_text("")  # STaR kept nothing: the seed data alone
    assert teacher_data(str(data), str(star), tmp_path / "out2.jsonl") == n - 1


def test_merge_shards_refuses_mixed_plans(tmp_path):
    from teacherlm_core.errors import TeacherLMError

    for i, fp in enumerate(("a", "b")):
        (tmp_path / f"s{i}" / "shards").mkdir(parents=True)
        (tmp_path / f"s{i}" / "plan.json").write_text(json.dumps({"fingerprint": fp, "config": {}}))
    with pytest.raises(TeacherLMError, match="2 plans"):
        pipeline_ops.merge_shards([str(tmp_path / "s0"), str(tmp_path / "s1")], str(tmp_path / "out"))


def _report(path: Path, model: str, correct: list[bool]) -> str:
    from teacherlm_core.evaluate import SampleScore, summarize

    scores = [
        SampleScore(id=f"{t}-{i}", task=t, choice_loglikelihoods=[-1.0, -2.0], prediction=0, correct=c)
        for t in ("claims", "dates")
        for i, c in enumerate(correct)
    ]
    path.write_text(summarize(model, scores).model_dump_json())
    return str(path)


def test_compare_writes_report_plots_and_metrics(tmp_path):
    reports = [
        _report(tmp_path / "p.json", "plain", [True, False, False, False]),
        _report(tmp_path / "a.json", "augmented", [True, True, True, False]),
    ]
    out = tmp_path / "report"
    summary = pipeline_ops.compare(
        reports, str(out), markdown=str(tmp_path / "r.md"), html=str(tmp_path / "r.html")
    )
    assert summary["overall"] == {"plain": 0.25, "augmented": 0.75}
    assert summary["gain"] == {"augmented": 0.5}
    assert summary["metrics"] == {"accuracy.plain": 0.25, "accuracy.augmented": 0.75, "gain.augmented": 0.5}
    for name in ("report.md", "accuracy.png", "gain.png", "report.html", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert "| **overall** |" in (tmp_path / "r.md").read_text()
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    with pytest.raises(Exception, match="same model name"):
        pipeline_ops.compare([reports[0], reports[0]], str(tmp_path / "again"))


def test_launcher_choice(monkeypatch):
    from teacherlm_core.errors import ConfigError
    from teacherlm_core.pipeline_train import _launcher

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert _launcher("auto", 1) == "torchrun"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert _launcher("auto", 4) == "trainjob"
    with pytest.raises(ConfigError, match="nodes"):
        _launcher("torchrun", 2)
    with pytest.raises(ConfigError, match="launcher"):
        _launcher("slurm", 1)


def test_stage_tracking_nests_under_the_kfp_run_parent(tmp_path, monkeypatch):
    import mlflow

    from teacherlm_core.tracking import PARENT_ENV

    monkeypatch.delenv(PARENT_ENV, raising=False)
    monkeypatch.setenv(pipeline_ops.RUN_ENV, "kfp-123")  # on a cluster: the pod's pipeline/runid label
    for name in ("a", "b"):
        with pipeline_ops.stage(name, {"x": 1}):
            pass
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(pipeline_ops.EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("teacherlm.parent") == "true"]
    children = sorted(
        r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    )
    assert children == ["a", "b"]


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task")  # our images hold this environment
def test_a_component_runs_with_the_local_runner(tmp_path):
    """The same component object runs outside a pipeline (KFP's local runner, this environment)."""
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    task = components.build_data(tasks="claims", per_task=3, seed=0)
    data = Path(task.outputs["data"].path)
    assert (data / "train.jsonl").is_file() and json.loads((data / "manifest.json").read_text())["records"][
        "out"
    ] == 3
    assert task.outputs["data"].metadata["out"] == 3


def test_training_on_a_cluster_submits_and_follows_a_trainjob(tmp_path, monkeypatch):
    """launcher=trainjob: config and data on shared storage, a TrainJob on the GPU pool, followed to the end;
    a retried task follows the job it started instead of submitting another."""
    import yaml
    from fake_k8s import FakeK8s

    from teacherlm_core import pipeline_train
    from teacherlm_core.train import load_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("TEACHERLM_NAMESPACE", "ml")
    monkeypatch.setenv(pipeline_ops.RUN_ENV, "0123456789abcdef")
    shared = tmp_path / "shared"
    cfg = load_config(
        "student",
        "student_tiny",
        {"model": "org/base", "data": str(shared / "train.jsonl"), "output": str(shared / "students" / "plain"),
         **pipeline_train._train_overrides(0, 2, 8, "zero3")},
    )  # fmt: skip
    with FakeK8s() as k8s:
        pipeline_train._trainjob("student", cfg, api_client=k8s.api_client(), poll_s=0)
        ((plural, ns, name), job), *_ = k8s.jobs.items()
        pipeline_train._trainjob("student", cfg, api_client=k8s.api_client(), poll_s=0)
        assert len(k8s.jobs) == 1  # the retry followed the existing job
    assert (plural, ns, name) == ("trainjobs", "ml", "tlm-student-01234567-plain")
    trainer = job["spec"]["trainer"]
    config_uri = str(shared / "students" / "plain.config.yaml")
    assert trainer["command"] == ["teacherlm", "train", "student", "--config", config_uri]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    assert trainer["image"] == pipeline_ops.IMAGES["train"]
    env = {e["name"]: e for e in trainer["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow:5000"
    assert (
        env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == "teacherlm-minio"
    )  # never the value
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["template"]["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    written = yaml.safe_load(Path(config_uri).read_text())
    assert written["data"] == str(shared / "train.jsonl") and written["launch"]["deepspeed"] == "zero3"


def test_a_trainjob_needs_shared_storage(tmp_path):
    from teacherlm_core.errors import ConfigError
    from teacherlm_core.pipeline_train import train_student

    data = _data(tmp_path)
    with pytest.raises(ConfigError, match="work_root"):
        train_student("org/base", str(data), str(tmp_path / "out"), variant="plain", config="student_tiny",
                      launcher="trainjob")  # fmt: skip
