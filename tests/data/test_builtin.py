"""The built-in annotated suite: determinism, validity of every sample, held-out splits, manifest."""

import datetime as dt
import json
import os
import random
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from teacherlm_core.cli.data import app
from teacherlm_core.data import FAMILIES, build_builtin, read_manifest
from teacherlm_core.data.builtin import generate_builtin
from teacherlm_core.data.dedup import normalize_text, shingles
from teacherlm_core.data.manifest import sha256_file
from teacherlm_core.data.tasks.base import conclude, partition
from teacherlm_core.data.tasks.dates import MONTHS
from teacherlm_core.data.tasks.units import PAIRS
from teacherlm_core.errors import ConfigError
from teacherlm_core.records import load_samples
from teacherlm_core.schema import FIELDS, SCHEMA_VERSION, AugmentedSample

pytestmark = pytest.mark.timeout(60)

SPLITS = ("train", "validation", "test")
PER_TASK = 40


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("builtin")
    manifest = build_builtin(out, list(FAMILIES), per_task=PER_TASK, seed=7, formats=("jsonl", "parquet"))
    return out, manifest


@pytest.fixture(scope="module")
def records(built):
    out, _ = built
    return [
        json.loads(line) for split in SPLITS for line in (out / f"{split}.jsonl").read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def big():
    """More items per family than a build in CI needs, to give the held-out checks teeth."""
    return generate_builtin(list(FAMILIES), per_task=150, seed=11)


def test_a_build_without_tasks_draws_the_default_families(tmp_path):
    from teacherlm_core.data.tasks import DEFAULT_TASKS

    manifest = build_builtin(tmp_path, per_task=3, seed=0)
    assert manifest["tasks"] == list(DEFAULT_TASKS) and set(DEFAULT_TASKS) < set(FAMILIES)


def test_at_least_six_families_each_with_every_split(records):
    assert len(FAMILIES) >= 6
    seen = {(r["task"], r["split"]) for r in records}
    test_only = {t for t, f in FAMILIES.items() if getattr(f, "test_only", False)}
    assert test_only == {"control_unseen"}  # the negative control: entities no split but test has
    assert seen == {(t, s) for t in FAMILIES for s in SPLITS if t not in test_only or s == "test"}


def test_same_seed_gives_identical_files(built, tmp_path):
    out, manifest = built
    again = build_builtin(tmp_path, list(FAMILIES), per_task=PER_TASK, seed=7, formats=("jsonl", "parquet"))
    assert again == manifest
    for name, entry in manifest["files"].items():
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name
        assert entry["sha256"] == sha256_file(out / name)


def test_another_process_with_another_hash_seed_gives_identical_files(built, tmp_path):
    _, manifest = built
    code = (
        "import sys; from teacherlm_core.data import FAMILIES, build_builtin; "
        f"build_builtin(sys.argv[1], list(FAMILIES), per_task={PER_TASK}, seed=7, formats=('jsonl', 'parquet'))"
    )
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env, timeout=50)
    assert read_manifest(tmp_path)["files"] == manifest["files"]


def test_different_seed_gives_different_files(built, tmp_path):
    _, manifest = built
    other = build_builtin(tmp_path, list(FAMILIES), per_task=PER_TASK, seed=8)
    for split in SPLITS:
        assert other["files"][f"{split}.jsonl"]["sha256"] != manifest["files"][f"{split}.jsonl"]["sha256"]
    assert other["counts"] == manifest["counts"]


def test_generation_touches_no_global_random_state():
    random.seed(123)
    before = random.random()
    random.seed(123)
    generate_builtin(["arithmetic", "dates"], per_task=10, seed=1)
    assert random.random() == before


def test_every_sample_is_valid_and_annotated(built, records):
    out, _ = built
    for split in SPLITS:  # the contract reader accepts every file as augmented samples
        assert len(load_samples(out / f"{split}.jsonl", model=AugmentedSample)) > 0
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    for r in records:
        assert r["answer"] in r["choices"] and len(r["choices"]) == len(set(r["choices"])) >= 2, r
        assert all(r[f].strip() for f in FIELDS), r
        sentences = re.split(r"(?<=[.?!])\s+", r["chain_of_thought"])
        assert len(sentences) >= 2, r  # step by step, then the conclusion
        assert sentences[-1] == conclude(r["answer"]), r
        others = [c for c in r["choices"] if c != r["answer"]]
        assert not any(sentences[-1] == conclude(c) for c in others)
        assert len(r["question"].split()) <= 40, r  # short: it feeds tiny models


def test_parquet_files_hold_the_same_records(built, records):
    out, _ = built
    for split in SPLITS:
        jsonl = load_samples(out / f"{split}.jsonl", model=AugmentedSample)
        parquet = load_samples(out / f"{split}.parquet", model=AugmentedSample)
        assert [s.to_record() for s in parquet] == [s.to_record() for s in jsonl]


@pytest.mark.parametrize("task", sorted(FAMILIES))
def test_held_out_templates_or_entities_never_cross_splits(big, task):
    family = FAMILIES[task]
    rows = [r for r in big if r["task"] == task]
    key = {
        "template": lambda r: {r["template"]},
        "entity": lambda r: set(r["entities"]),
        "entity_relation": lambda r: {(e, r["template"]) for e in r["entities"]},  # (entity, relation) pairs
    }[family.holdout]
    owned = {s: set().union(*(key(r) for r in rows if r["split"] == s)) for s in SPLITS}
    assert all(owned.values()) or getattr(family, "test_only", False), owned
    for a, b in [("train", "validation"), ("train", "test"), ("validation", "test")]:
        assert not owned[a] & owned[b], (task, a, b, owned[a] & owned[b])


def test_no_exact_or_near_duplicates_across_splits(big):
    from datasketch import MinHash, MinHashLSH

    norm = {s: {normalize_text(r["question"]) for r in big if r["split"] == s} for s in SPLITS}
    assert not norm["train"] & (norm["validation"] | norm["test"])
    assert not norm["validation"] & norm["test"]

    lsh, sigs = MinHashLSH(threshold=0.8, num_perm=128), {}
    for r in big:
        if r["split"] == "train":
            mh = sigs[r["id"]] = MinHash(num_perm=128)
            mh.update_batch(shingles(" ".join([r["question"], *r["choices"]])))
            lsh.insert(r["id"], mh)
    for r in big:
        if r["split"] != "train":
            mh = MinHash(num_perm=128)
            mh.update_batch(shingles(" ".join([r["question"], *r["choices"]])))
            # LSH candidates verified by the estimate, as the dedup step does (candidates alone
            # include pairs near 0.5: short questions that share an option list)
            assert [c for c in lsh.query(mh) if sigs[c].jaccard(mh) >= 0.8] == [], r["id"]


def test_manifest_counts_checksums_and_provenance(built, records):
    out, manifest = built
    assert read_manifest(out) == manifest
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["generator"]["name"] == "teacherlm-builtin" and manifest["generator"]["version"]
    assert set(manifest["generator"]["families"]) == set(FAMILIES)
    assert manifest["seed"] == 7 and manifest["per_task"] == PER_TASK
    per_family = {"train": 28, "validation": 6, "test": 6}  # 70/15/15 of PER_TASK
    by_task = manifest["counts"]["tasks"]
    assert manifest["counts"]["total"] == len(records) == sum(sum(v.values()) for v in by_task.values())
    # knowledge families draw their held-out pairs from the entities training asked about: as
    # many test items as asked, validation up to a quarter of the held-out pairs; the control is
    # test only
    assert by_task.pop("control_unseen") == {"test": 6}
    assert all(by_split == per_family for by_split in by_task.values()), by_task
    rec = manifest["records"]
    assert rec["in"] == rec["out"] + rec["quarantined"] + rec["duplicates"]
    assert manifest["dedup"]["overlap"]["train->test"] == {"exact": 0, "normalized": 0, "near": 0}
    for name, entry in manifest["files"].items():
        path = out / name
        assert entry["sha256"] == sha256_file(path) and entry["bytes"] == path.stat().st_size
    assert manifest["files"]["train.jsonl"]["records"] == manifest["counts"]["splits"]["train"]
    assert (out / "dedup.jsonl").exists()


def test_split_is_fixed_by_content_not_seed():
    parts = partition([f"e{i}" for i in range(20)])
    assert [len(parts[s]) for s in SPLITS] == [14, 3, 3]
    assert partition([f"e{i}" for i in reversed(range(20))]) == parts


def test_units_and_dates_answers_are_right(big):
    factors = {(p.big, p.small): p.factor for p in PAIRS}
    for r in (r for r in big if r["task"] == "units"):
        if m := re.fullmatch(r"How many (\w+) are in ([\d.]+) (\w+)\?", r["question"]):
            assert float(r["answer"]) == pytest.approx(float(m[2]) * factors[(m[3], m[1])])
        else:
            m = re.fullmatch(r"How many (\w+) is ([\d.]+) (\w+)\?", r["question"])
            assert m and float(r["answer"]) == pytest.approx(float(m[2]) / factors[(m[1], m[3])])
    pattern = r"Today is (\w+) (\d+), (\d+)\. What date (?:will it be|was it) (\d+) (days?|weeks?) (from today|ago)\?"
    checked = 0
    for r in (r for r in big if r["task"] == "dates"):
        if m := re.fullmatch(pattern, r["question"]):
            start = dt.date(int(m[3]), MONTHS.index(m[1]) + 1, int(m[2]))
            days = int(m[4]) * (7 if m[5].startswith("week") else 1) * (1 if m[6] == "from today" else -1)
            end = start + dt.timedelta(days=days)
            assert r["answer"] == f"{MONTHS[end.month - 1]} {end.day}, {end.year}"
            checked += 1
    assert checked > 20


def test_cli_build_writes_manifest_and_summary(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "build",
            "--output",
            str(tmp_path),
            "--tasks",
            "claims,units",
            "--per-task",
            "10",
            "--format",
            "both",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "claims" in result.output and "manifest" in result.output
    manifest = read_manifest(tmp_path)
    assert manifest["tasks"] == ["claims", "units"] and (tmp_path / "train.parquet").exists()
    # a rebuild with fewer formats leaves nothing stale behind
    result = CliRunner().invoke(
        app, ["build", "--output", str(tmp_path), "--tasks", "claims", "--per-task", "10"]
    )
    assert result.exit_code == 0 and not (tmp_path / "train.parquet").exists()


def test_cli_unknown_task_is_a_config_error(tmp_path):
    result = CliRunner().invoke(app, ["build", "--output", str(tmp_path), "--tasks", "claims,nope"])
    assert isinstance(result.exception, ConfigError)
    assert "nope" in str(result.exception)
