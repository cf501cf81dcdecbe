"""Scale: the input read once at planning, a shard reads only its own records, a streaming merge,
and the dry run (placeholder text, no model, never mixable with a real run)."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fake_engines import ScriptedEngine

from teacherlm_core import storage
from teacherlm_core.augment import AugmentConfig, augment, merge
from teacherlm_core.augment.config import shard_name
from teacherlm_core.errors import ConfigError, TeacherLMError

merge_module = importlib.import_module(
    "teacherlm_core.augment.merge"
)  # the package exports a function of that name


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from teacherlm_core.data import build_builtin

    root = tmp_path_factory.mktemp("scale-data")
    build_builtin(root / "built", per_task=10, seed=3)
    lines = (root / "built" / "train.jsonl").read_text().splitlines()
    lines.insert(5, "{not json")
    (root / "in.jsonl").write_text("\n".join(lines) + "\n")
    return root / "in.jsonl"


def cfg_for(inp, out, **kw) -> AugmentConfig:
    return AugmentConfig(model="scripted-teacher", input=str(inp), output=str(out), engine="hf", **kw)


class ReadLog:
    """Every storage read of a run, by URI: streamed bytes, whole-object reads and downloads."""

    def __init__(self, monkeypatch):
        self.bytes: dict[str, int] = {}
        self.whole: list[str] = []
        real_chunks, real_read, real_copy = storage.iter_chunks, storage.read_bytes, storage.copy

        def iter_chunks(uri, size=1 << 20):
            for chunk in real_chunks(uri, size):
                self.bytes[str(uri)] = self.bytes.get(str(uri), 0) + len(chunk)
                yield chunk

        def read_bytes(uri):
            self.whole.append(str(uri))
            return real_read(uri)

        def copy(src, dst):
            self.whole.append(str(src))
            return real_copy(src, dst)

        monkeypatch.setattr(storage, "iter_chunks", iter_chunks)
        monkeypatch.setattr(storage, "read_bytes", read_bytes)
        monkeypatch.setattr(storage, "copy", copy)


@pytest.mark.integration
def test_a_shard_task_streams_only_its_own_records_from_s3(dataset, s3_env, tmp_path, monkeypatch):
    inp = f"s3://{s3_env.bucket}/scale/{tmp_path.name}/in.jsonl"
    storage.copy(str(dataset), inp)
    out = f"s3://{s3_env.bucket}/scale/{tmp_path.name}/out"
    cfg = cfg_for(inp, out, num_shards=4, part_size=4)
    augment(cfg, 0, engine=ScriptedEngine)  # the first task plans: one pass over the input
    plan = json.loads(storage.read_text(cfg.plan_uri))
    sizes = {name: meta["bytes"] for name, meta in plan["inputs"].items()}
    assert sum(m["records"] for m in plan["inputs"].values()) == sum(
        1 for x in dataset.read_text().splitlines() if x.strip()
    )

    log = ReadLog(monkeypatch)
    done = augment(cfg, 2, engine=ScriptedEngine)
    own = storage.join(out, "inputs", f"{shard_name(2, 4)}.jsonl")
    assert inp not in log.whole and inp not in log.bytes, "a shard task read the whole input"
    assert log.bytes == {own: sizes[f"{shard_name(2, 4)}.jsonl"]}, log.bytes
    assert own not in log.whole  # streamed, not read into memory whole
    assert done["in"] == plan["inputs"][f"{shard_name(2, 4)}.jsonl"]["records"]


def test_the_split_keeps_every_line_once_in_its_owner_shard(dataset, tmp_path):
    cfg = cfg_for(dataset, tmp_path / "o", num_shards=3, part_size=5)
    augment(cfg, engine=ScriptedEngine)
    lines = []
    for i in range(3):
        for raw in (tmp_path / "o" / "inputs" / f"{shard_name(i, 3)}.jsonl").read_text().splitlines():
            entry = json.loads(raw)
            lines.append(entry["line"])
            if "record" in entry:
                from teacherlm_core.augment.shard import owner_shard

                assert owner_shard(entry["record"]["id"], 3) == i
    assert sorted(lines) == list(range(1, sum(1 for _ in dataset.read_text().splitlines()) + 1))
    malformed = [
        r
        for r in map(
            json.loads, (tmp_path / "o" / "quarantine").glob("*.jsonl").__next__().read_text().splitlines()
        )
        if r["line"] == 6
    ]
    assert not malformed or malformed[0]["reason"].startswith("malformed JSON")


def test_a_changed_shard_input_is_refused_before_the_shard_is_marked_done(dataset, tmp_path):
    cfg = cfg_for(dataset, tmp_path / "t", num_shards=2, part_size=5)
    augment(cfg, 0, engine=ScriptedEngine)
    victim = tmp_path / "t" / "inputs" / f"{shard_name(1, 2)}.jsonl"
    rows = victim.read_text().splitlines()
    victim.write_text("\n".join(rows[:-1]) + "\n")  # a record lost after planning
    with pytest.raises(TeacherLMError, match="shard input changed after planning"):
        augment(cfg, 1, engine=ScriptedEngine)
    assert not (Path(cfg.shard_dir(1)) / "_SUCCESS").exists()


def test_the_merge_writes_row_groups_and_reconciles(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(merge_module, "ROW_GROUP", 7)
    out = tmp_path / "rg"
    manifest = augment(cfg_for(dataset, out, num_shards=2, part_size=5), engine=ScriptedEngine)
    total = 0
    for f in sorted((out / "data").glob("*.parquet")):
        meta = pq.ParquetFile(f).metadata
        assert meta.num_row_groups == -(-meta.num_rows // 7)  # ceil: written a row group at a time
        assert max(meta.row_group(g).num_rows for g in range(meta.num_row_groups)) <= 7
        total += meta.num_rows
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert total == len(train) == manifest["counts"]["output"]
    assert manifest["counts"]["input"] == manifest["counts"]["output"] + manifest["counts"]["quarantined"]
    in_data = sorted(r["id"] for f in (out / "data").glob("*.parquet") for r in pq.read_table(f).to_pylist())
    assert in_data == sorted(r["id"] for r in train)


def test_merge_refuses_a_part_changed_after_its_marker(dataset, tmp_path):
    out = tmp_path / "c"
    cfg = cfg_for(dataset, out, num_shards=1, part_size=50)
    augment(cfg, 0, engine=ScriptedEngine)
    # part-NNNNN.<writer>.jsonl; the writer id ends in any hex digit, so no "[0-9].jsonl" pattern
    part = next(
        p for p in Path(cfg.shard_dir(0)).glob("part-*.jsonl") if not p.name.endswith(".quarantine.jsonl")
    )
    part.write_text(part.read_text().replace("claims", "clams", 1))
    with pytest.raises(TeacherLMError, match="checksum mismatch"):
        merge(str(out))
    assert not (out / "manifest.json").exists() and not (out / "train.jsonl").exists()


# -- dry run ---------------------------------------------------------------------------------
def test_a_dry_run_needs_no_model_and_says_so_everywhere(dataset, tmp_path):
    out = tmp_path / "dry"
    r = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "augment", "--teacher", str(tmp_path / "no-such-7b"),
         "--input", str(dataset), "--output", str(out), "--num-shards", "3", "--dry-run", "--no-track"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dry_run"] is True and manifest["identity"]["engine"]["name"] == "dry-run"
    assert "Dry run: not training data" in (out / "README.md").read_text()
    records = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert records and all(
        r["generation"]["engine"] == "dry-run" and "dry-run" in r["teacher"] for r in records
    )
    assert all("placeholder" in r["chain_of_thought"].lower() for r in records)
    assert manifest["counts"]["input"] == manifest["counts"]["output"] + manifest["counts"]["quarantined"]
    # a placeholder concludes nothing: no consistency rate is claimed for it (it said 0.0%)
    assert manifest["chain_of_thought_consistency"] == {"checked": 0, "consistent": 0, "rate": None}
    assert all(r["cot_consistent"] is None for r in records)
    assert "dry run: placeholder text, not training data" in " ".join(r.stderr.split())


def test_dry_run_output_is_deterministic_whatever_the_sharding(dataset, tmp_path):
    a = augment(cfg_for(dataset, tmp_path / "a", num_shards=1, dry_run=True))
    b = augment(cfg_for(dataset, tmp_path / "b", num_shards=4, part_size=3, dry_run=True))
    rows = {
        k: sorted(
            (json.loads(x) for x in (tmp_path / k / "train.jsonl").read_text().splitlines()),
            key=lambda r: r["id"],
        )
        for k in "ab"
    }
    strip = lambda r: {k: v for k, v in r.items() if k != "generation"}  # noqa: E731
    assert list(map(strip, rows["a"])) == list(map(strip, rows["b"]))
    assert a["counts"] == b["counts"]


def test_a_real_run_never_resumes_a_dry_run(dataset, tmp_path):
    out = tmp_path / "mix"
    augment(cfg_for(dataset, out, num_shards=2, dry_run=True))
    with pytest.raises(ConfigError, match="dry_run: True -> False"):
        augment(cfg_for(dataset, out, num_shards=2), 0, engine=ScriptedEngine)


def test_a_shard_task_does_not_rehash_an_unchanged_local_input(dataset, tmp_path, monkeypatch):
    cfg = cfg_for(dataset, tmp_path / "h", num_shards=2)
    augment(cfg, 0, engine=ScriptedEngine)  # plans: hashes the input once

    def no_full_read(uri):
        raise AssertionError(f"{uri}: read whole to hash it again")

    monkeypatch.setattr(storage, "content_id", no_full_read)
    assert augment(cfg, 1, engine=ScriptedEngine)["shard"] == 1


def test_seen_ids_remember_the_first_line_even_past_the_planned_count():
    from teacherlm_core.augment.shard import SeenIds

    seen = SeenIds(capacity=0)  # fewer planned than come: it grows
    assert [seen.first_line(f"id-{i}", i + 1) for i in range(5000)] == list(range(1, 5001))
    assert seen.first_line("id-42", 9999) == 43 and seen.first_line("id-4999", 1) == 5000
    assert seen.count == 5000


def test_temps_of_a_killed_merge_or_plan_are_cleaned_by_the_rerun(dataset, tmp_path):
    out = tmp_path / "k"
    (out / "inputs" / ".split-999999999-abc").mkdir(parents=True)  # a planner killed mid-way
    (out / "inputs" / ".split-999999999-abc" / "shard-00000-of-00002.jsonl").write_text("{}\n")
    (out / ".merge-999999999-xyz.tmp").write_text("half a file")  # a merge killed mid-way
    augment(cfg_for(dataset, out, num_shards=2), engine=ScriptedEngine)
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".split-*"))
