import json
import subprocess
import sys

import pytest


def cli(*args, timeout=600, **kw):
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], capture_output=True, text=True, timeout=timeout, **kw
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["evaluate"],
        ["compare"],
        ["augment", "plan"],
        ["augment", "shard"],
        ["train", "variants"],
        ["tiny-model"],
        ["demo"],
        ["runs"],
        ["data"],
        ["data", "build"],
        ["data", "import"],
        ["pipeline"],
        ["pipeline", "compile"],
        ["pipeline", "run"],
        ["pipeline", "publish"],
        ["pipeline", "submit"],
    ],
)
def test_every_command_explains_itself(command):
    res = cli(*command, "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout and len(res.stdout.splitlines()) > 5


def test_version():
    from teacherlm_core import __version__

    assert cli("--version").stdout.strip() == f"teacherlm {__version__}"


def test_tiny_model_is_deterministic_and_loads(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from teacherlm_core.tiny import build_tiny_model

    a, b, c = (build_tiny_model(tmp_path / n, seed=s) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert all((wa[k] == wb[k]).all() for k in wa)
    assert any((wa[k] != wc[k]).any() for k in wa)
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert not list(a.glob("*.bin"))  # safetensors only
    tok = AutoTokenizer.from_pretrained(a)
    model = AutoModelForCausalLM.from_pretrained(a)
    assert model.config.vocab_size == len(tok)
    assert (
        tok.decode(tok("Q: caf\u00e9 (A) 42", add_special_tokens=False)["input_ids"]) == "Q: caf\u00e9 (A) 42"
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_demo_runs_the_end_to_end_pipeline_locally(tmp_path):
    """`teacherlm demo`: the end_to_end KFP pipeline on the local runner, a report, one MLflow parent run."""
    import mlflow

    # exactly the README's quick check (its settings: teacherlm_core.demo.QUICK)
    res = cli("demo", "--workdir", str(tmp_path / "w"), "--teacher", "tiny")
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (tmp_path / "w").glob("demo-*")
    summary = json.loads((run / "summary.json").read_text())
    r = summary["records"]
    assert r["in"] == r["out"] + r["quarantined"] + r["duplicates"]
    assert summary["test_items"] == 12  # --test-per-task 6 for each of the two families
    a = summary["augmented"]
    assert a["input"] == a["output"] + a["quarantined"] and a["output"] > 0
    assert set(summary["accuracy"]) == {"plain", "augmented", "gold", "teacher"}
    # per family: each student against plain on the same items, with intervals
    assert set(summary["task_paired"]["claims"]) == {"augmented", "gold"}
    assert all(len(v) == 2 for v in summary["task_intervals"]["claims"].values())
    for name in ("accuracy.png", "gain.png"):
        assert (run / "report" / name).stat().st_size > 10_000
    report = (run / "report" / "report.md").read_text()
    assert (
        "| task | " in report and "| **overall** |" in report and "plain" in report and "augmented" in report
    )
    assert "## Per task, against the plain student" in report
    assert "per family" in res.stderr and "gold" in res.stderr
    # Every stage ran as a task of the pipeline, the fan-outs twice.
    tasks = sorted(t["task"].split(" [")[0] for t in summary["pipeline_tasks"])
    assert tasks.count("augment-shard") == 2 and tasks.count("train-student") == 2
    assert {"data-build", "data-star", "train-teacher", "augment-merge", "compare"} <= set(tasks)
    assert "zero-shot accuracy" in res.stderr and "augmented" in res.stderr
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}")
    parent = client.get_run(summary["mlflow_run_id"])
    assert parent.info.run_name == summary["run_id"]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    names = {c.info.run_name for c in children}
    assert {
        "data build",
        "data star",
        "evaluate teacher",
        "augment merge",
        "compare",
        "evaluate plain",
        "evaluate augmented",
    } <= names
    assert {"augment shard 0", "augment shard 1"} <= names
    assert {"train teacher", "train student plain", "train student augmented", "gold arm"} <= names
    # every run of the demo, the gold arm's included, hangs under its one parent run
    runs = {r.info.run_id: r for r in client.search_runs([parent.info.experiment_id], max_results=500)}

    def root(run):
        up = run.data.tags.get("mlflow.parentRunId")
        return root(runs[up]) if up in runs else run.info.run_id

    assert {root(r) for r in runs.values()} == {parent.info.run_id}
    (arm,) = [c for c in children if c.info.run_name == "gold arm"]
    below = {
        r.info.run_name for r in runs.values() if r.data.tags.get("mlflow.parentRunId") == arm.info.run_id
    }
    assert {"train student augmented", "evaluate gold"} <= below
    _check_lineage(client, parent, children, run)


def _check_lineage(client, parent, children, run):
    """After the demo: registered teacher and student versions with lineage tags, datasets on every stage run."""
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # `mlflow ui` opens on the runs
    by_name = {c.info.run_name: c for c in children}
    (teacher,) = client.search_model_versions("name = 'teacherlm-teacher'")
    students = {
        mv.tags["teacherlm.variant"]: mv for mv in client.search_model_versions("name = 'teacherlm-student'")
    }
    assert set(students) == {"plain", "augmented"}
    teacher_ref = f"teacherlm-teacher/{teacher.version}"
    assert by_name["train teacher"].data.tags["teacherlm.registered_model"] == teacher_ref
    (weights,) = run.glob("kfp/**/train-teacher/teacher")
    assert teacher.source == weights.resolve().as_uri()  # where the weights are: no second copy
    for mv in (teacher, *students.values()):
        assert mv.tags["teacherlm.pipeline_run"] and mv.tags["teacherlm.package_version"]
        assert len(mv.tags["teacherlm.data_digest"]) == 64
    assert (
        students["augmented"].tags["teacherlm.teacher_version"] == teacher_ref
    )  # which teacher wrote its data
    assert client.get_model_version_by_alias("teacherlm-student", "champion").version in {
        mv.version for mv in students.values()
    }
    for name in ("data build", "data star", "augment merge", "train student augmented", "evaluate augmented"):
        assert by_name[name].inputs.dataset_inputs, f"{name} logs no dataset"
        assert by_name[name].data.tags["teacherlm.stage"]
    merged = {d.dataset.name: d.dataset for d in by_name["augment merge"].inputs.dataset_inputs}
    manifest = json.loads(next(run.glob("kfp/**/augment-merge/augmented/manifest.json")).read_text())
    assert merged["augmented data"].digest == manifest["files"]["train.jsonl"]["sha256"][:36]
    # The report shows the augmentation summary and the cost per 1,000 samples.
    report = (run / "report" / "report.md").read_text()
    assert "## Augmented data" in report and "## Cost" in report
    card = next(run.glob("kfp/**/augment-merge/augmented/README.md")).read_text()
    assert "cost per 1,000 samples" in card


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_augment_mistakes_exit_2_with_one_line_and_write_nothing(tmp_path):
    """What a new user tried (session 4's trial): each mistake is one line naming it, exit 2, no traceback."""
    from teacherlm_core.data import build_builtin

    data = build_builtin(tmp_path / "data", ["claims"], per_task=6, seed=0) and tmp_path / "data"
    cases = [
        (["augment", "plan", "--data", str(tmp_path / "nothere"), "--num-shards", "4"], "no such file"),
        (["augment", "merge", "--output", str(tmp_path / "m"), "--shards", str(tmp_path / "nothere")],
         "not a shard task's output"),
        (["augment", "shard", "--teacher", "t", "--split", str(data), "--output", str(tmp_path / "s"),
          "--shard-index", "0", "--num-shards", "2"], "split.json: no such file: not a split written by"),
        (["augment", "--teacher", "t", "--input", str(data), "--output", str(tmp_path / "o"), "--num-shards", "4",
          "--shard-index", "4", "--dry-run", "--no-track"], "--shard-index: 1 problem(s): must be in [0, 4), got 4"),
    ]  # fmt: skip
    for args, message in cases:
        res = cli(*args, cwd=tmp_path)
        assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr, (
            args,
            res.stderr,
        )
    assert not (tmp_path / "o").exists()  # the bad shard index was refused before planning wrote anything


def test_augment_takes_the_dataset_directory_that_data_build_and_import_write(tmp_path):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims"], per_task=6, seed=0)
    plan = cli("augment", "plan", "--data", str(tmp_path / "data"), "--num-shards", "3")
    assert plan.returncode == 0 and plan.stdout.split() == ["0", "1", "2"]  # on stdout, for a shell loop
    assert not (tmp_path / "split").exists()
    plan = cli(
        "augment",
        "plan",
        "--data",
        str(tmp_path / "data"),
        "--num-shards",
        "3",
        "--split",
        str(tmp_path / "split"),
    )
    assert plan.returncode == 0 and plan.stdout.split() == ["0", "1", "2"], plan.stderr
    split = json.loads((tmp_path / "split" / "split.json").read_text())
    lines = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    assert sum(f["records"] for f in split["inputs"].values()) == len(lines) and len(split["inputs"]) == 3
    res = cli("augment", "--teacher", "t", "--input", str(tmp_path / "data"), "--output", str(tmp_path / "o"),
              "--dry-run", "--no-track", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    train = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["counts"]["input"] == len(train) == manifest["counts"]["output"]
