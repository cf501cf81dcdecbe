"""The stage functions: what each pipeline step does, called without Kubeflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from teacherlm_core.data import split_file
from teacherlm_core.run_context import RUN_ID_ENV
from teacherlm_core.stages.augment_merge import augment_merge
from teacherlm_core.stages.augment_plan import augment_plan
from teacherlm_core.stages.compare import compare
from teacherlm_core.stages.train_variants import VARIANTS, train_variants
from teacherlm_core.tracking import EXPERIMENT


def _data(tmp_path, per_task=6):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims", "arithmetic"], per_task=per_task, seed=0)
    return tmp_path / "data"


def test_split_file_and_augment_plan(tmp_path):
    from teacherlm_core.errors import ConfigError, DataError

    data = _data(tmp_path)
    assert split_file(data, "test") == data / "test.jsonl"
    assert split_file(data / "train.jsonl", "anything") == data / "train.jsonl"
    assert augment_plan(str(data), 3) == [0, 1, 2]
    with pytest.raises(ConfigError, match="num_shards"):
        augment_plan(str(data), 0)
    with pytest.raises(DataError, match=r"no train\.jsonl"):
        augment_plan(str(tmp_path), 2)


def test_train_variants():
    assert train_variants(False) == ["plain", "augmented"]
    assert train_variants(True) == [
        "plain", "augmented", "fundamentals", "chain_of_thought", "common_mistakes",
    ]  # fmt: skip
    assert VARIANTS["plain"] == ()


def test_teacher_data_adds_star_rationales_as_samples(tmp_path):
    from teacherlm_core.records import load_samples
    from teacherlm_core.star import teacher_data

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


def test_augment_merge_refuses_mixed_plans(tmp_path):
    from teacherlm_core.errors import TeacherLMError

    for i, fp in enumerate(("a", "b")):
        (tmp_path / f"s{i}" / "shards").mkdir(parents=True)
        (tmp_path / f"s{i}" / "plan.json").write_text(json.dumps({"fingerprint": fp, "config": {}}))
    with pytest.raises(TeacherLMError, match="2 plans"):
        augment_merge(str(tmp_path / "out"), [str(tmp_path / "s0"), str(tmp_path / "s1")])


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
    summary = compare(reports, str(out), markdown=str(tmp_path / "r.md"), html=str(tmp_path / "r.html"))
    assert summary["overall"] == {"plain": 0.25, "augmented": 0.75}
    assert summary["gain"] == {"augmented": 0.5}
    assert summary["metrics"] == {"accuracy.plain": 0.25, "accuracy.augmented": 0.75, "gain.augmented": 0.5}
    for name in ("report.md", "accuracy.png", "gain.png", "report.html", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert "| **overall** |" in (tmp_path / "r.md").read_text()
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    with pytest.raises(Exception, match="same model name"):
        compare([reports[0], reports[0]], str(tmp_path / "again"))


def test_stage_tracking_nests_under_the_kfp_run_parent(tmp_path, monkeypatch):
    import mlflow

    from teacherlm_core.stages._run import stage_run
    from teacherlm_core.tracking import PARENT_ENV

    monkeypatch.delenv(PARENT_ENV, raising=False)
    monkeypatch.setenv(RUN_ID_ENV, "kfp-123")  # on a cluster: the pod's pipeline/runid label
    for name in ("a", "b"):
        with stage_run(name, {"x": 1}):
            pass
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("teacherlm.parent") == "true"]
    children = sorted(
        r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    )
    assert children == ["a", "b"]


def test_a_trainjob_needs_shared_storage(tmp_path):
    from teacherlm_core.errors import ConfigError
    from teacherlm_core.stages.train_student import train_student

    data = _data(tmp_path)
    with pytest.raises(ConfigError, match="work_root"):
        train_student("org/base", str(data), str(tmp_path / "out"), variant="plain", student_config="student_tiny",
                      launcher="trainjob")  # fmt: skip


def test_augment_shard_tasks_output_carries_its_shard_not_every_shards_input(tmp_path, tiny_model):
    """A shard task's output artifact holds its plan and its shard, never the input (64 tasks x
    the input at 64 shards)."""
    from teacherlm_core.stages.augment_shard import augment_shard

    assert augment_plan(str(_data(tmp_path)), 3, split=str(tmp_path / "split")) == [0, 1, 2]
    out = tmp_path / "task-out"
    counts = augment_shard(tiny_model, str(tmp_path / "split"), str(out), shard_index=1, num_shards=3,
                           engine="hf", max_new_tokens=4, temperature=0.0)  # fmt: skip
    assert counts["in"] == counts["out"] + counts["quarantined"] > 0
    assert (out / "plan.json").exists() and (out / "shards" / "shard-00001-of-00003" / "_SUCCESS").exists()
    assert sorted(p.name for p in out.iterdir()) == ["lineage.json", "plan.json", "shards"]


def _own_split(split: Path, index: int, num_shards: int, into: Path) -> Path:
    """A copy of ``split`` holding only ``split.json`` and shard ``index``'s file: what the shard may read."""
    import shutil

    into.mkdir()
    shutil.copy(split / "split.json", into)
    name = f"shard-{index:05d}-of-{num_shards:05d}.jsonl"
    shutil.copy(split / name, into / name)
    return into


def test_pipeline_shard_tasks_read_only_their_own_records_and_merge_as_one_run(tmp_path, tiny_teacher):
    """The plan task splits the data once; each shard task, given the split with only its own file
    (and the dataset deleted), augments its records; the merged shards equal one all-in-one run."""
    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.stages.augment_shard import augment_shard

    data = _data(tmp_path)
    train = split_file(data, "train")
    settings = dict(num_shards=3, engine="hf", max_new_tokens=48, temperature=0.0)
    whole = augment(
        AugmentConfig(model=tiny_teacher, input=str(train), output=str(tmp_path / "whole"), **settings)
    )
    lines = sum(1 for line in train.read_text().splitlines() if line.strip())
    augment_plan(str(data), 3, split=str(tmp_path / "split"))
    train.unlink()  # the shard tasks never read the dataset itself
    outs = []
    for i in range(3):
        own = _own_split(tmp_path / "split", i, 3, tmp_path / f"split-{i}")
        outs.append(str(tmp_path / f"task-{i}"))
        augment_shard(tiny_teacher, str(own), outs[-1], shard_index=i, **settings)
    merged = augment_merge(str(tmp_path / "merged"), outs)
    assert merged["counts"]["input"] == lines == merged["counts"]["output"] + merged["counts"]["quarantined"]
    assert merged["counts"]["output"] > 0
    assert merged["counts"] == whole["counts"]
    assert (tmp_path / "merged" / "train.jsonl").read_bytes() == (
        tmp_path / "whole" / "train.jsonl"
    ).read_bytes()


def test_with_shared_storage_the_split_artifact_holds_only_where_the_shard_files_are(
    tmp_path, tiny_model, s3_env, monkeypatch
):
    """With work_root, the plan writes the shard files to shared storage and its artifact (which
    every shard task downloads whole) holds only split.json; the shard task streams its own file."""
    from teacherlm_core import storage
    from teacherlm_core.stages.augment_shard import augment_shard

    monkeypatch.setenv(RUN_ID_ENV, "kfp-split")
    work_root = f"s3://{s3_env.bucket}/split-{tmp_path.name}"
    data = _data(tmp_path)
    augment_plan(str(data), 2, split=str(tmp_path / "split"), work_root=work_root)
    assert [p.name for p in (tmp_path / "split").iterdir()] == ["split.json"]
    assert (tmp_path / "split" / "split.json").stat().st_size < 200
    remote = sorted(u.rsplit("/", 1)[1] for u in storage.list_files(f"{work_root}/kfp-split/augment/inputs"))
    assert remote == ["shard-00000-of-00002.jsonl", "shard-00001-of-00002.jsonl", "split.json"]
    split_file(data, "train").unlink()
    counts = augment_shard(tiny_model, str(tmp_path / "split"), str(tmp_path / "task"), shard_index=0, num_shards=2,
                           engine="hf", max_new_tokens=4, temperature=0.0, work_root=work_root)  # fmt: skip
    assert counts["in"] == counts["out"] + counts["quarantined"] > 0
    with pytest.raises(Exception, match="2 shards, the run 3"):
        augment_shard(tiny_model, str(tmp_path / "split"), str(tmp_path / "task3"), shard_index=0, num_shards=3,
                      engine="hf", max_new_tokens=4, temperature=0.0, work_root=work_root)  # fmt: skip


def test_a_pipeline_dry_run_fans_out_and_merges_without_loading_the_teacher(tmp_path):
    """The augment pipeline's dry_run: every shard task writes placeholder text without a model (the
    teacher here does not exist), and the merge marks the dataset as a dry run."""
    from teacherlm_core.stages.augment_shard import augment_shard

    data = _data(tmp_path)
    lines = sum(1 for line in split_file(data, "train").read_text().splitlines() if line.strip())
    augment_plan(str(data), 2, split=str(tmp_path / "split"))
    outs = [str(tmp_path / f"task-{i}") for i in range(2)]
    for i, out in enumerate(outs):
        augment_shard("no-such-org/no-such-teacher", str(tmp_path / "split"), out, shard_index=i, num_shards=2,
                      engine="vllm", dry_run=True)  # fmt: skip
    merged = augment_merge(str(tmp_path / "merged"), outs)
    assert merged["counts"]["input"] == lines == merged["counts"]["output"]
    assert merged["dry_run"] is True
    assert "dry run" in (tmp_path / "merged" / "README.md").read_text().lower()


def test_merging_shard_outputs_survives_a_repeated_output_and_a_failed_merge(tmp_path):
    """What a new user tried: the same shard output given twice merged once; a merge refused (a
    shard in two outputs) or killed leaves nothing that blocks merging again into the same dir."""
    import shutil

    from teacherlm_core.errors import DataError
    from teacherlm_core.stages.augment_shard import augment_shard

    augment_plan(str(_data(tmp_path)), 2, split=str(tmp_path / "split"))
    outs = [str(tmp_path / f"task-{i}") for i in range(2)]
    for i, out in enumerate(outs):
        augment_shard(
            "no/teacher", str(tmp_path / "split"), out, shard_index=i, num_shards=None, dry_run=True
        )
    once = augment_merge(str(tmp_path / "once"), outs)["counts"]
    assert augment_merge(str(tmp_path / "twice"), [outs[0], outs[1], outs[1]])["counts"] == once
    shutil.copytree(outs[1], tmp_path / "task-1-again")
    target = tmp_path / "merged"
    with pytest.raises(DataError, match="shard-00001-of-00002 is in two shard outputs"):
        augment_merge(str(target), [*outs, str(tmp_path / "task-1-again")])
    assert not target.exists()  # refused before anything was written
    (target / "shards").mkdir(parents=True)  # a merge killed while its links were in place
    (target / "shards" / "shard-00000-of-00002").symlink_to(Path(outs[0], "shards", "shard-00000-of-00002"))
    assert augment_merge(str(target), outs)["counts"] == once
    assert not (target / "shards").exists()
