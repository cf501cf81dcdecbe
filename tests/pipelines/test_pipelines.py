"""The pipelines: golden compile, what the specs carry, parameters, publish/submit against a fake API server,
and a local run with KFP's local runner (the full end_to_end run is the demo's test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from teacherlm_core import __version__
from teacherlm_core.errors import ConfigError, TeacherLMError
from teacherlm_core.kfp_support import client as kfp_client
from teacherlm_core.kfp_support import local as kfp_local
from teacherlm_core.kfp_support import specs as kfp_specs
from teacherlm_pipelines.compile import compile_pipelines

ROOT = Path(__file__).resolve().parents[2]
NAMES = kfp_specs.NAMES


def cli(*args, timeout=300, **kw):
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


def _docs(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    compile_pipelines(out)
    return out


# -- golden compile ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_committed_spec_matches_its_source(compiled, name):
    """Like KFP's own compilation tests: recompile and compare with the committed spec."""
    committed = ROOT / "pipelines" / name / f"{name}.yaml"
    assert committed.is_file(), f"run `teacherlm pipeline compile` and commit {committed}"
    assert (compiled / name / f"{name}.yaml").read_text() == committed.read_text(), (
        f"{committed} is stale: run `teacherlm pipeline compile`"
    )


def test_compile_is_deterministic_and_takes_settings(compiled, tmp_path):
    again = compile_pipelines(tmp_path / "a", names=("augment",))[0]
    assert again.read_text() == (compiled / "augment" / "augment.yaml").read_text()
    custom = compile_pipelines(
        tmp_path / "b", names=("augment",), settings={"gpu_pool": "pool=gpu", "parallelism": 7}
    )[0]
    spec, platform = _docs(custom)
    loop = spec["components"]["comp-augment-dataset"]["dag"]["tasks"]["for-loop-1"]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 7
    assert platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-augment-shard"][
        "nodeSelector"
    ] == {"labels": {"pool": "gpu"}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        compile_pipelines(tmp_path / "c", settings={"cpu_pool": "nolabel"})


def test_nested_graphs_take_the_placement_of_their_compile(compiled, tmp_path):
    """end_to_end nests three graphs, built once per placement: a second compile with other settings
    places every GPU task of every nested graph by them, not by the first compile's."""
    _, platform = _docs(
        compile_pipelines(tmp_path, names=("end_to_end",), settings={"gpu_pool": "pool=b"})[0]
    )
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    gpu = ("exec-data-star", "exec-augment-shard", "exec-evaluate", "exec-evaluate-2")
    assert {executors[name]["nodeSelector"]["labels"]["pool"] for name in gpu} == {"b"}
    default = _docs(compiled / "end_to_end" / "end_to_end.yaml")[1]["platforms"]["kubernetes"]
    assert default["deploymentSpec"]["executors"]["exec-augment-shard"]["nodeSelector"] == {
        "labels": {"nvidia.com/gpu.present": "true"}
    }


def test_published_pipelines_take_uris_for_their_graphs_artifacts():
    """A published pipeline's parameters are its graph's, written once: each artifact input becomes the
    URI parameter of the same name, imported before the graph runs; nothing else differs."""
    import inspect

    from kfp.dsl import Dataset, Input, Model

    from teacherlm_core.stages.params import P
    from teacherlm_pipelines.augment.pipeline import augment, augment_dataset

    graph, published = inspect.signature(augment_dataset.fn), inspect.signature(augment.fn)
    assert list(published.parameters) == list(graph.parameters)
    assert graph.parameters["teacher"].annotation == Input[Model]
    assert graph.parameters["data"].annotation == Input[Dataset]
    for name in ("teacher", "data"):
        assert (published.parameters[name].annotation, published.parameters[name].default) == (
            str,
            getattr(P, name),
        )
    for name in set(graph.parameters) - {"teacher", "data"}:
        assert published.parameters[name] == graph.parameters[name]
    spec = _docs(ROOT / "pipelines" / "augment" / "augment.yaml")[0]
    importers = {
        t["taskInfo"]["name"]: t
        for t in spec["root"]["dag"]["tasks"].values()
        if "importer" in t["componentRef"]["name"]
    }
    assert set(importers) == {"import teacher", "import data"}


def test_a_nested_graph_missing_from_uses_is_named():
    from teacherlm_core.kfp_support.graphs import pipeline
    from teacherlm_core.kfp_support.placement import Placement, placed
    from teacherlm_pipelines.teacher.pipeline import teacher

    @pipeline("outer", "Nests the teacher without declaring it.")
    def outer():
        teacher()

    with placed(Placement(retries=5)), pytest.raises(RuntimeError, match=r"teacherlm-teacher.*uses="):
        outer.component()


KUEUE = {"kueue.x-k8s.io/queue-name": "team-a", "kueue.x-k8s.io/priority-class": "teacherlm-augmentation"}


def test_compiled_for_a_queue_gpu_work_goes_through_kueue(tmp_path):
    """`compile --queue Q --priority-class P`: every pod that asks for an accelerator carries Kueue's labels,
    every training task hands them to its TrainJob, and no constant caps the fan-out (Kueue admits by quota)."""
    res = cli("pipeline", "compile", "--output", str(tmp_path), "--queue", "team-a",
              "--priority-class", "teacherlm-augmentation", "--queue-timeout", "7200")  # fmt: skip
    assert res.returncode == 0, res.stderr
    for name in NAMES:
        spec, platform = _docs(tmp_path / name / f"{name}.yaml")
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        containers = spec["deploymentSpec"]["executors"]
        gpu = [
            label
            for label, ex in containers.items()
            if "accelerator" in ex.get("container", {}).get("resources", {})
        ]
        assert gpu, name
        for label, settings in executors.items():
            labels = settings["podMetadata"]["labels"]
            assert (KUEUE.items() <= labels.items()) == (label in gpu), f"{name}: {label}"
            assert ("activeDeadlineSeconds" in settings and "emptyDirMounts" in settings) == (label in gpu)
        for label in (x for x in containers if x in ("exec-train-teacher", "exec-train-student")):
            env = {e["name"]: e["value"] for e in containers[label]["container"]["env"]}
            assert env == {"TEACHERLM_QUEUE": "team-a", "TEACHERLM_PRIORITY_CLASS": "teacherlm-augmentation",
                           "TEACHERLM_QUEUE_TIMEOUT_S": "7200"}  # fmt: skip
        for comp in spec["components"].values():
            for task in comp.get("dag", {}).get("tasks", {}).values():
                assert "parallelismLimit" not in task.get("iteratorPolicy", {}), name
    # An explicit cap still wins; a priority without a queue is refused (Kueue would ignore it).
    capped = compile_pipelines(tmp_path / "c", names=("augment",), settings={"queue": "q", "parallelism": 9})[
        0
    ]
    loop = _docs(capped)[0]["components"]["comp-augment-dataset"]["dag"]["tasks"]["for-loop-1"]
    assert loop["iteratorPolicy"]["parallelismLimit"] == 9
    with pytest.raises(ConfigError, match="priority_class"):
        compile_pipelines(tmp_path / "d", names=("augment",), settings={"priority_class": "high"})
    with pytest.raises(ConfigError, match="queue"):
        compile_pipelines(tmp_path / "e", names=("augment",), settings={"queue": "Team A"})


def test_compiled_with_metrics_gpu_tasks_serve_them_and_every_task_knows_the_pushgateway(tmp_path):
    settings = {"metrics_port": 9400, "pushgateway": "http://pushgateway.monitoring:9091"}
    spec, platform = _docs(compile_pipelines(tmp_path, names=("augment",), settings=settings)[0])
    containers = spec["deploymentSpec"]["executors"]
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    shard = {e["name"]: e["value"] for e in containers["exec-augment-shard"]["container"]["env"]}
    assert shard == {"TEACHERLM_METRICS_PORT": "9400", "TEACHERLM_PUSHGATEWAY": settings["pushgateway"]}
    assert executors["exec-augment-shard"]["podMetadata"]["labels"]["teacherlm.io/metrics"] == "true"
    merge = {e["name"]: e["value"] for e in containers["exec-augment-merge"]["container"]["env"]}
    assert merge == {"TEACHERLM_PUSHGATEWAY": settings["pushgateway"]}  # it deletes the run's groups
    assert "teacherlm.io/metrics" not in executors["exec-augment-merge"]["podMetadata"]["labels"]


@pytest.mark.parametrize("name", ["teacher", "student", "end_to_end"])
def test_training_is_followed_by_a_cleanup_whatever_its_outcome(name):
    """KFP's exit-handler form that keeps the pipeline's outputs: a task after the training tasks (or the
    students' loop) that runs when they fail too, never cached, deleting the run's unfinished TrainJobs."""
    spec = _docs(ROOT / "pipelines" / name / f"{name}.yaml")[0]
    dags = [c["dag"]["tasks"] for c in [spec["root"], *spec["components"].values()] if "dag" in c]
    cleanups = [(tasks, t) for tasks in dags for n, t in tasks.items() if n.startswith("train-cleanup")]
    assert len(cleanups) == {"teacher": 1, "student": 1, "end_to_end": 2}[name]
    for tasks, task in cleanups:
        assert task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
        assert task["cachingOptions"].get("enableCache") is not True
        (upstream,) = task["dependentTasks"]
        trains = json.dumps(tasks[upstream])
        assert upstream.startswith(("train-teacher", "for-loop")) and "train" in trains, upstream


@pytest.mark.parametrize("name", NAMES)
def test_the_default_specs_carry_no_queue(name):
    text = (ROOT / "pipelines" / name / f"{name}.yaml").read_text()
    assert "kueue.x-k8s.io" not in text and "TEACHERLM_QUEUE" not in text and "TEACHERLM_METRICS" not in text


def test_cli_compile_writes_all_four(tmp_path):
    res = cli("pipeline", "compile", "--output", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert sorted(p.parent.name for p in tmp_path.glob("*/*.yaml")) == sorted(NAMES)


# -- what the specs carry ------------------------------------------------------------------------
GPU_EXECUTORS = {"exec-data-star", "exec-augment-shard", "exec-evaluate", "exec-evaluate-2"}


def _tasks(spec: dict) -> dict[str, dict]:
    """Every task of every DAG, by task name (names repeat across DAGs only for identical components)."""
    found = {}
    for comp in [spec["root"], *spec["components"].values()]:
        found |= comp.get("dag", {}).get("tasks", {})
    return found


@pytest.mark.parametrize("name", NAMES)
def test_specs_place_gpu_and_cpu_stages(name):
    spec, platform = _docs(ROOT / "pipelines" / name / f"{name}.yaml")
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    containers = spec["deploymentSpec"]["executors"]
    for label, settings in executors.items():
        resources = containers[label]["container"]["resources"]
        if label.rsplit("-", 1)[0] in GPU_EXECUTORS or label in GPU_EXECUTORS:
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert settings["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in settings[
                "tolerations"
            ]
            # Nothing holds a GPU forever; NCCL between vLLM's tensor-parallel ranks needs more than 64 MiB of shm.
            assert int(settings["activeDeadlineSeconds"]) == 3 * 86400
            assert settings["emptyDirMounts"] == [
                {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "16Gi", "volumeName": "dshm"}
            ]
        else:
            assert "accelerator" not in resources
            assert "activeDeadlineSeconds" not in settings and "emptyDirMounts" not in settings
            assert "nodeSelector" not in settings  # the GPU taint keeps CPU stages off GPU nodes
            assert "tolerations" not in settings
        assert settings["secretAsEnv"][0]["optional"] is True  # S3 keys by reference, never values
        assert settings["fieldPathAsEnv"] == [
            {"fieldPath": "metadata.labels['pipeline/runid']", "name": "TEACHERLM_KFP_RUN_ID"}
        ]
    for comp in spec["components"].values():  # the run id is no input: it would spoil every cache key
        assert "run_id" not in comp.get("inputDefinitions", {}).get("parameters", {})
    for label, ex in containers.items():
        if "container" in ex:
            assert ex["container"]["image"].endswith(f":{__version__}"), label
            assert "pip install" not in json.dumps(ex["container"]["command"])
    text = (ROOT / "pipelines" / name / f"{name}.yaml").read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text.replace("envVar: AWS_SECRET_ACCESS_KEY", "").replace(
        "secretKey: AWS_SECRET_ACCESS_KEY", ""
    )


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_has_a_default_and_a_description(name):
    spec = _docs(ROOT / "pipelines" / name / f"{name}.yaml")[0]
    params = spec["root"]["inputDefinitions"]["parameters"]
    for key, p in params.items():
        assert "defaultValue" in p and p.get("isOptional"), f"{name}.{key} has no default"
        assert p.get("description"), f"{name}.{key} has no description"
    for task_name, task in _tasks(spec).items():
        assert task["taskInfo"]["name"], task_name


def test_retries_caching_and_fan_out():
    spec = _docs(ROOT / "pipelines" / "end_to_end" / "end_to_end.yaml")[0]
    tasks = _tasks(spec)
    for name in ("data-star", "augment-shard", "train-teacher", "train-student", "evaluate"):
        assert tasks[name]["retryPolicy"]["maxRetryCount"] == 2, name
        assert tasks[name]["cachingOptions"]["enableCache"] is True, name
    for name in ("data-build", "augment-plan", "augment-merge"):
        assert "retryPolicy" not in tasks[name], name
    assert tasks["compare"]["cachingOptions"].get("enableCache") is not True  # a report is always fresh
    loops = [
        t for comp in spec["components"].values() for t in comp.get("dag", {}).get("tasks", {}).values()
        if "parameterIterator" in t
    ]  # fmt: skip
    assert len(loops) == 2 and all(t["iteratorPolicy"]["parallelismLimit"] == 4 for t in loops)
    merge = tasks["augment-merge"]["inputs"]["artifacts"]["shards"]
    assert "taskOutputArtifact" in merge  # dsl.Collected of the shards
    shard = spec["deploymentSpec"]["executors"]["exec-augment-shard"]["container"]["resources"]["accelerator"]
    assert shard["resourceCount"] == "{{$.inputs.parameters['pipelinechannel--tensor_parallel_size']}}"


@pytest.mark.parametrize("name", ["augment", "end_to_end"])
def test_the_dataset_reaches_the_plan_task_only_the_shards_get_their_split(name):
    """A KFP task downloads every input artifact whole before it starts (kubeflow/pipelines#5672):
    a shard task that took the dataset would download all of it (64 times at 64 shards). The plan
    task takes it once and splits it; each shard takes the plan's split (split.json only, with
    work_root) and reads its own file of it."""
    spec = _docs(ROOT / "pipelines" / name / f"{name}.yaml")[0]
    artifacts = {
        comp: set(spec["components"][comp]["inputDefinitions"]["artifacts"])
        for comp in ("comp-augment-plan", "comp-augment-shard")
    }
    assert artifacts == {"comp-augment-plan": {"data"}, "comp-augment-shard": {"split", "teacher"}}
    (loop,) = [  # the ParallelFor over the shards passes the plan's split in
        t["inputs"]["artifacts"] for comp in spec["components"].values()
        for t in comp.get("dag", {}).get("tasks", {}).values()
        if "pipelinechannel--augment-plan-split" in t.get("inputs", {}).get("artifacts", {})
    ]  # fmt: skip
    assert loop["pipelinechannel--augment-plan-split"]["taskOutputArtifact"] == {
        "outputArtifactKey": "split", "producerTask": "augment-plan",
    }  # fmt: skip
    assert set(loop) == {"pipelinechannel--augment-plan-split", "pipelinechannel--teacher"}
    assert "work_root" in _tasks(spec)["augment-plan"]["inputs"]["parameters"]


def test_end_to_end_nests_the_three():
    """The teacher pipeline, then augmentation of the task data with its teacher, then the students on the task data."""
    spec = _docs(ROOT / "pipelines" / "end_to_end" / "end_to_end.yaml")[0]
    root = spec["root"]["dag"]["tasks"]
    assert {t["componentRef"]["name"] for t in root.values()} == {
        "comp-teacherlm-teacher", "comp-data-build-2", "comp-augment-dataset", "comp-compare-students",
    }  # fmt: skip
    producer = {
        (task, name): a["taskOutputArtifact"]["producerTask"]
        for task in ("augment-dataset", "compare-students")
        for name, a in root[task]["inputs"]["artifacts"].items()
    }
    assert producer[("augment-dataset", "teacher")] == "teacherlm-teacher"
    (name,) = [n for n, t in root.items() if t["componentRef"]["name"] == "comp-data-build-2"]
    assert producer[("augment-dataset", "data")] == name == producer[("compare-students", "eval_data")]
    task_data = root[name]["inputs"]["parameters"]
    assert task_data["source"]["componentInputParameter"] == "task_data"
    assert task_data["annotated"]["runtimeValue"]["constant"] is False


# -- parameters ----------------------------------------------------------------------------------
def test_params_are_typed_by_the_spec():
    spec = kfp_specs.load_spec(kfp_specs.find_spec("end_to_end"))
    typed = kfp_specs.coerce_params(
        spec, {"per_task": "12", "temperature": "0.5", "ablation": "true", "engine": "hf"}
    )
    assert typed == {"per_task": 12, "temperature": 0.5, "ablation": True, "engine": "hf"}
    with pytest.raises(ConfigError) as err:
        kfp_specs.coerce_params(spec, {"per_task": "many", "nope": "1", "ablation": "maybe"})
    assert len(err.value.problems) == 3
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        kfp_specs.parse_param_args(["per_task"])


def test_specs_are_found_in_the_installed_package_or_an_explicit_dir(tmp_path, monkeypatch):
    import teacherlm_pipelines as pipelines

    (tmp_path / "pipelines" / "augment").mkdir(parents=True)
    (tmp_path / "pipelines" / "augment" / "augment.yaml").write_text("x")
    monkeypatch.chdir(tmp_path)  # the working dir does not matter
    installed = Path(pipelines.__file__).parent
    assert kfp_specs.find_spec("augment") == installed / "augment" / "augment.yaml"
    assert (
        kfp_specs.find_spec("augment", tmp_path / "pipelines")
        == tmp_path / "pipelines" / "augment" / "augment.yaml"
    )
    with pytest.raises(TeacherLMError, match="no compiled spec"):
        kfp_specs.find_spec("teacher", tmp_path / "pipelines")
    with pytest.raises(ConfigError, match="choose one of"):
        kfp_specs.find_spec("nope")


# -- publish and submit against a fake KFP API server --------------------------------------------
@pytest.fixture
def fake_kfp(monkeypatch, tmp_path):
    from fake_kfp import FakeKFP

    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client keeps a context file under ~/.config
    with FakeKFP() as server:
        yield server


def test_publish_uploads_each_pipeline_once_per_version(fake_kfp):
    first = kfp_client.publish(fake_kfp.url)
    assert [r["status"] for r in first] == ["created"] * 4
    assert {r["pipeline"] for r in first} == {
        "teacherlm-teacher", "teacherlm-augment", "teacherlm-student", "teacherlm-end-to-end",
    }  # fmt: skip
    for versions in fake_kfp.state.versions.values():
        assert [v["display_name"] for v in versions] == [__version__]  # the package version, only
        assert versions[0]["pipeline_spec"]["pipelineInfo"]["name"].startswith("teacherlm-")
    again = kfp_client.publish(fake_kfp.url)
    assert [r["status"] for r in again] == ["exists"] * 4
    assert [r["version_id"] for r in again] == [r["version_id"] for r in first]
    assert (
        len(fake_kfp.calls("POST", "/pipelines/upload_version")) == 4
    )  # the second publish uploaded nothing
    assert fake_kfp.calls("GET", "/healthz")


def test_publish_uses_the_projected_token_and_refuses_stale_specs(fake_kfp, monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("sa-token-123")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    kfp_client.publish(fake_kfp.url, ("augment",))
    assert {r["auth"] for r in fake_kfp.state.requests if r["path"].endswith("/pipelines")} == {
        "Bearer sa-token-123"
    }
    stale = tmp_path / "specs" / "teacher"
    stale.mkdir(parents=True)
    text = (ROOT / "pipelines" / "teacher" / "teacher.yaml").read_text()
    (stale / "teacher.yaml").write_text(text.replace(f":{__version__}", ":0.0.1"))
    with pytest.raises(TeacherLMError, match="not compiled with"):
        kfp_client.publish(fake_kfp.url, ("teacher",), specs=tmp_path / "specs")


def _changed_spec(tmp_path, name: str) -> Path:
    """The committed spec of ``name`` recompiled with a change but no version bump (another CPU pool)."""
    return compile_pipelines(tmp_path / "changed", names=(name,), settings={"cpu_pool": "pool=other"})[
        0
    ].parents[1]


def test_publish_refuses_a_changed_spec_under_an_existing_version(fake_kfp, tmp_path):
    kfp_client.publish(fake_kfp.url, ("augment",))
    changed = _changed_spec(tmp_path, "augment")
    with pytest.raises(TeacherLMError, match=r"changed without a version bump") as err:
        kfp_client.publish(fake_kfp.url, ("augment",), specs=changed)
    assert kfp_client.spec_hash(changed / "augment" / "augment.yaml") in str(err.value)
    assert len(fake_kfp.calls("POST", "/pipelines/upload_version")) == 1  # nothing replaced, nothing added
    assert [r["status"] for r in kfp_client.publish(fake_kfp.url, ("augment",))] == [
        "exists"
    ]  # same spec: fine


def test_submit_runs_exactly_the_spec_it_checked(fake_kfp, tmp_path):
    kfp_client.publish(fake_kfp.url, ("augment",))
    with pytest.raises(TeacherLMError, match=r"changed without a version bump"):
        kfp_client.submit(
            "augment", fake_kfp.url, {"num_shards": "3"}, specs=_changed_spec(tmp_path, "augment")
        )
    assert not fake_kfp.state.runs  # refused before any run was started


def test_submit_runs_the_published_version_else_the_package(fake_kfp):
    first = kfp_client.submit("augment", fake_kfp.url, {"num_shards": "3"}, experiment="exp")
    assert first["source"] == "package"
    kfp_client.publish(fake_kfp.url, ("augment",))
    second = kfp_client.submit("augment", fake_kfp.url, {"num_shards": "5"}, experiment="exp")
    assert second["source"].startswith("version ")
    runs = fake_kfp.state.runs
    sent = runs[first["run_id"]]["pipeline_spec"]  # the spec and its kubernetes platform spec
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == "teacherlm-augment" and "platform_spec" in sent
    assert (
        runs[second["run_id"]]["pipeline_version_reference"]["pipeline_version_id"]
        == second["source"].split()[-1]
    )
    assert runs[second["run_id"]]["runtime_config"]["parameters"] == {"num_shards": 5}
    assert len(fake_kfp.state.experiments) == 1 and first["experiment_id"] == second["experiment_id"]
    with pytest.raises(ConfigError):
        kfp_client.submit("augment", fake_kfp.url, {"num_shards": "x"})


def test_cli_publish_and_submit(fake_kfp, tmp_path):
    env = {**__import__("os").environ, "HOME": str(tmp_path)}
    res = cli("pipeline", "publish", "--host", fake_kfp.url, "--name", "student", env=env)
    assert res.returncode == 0, res.stderr
    assert f"teacherlm-student {__version__}: created" in res.stderr
    res = cli("pipeline", "submit", "student", "--host", fake_kfp.url, "-p", "ablation=true", env=env)
    assert res.returncode == 0, res.stderr
    assert "submitted student (version" in res.stderr
    (run,) = fake_kfp.state.runs.values()
    assert run["runtime_config"]["parameters"] == {"ablation": True}
    assert run["service_account"] == "teacherlm-pipeline-runner"  # never the server's default-editor
    res = cli("pipeline", "submit", "student", "--host", fake_kfp.url, "-p", "nope=1", env=env)
    assert res.returncode == 2 and "nope: not a parameter" in res.stderr


def test_cli_unreachable_host_is_one_line(tmp_path):
    res = cli("pipeline", "run", "augment", env={**__import__("os").environ, "HOME": str(tmp_path)})
    assert res.returncode != 0 and "--local" in res.stderr


# -- local runs ----------------------------------------------------------------------------------
@pytest.mark.integration
@pytest.mark.timeout(240)
def test_augment_pipeline_runs_locally(tmp_path, tiny_teacher):
    """The published augment pipeline as is (importers, ParallelFor, Collected), on the local runner."""
    import mlflow

    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims", "dates"], per_task=6, seed=0)
    result = kfp_local.run_local(
        "augment",
        {"teacher": tiny_teacher, "data": str(tmp_path / "data"), "num_shards": "2", "engine": "hf",
         "max_new_tokens": "40", "temperature": "0"},
        workdir=tmp_path / "w",
    )  # fmt: skip
    out = Path(result["outputs"]["Output"].path)
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["counts"]
    assert c["input"] == 8 == c["output"] + c["quarantined"]
    augmented = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert len(augmented) == c["output"] >= 7  # a teacher that writes: records really augmented
    assert all(len(r["chain_of_thought"].split()) >= 3 for r in augmented)
    assert len(manifest["shards"]) == 2 and (out / "train.jsonl").is_file() and not (out / "shards").exists()
    assert sorted(t["task"] for t in result["tasks"]) == [
        "augment-merge", "augment-plan", "augment-shard [0]", "augment-shard [1]",
    ]  # fmt: skip
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    parent = client.get_run(result["mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert {"augment shard 0", "augment shard 1", "augment merge"} <= {r.info.run_name for r in children}


@pytest.mark.timeout(60)
def test_local_failure_names_the_task_and_the_log(tmp_path):
    """A failed local run names its task and log, and ends only its own tasks: a process the caller
    started before the run (a server of the caller's, here a sleep) lives on (it once was killed too)."""
    import subprocess
    import sys

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with pytest.raises(TeacherLMError, match=r"augment-plan.*full log"):
            kfp_local.run_local(
                "augment", {"teacher": str(tmp_path), "data": str(tmp_path), "num_shards": "2"},
                workdir=tmp_path / "w",
            )  # fmt: skip
        assert bystander.poll() is None, "the caller's own subprocess was ended by the failed run"
    finally:
        bystander.kill()


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_stopped_local_run_takes_its_running_task_with_it(tmp_path, tiny_model):
    """SIGTERM to `teacherlm pipeline run --local` (or `teacherlm demo`) ends the task it is running;
    the runner's task subprocess once went on as an orphan, holding the CPU and writing into the run."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims"], per_task=6, seed=0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "teacherlm_core", "pipeline", "run", "augment", "--local", "--workdir",
         str(tmp_path / "w"), "-p", f"teacher={tiny_model}", "-p", f"data={tmp_path / 'data'}", "-p", "engine=hf",
         "-p", "num_shards=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    tasks: list[psutil.Process] = []
    deadline = time.monotonic() + 180
    while not tasks and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        with __import__("contextlib").suppress(psutil.Error):
            tasks = [
                c for c in psutil.Process(proc.pid).children(recursive=True)
                if "executor_main" in " ".join(c.cmdline())
            ]  # fmt: skip
    assert tasks, "no task subprocess seen"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    # gone by the time the run has exited (an orphan would still be importing torch or generating)
    _, alive = psutil.wait_procs(tasks, timeout=1)
    assert not alive, [p.pid for p in alive]


def test_a_pipeline_parameter_missing_from_the_registry_is_named():
    """A new user's trial: an extra parameter failed at decoration with a bare KeyError."""
    from teacherlm_core.kfp_support.graphs import pipeline

    def mine(my_shards=3):
        pass

    with pytest.raises(TypeError, match=r"mine: parameter 'my_shards' is not in PipelineParams"):
        pipeline("mine", "A pipeline with a parameter nobody defined.")(mine)
