import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_engines import ScriptedEngine, StreamingScriptedEngine

from teacherlm_core import storage
from teacherlm_core.augment import AugmentConfig, augment, merge
from teacherlm_core.augment.quality import clean_generation, is_consistent
from teacherlm_core.augment.shard import owner_shard
from teacherlm_core.engines import Generation, request_seed
from teacherlm_core.errors import ConfigError, DataError, TeacherLMError
from teacherlm_core.schema import Sample

HERE = Path(__file__).resolve().parent.parent  # tests/, where the helper scripts live


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Built-in samples plus bad lines: malformed JSON, a missing field, a duplicate id."""
    from teacherlm_core.data import build_builtin

    root = tmp_path_factory.mktemp("aug-data")
    build_builtin(root / "built", per_task=8, seed=1)
    lines = (root / "built" / "train.jsonl").read_text().splitlines()
    lines.insert(3, "{not json")
    lines.insert(7, json.dumps({"id": "no-question", "task": "t", "answer": "a"}))
    lines.append(lines[0])  # duplicate id
    (root / "in.jsonl").write_text("\n".join(lines) + "\n")
    return root / "in.jsonl"


def n_lines(path: Path) -> int:
    return sum(1 for x in path.read_text().splitlines() if x.strip())


def cfg_for(dataset, out, **kw) -> AugmentConfig:
    return AugmentConfig(model="scripted-teacher", input=str(dataset), output=str(out), engine="hf", **kw)


def merged_records(out: str) -> list[dict]:
    import datasets

    local = out
    if storage.is_remote(out):
        local = str(Path(os.environ.get("TMPDIR", "/tmp")) / f"dl-{time.time_ns()}")
        storage.download_dir(storage.join(out, "data"), Path(local) / "data")
    ds = datasets.load_dataset("parquet", data_dir=str(Path(local) / "data"), split="train")
    return sorted(ds.to_list(), key=lambda r: r["id"])


def quarantined(out: str) -> list[dict]:
    rows = []
    for uri in storage.list_files(storage.join(out, "quarantine")):
        rows += [json.loads(x) for x in storage.read_text(uri).splitlines()]
    return rows


# -- units -----------------------------------------------------------------------------------
def test_sharding_and_seeds_are_stable():
    assert owner_shard("abc", 16) == owner_shard("abc", 16)
    assert len({owner_shard(f"id{i}", 4) for i in range(100)}) == 4
    assert request_seed(0, "a", "fundamentals", 0) != request_seed(0, "a", "fundamentals", 1)
    assert request_seed(0, "a", "fundamentals", 0) == request_seed(0, "a", "fundamentals", 0) < 2**31


@pytest.mark.parametrize(
    ("text", "finish", "expected"),
    [
        ("", "stop", (None, "empty generation")),
        ("  \n ", "stop", (None, "whitespace-only generation")),
        (" Q: Is fire hot? (A) yes (B) no", "stop", (None, "generation echoes the prompt")),
        (" It burns. Because it is hot and", "length", ("It burns.", None)),
        (
            " no sentence end at all",
            "length",
            (None, "hit the token limit (5 tokens) with no complete sentence"),
        ),
        ("Fire is hot.\n\nIt burns", "stop", ("Fire is hot. It burns", None)),
        # A greedy loop is cut before its first repeat (case, punctuation and "A:" markers aside).
        (
            "Fire is hot. A: The answer is (A). A: the answer is (A)! Fire is hot.",
            "stop",
            ("Fire is hot. A: The answer is (A).", None),
        ),
        ("It burns wood. It burns wood. It burns wood. It", "length", ("It burns wood.", None)),
    ],
)
def test_clean_generation(text, finish, expected):
    prompt = "Q: Is fire hot? (A) yes (B) no A: The answer is (A). Let's think step by step."
    assert clean_generation(Generation(text=text, num_tokens=5, finish_reason=finish), prompt) == expected


def test_cot_consistency_signal():
    s = Sample(id="1", task="t", question="q", choices=["red", "blue"], answer="blue")
    assert is_consistent("So the answer is (B).", s) is True
    assert is_consistent("So the answer is blue.", s) is True
    assert is_consistent("the answer is (A) red. Wait, the answer is (B).", s) is True
    assert is_consistent("So the answer is (A).", s) is False
    assert is_consistent("No conclusion here.", s) is None
    assert is_consistent("So the answer is green.", s) is None


# -- the API with a scripted teacher ---------------------------------------------------------
def test_augment_writes_the_contract_and_counts_reconcile(dataset, tmp_path):
    out = tmp_path / "out"
    manifest = augment(
        cfg_for(dataset, out, num_shards=3, part_size=4), engine=lambda: ScriptedEngine(empty_rate=0.1)
    )
    total = n_lines(dataset)
    c = manifest["counts"]
    assert c["input"] == total == c["output"] + c["quarantined"]
    records = merged_records(str(out))
    rejected = quarantined(str(out))
    assert len(records) == c["output"] and len(rejected) == c["quarantined"]
    assert len({r["id"] for r in records}) == len(records)  # exactly once
    assert {(r["line"], r["field"]) for r in rejected} >= {(4, None), (8, "question"), (total, "id")}
    rec = records[0]
    source = {
        json.loads(x)["id"]: json.loads(x) for x in dataset.read_text().splitlines() if x.startswith('{"')
    }
    for key, value in source[rec["id"]].items():
        if key not in ("fundamentals", "chain_of_thought", "common_mistakes", "teacher"):
            assert rec[key] == value  # every input column kept
    assert rec["teacher"] == "scripted-teacher@local" and rec["chain_of_thought"].endswith(").")
    assert set(rec["generation"]) >= {"engine", "seed", "fundamentals", "chain_of_thought", "common_mistakes"}
    assert all(r["cot_consistent"] for r in records)
    assert manifest["chain_of_thought_consistency"]["rate"] == 1.0
    retried = [
        r
        for r in records
        if max(r["generation"][f]["attempts"] for f in ("fundamentals", "common_mistakes")) > 1
    ]
    assert retried, "empty generations should have been retried with a fresh seed"
    card = (out / "README.md").read_text()
    assert "data_files: data/*.parquet" in card and f"| input records | {total} |" in card
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["counts"] == c and len(on_disk["shards"]) == 3


def test_results_do_not_depend_on_sharding(dataset, tmp_path):
    one = augment(cfg_for(dataset, tmp_path / "one", num_shards=1, part_size=100), engine=ScriptedEngine)
    four = augment(cfg_for(dataset, tmp_path / "four", num_shards=4, part_size=3), engine=ScriptedEngine)
    assert one["counts"] == four["counts"]
    strip = lambda rs: [{k: v for k, v in r.items() if k != "generation"} for r in rs]  # noqa: E731
    assert strip(merged_records(str(tmp_path / "one"))) == strip(merged_records(str(tmp_path / "four")))


def test_rerun_skips_finished_work_and_refuses_other_settings(dataset, tmp_path):
    cfg = cfg_for(dataset, tmp_path / "o", num_shards=2, part_size=5)
    first = augment(cfg, engine=ScriptedEngine)
    engine = ScriptedEngine()
    assert augment(cfg, engine=lambda: engine) == first
    assert engine.calls == 0
    with pytest.raises(ConfigError, match=r"changed: settings\.max_new_tokens: 256 -> 7"):
        augment(cfg.model_copy(update={"max_new_tokens": 7}), engine=ScriptedEngine)


def test_garbage_generations_are_quarantined_never_dropped(dataset, tmp_path):
    """A teacher that writes nothing usable: every record quarantined with its reason, and the run fails (exit 2)."""
    out = tmp_path / "g"
    with pytest.raises(DataError, match=f"every one of the {n_lines(dataset)} input records was quarantined"):
        augment(cfg_for(dataset, out, max_retries=1), engine=lambda: ScriptedEngine(always_empty=True))
    manifest = json.loads((out / "manifest.json").read_text())  # written before the failure is reported
    assert manifest["counts"]["output"] == 0
    assert manifest["counts"]["quarantined"] == n_lines(dataset)
    reasons = [
        r["reason"] for r in quarantined(str(out)) if r["reason"].startswith("teacher output rejected")
    ]
    assert reasons and all("(after 2 attempt(s))" in r for r in reasons)
    assert not (out / "data").exists()


def test_merge_refuses_unfinished_shards(dataset, tmp_path):
    cfg = cfg_for(dataset, tmp_path / "m", num_shards=3)
    augment(cfg, 1, engine=ScriptedEngine)
    with pytest.raises(TeacherLMError, match=r"2 of 3 shard\(s\) unfinished: \[0, 2\]"):
        merge(cfg.output)


def test_merge_removes_the_temp_files_killed_writers_left(dataset, tmp_path):
    """A writer killed between creating its temp file and renaming it leaves the temp file behind;
    once every shard is complete, the merge removes them (none can belong to a live run)."""
    cfg = cfg_for(dataset, tmp_path / "m", num_shards=2)
    augment(cfg, engine=ScriptedEngine)
    shard_dir = Path(cfg.shard_dir(0))
    orphans = [shard_dir / "._SUCCESS.k9x2.tmp", shard_dir / ".part-00000.abc.jsonl.q1.tmp",
               tmp_path / "m" / ".merge-123-xyz.tmp"]  # fmt: skip
    for orphan in orphans:
        orphan.write_text("half a write")
    theirs = tmp_path / "m" / "notes" / "draft.tmp"  # not ours: an --output may hold other files
    theirs.parent.mkdir()
    theirs.write_text("keep me")
    merge(cfg.output)
    assert [p.relative_to(tmp_path) for p in (tmp_path / "m").rglob("*.tmp")] == [Path("m/notes/draft.tmp")]


# -- kill -9, outages, real engines ----------------------------------------------------------
def run_worker(dataset, out, shards=2, part_size=3, delay=0.02, shard=None, model=None, env=None):
    args = [
        sys.executable,
        str(HERE / "augment_worker.py"),
        str(dataset),
        str(out),
        str(shards),
        str(part_size),
        str(delay),
    ]
    env = os.environ | ({"TEACHERLM_WORKER_MODEL": model} if model else {}) | (env or {})
    return subprocess.Popen([*args, *([str(shard)] if shard is not None else [])], env=env,
                            stderr=subprocess.PIPE if env else None, text=True)  # fmt: skip


def wait_for_markers(out: str, n: int, proc, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        markers = [
            u
            for u in storage.list_files(storage.join(out, "shards"))
            if u.endswith(".json") or u.endswith("_SUCCESS")
        ]
        if len(markers) >= n or proc.poll() is not None:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{n} markers did not appear under {out}")


def kill_and_resume(dataset, out: str, kill_after: list[int], model=None) -> None:
    for n in kill_after:
        proc = run_worker(dataset, out, model=model)
        wait_for_markers(out, n, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert run_worker(dataset, out, model=model).wait(timeout=300) == 0


def test_a_hung_engine_ends_the_shard_with_a_clear_error_and_a_rerun_is_exactly_once(dataset, tmp_path):
    """The engine stops returning anything (no error): the shard ends within seconds of the stall limit,
    says why on stderr, exits 75; the re-run (KFP's retry) resumes from the markers, every record once."""
    # What tests/augment_worker.py runs (results depend on each request's seed alone), uninterrupted.
    reference = cfg_for(dataset, tmp_path / "ref", num_shards=2, part_size=3)
    augment(reference, engine=lambda: StreamingScriptedEngine(batch=4, empty_rate=0.1))
    out = tmp_path / "stalled"
    hung = run_worker(dataset, out, env={"TEACHERLM_WORKER_HANG_AFTER": "5", "TEACHERLM_WORKER_STALL_S": "1"})
    start = time.monotonic()
    _, stderr = hung.communicate(timeout=120)
    assert hung.returncode == 75, stderr[-2000:]
    assert "the engine returned nothing for 1s (the stall limit)" in stderr
    assert "resumes from the last finished part" in stderr
    assert time.monotonic() - start < 60  # not the task's timeout, days later
    assert list(Path(out).rglob("part-*.json"))  # it had finished parts before it hung
    assert run_worker(dataset, out).wait(timeout=300) == 0
    assert merged_records(str(out)) == merged_records(reference.output)
    assert sorted(map(json.dumps, quarantined(str(out)))) == sorted(
        map(json.dumps, quarantined(reference.output))
    )


def valid_inputs(dataset) -> int:
    """Input lines that meet the data contract (the fixture adds three that do not)."""
    return n_lines(dataset) - 3


def assert_augmented(records: list[dict], at_least: int) -> None:
    """Records really augmented: each explanation is English text, not merely present."""
    assert len(records) >= at_least, f"only {len(records)} records augmented, expected at least {at_least}"
    for rec in records:
        for f in ("fundamentals", "chain_of_thought", "common_mistakes"):
            words = rec[f].split()
            assert len(words) >= 3 and rec[f][-1] in ".!?)", (rec["id"], f, rec[f])


@pytest.mark.integration
def test_kill_9_at_several_points_then_resume_is_exactly_once(dataset, tmp_path):
    reference = tmp_path / "ref"
    assert run_worker(dataset, reference).wait(timeout=300) == 0
    resumed = tmp_path / "resumed"
    # killed before anything is written, mid-shard, at a shard boundary, and late
    kill_and_resume(dataset, str(resumed), kill_after=[0, 2, 5, 9, 13])
    assert merged_records(str(resumed)) == merged_records(str(reference))
    assert sorted(map(json.dumps, quarantined(str(resumed)))) == sorted(
        map(json.dumps, quarantined(str(reference)))
    )
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert (
        manifest["counts"]["input"]
        == n_lines(dataset)
        == manifest["counts"]["output"] + manifest["counts"]["quarantined"]
    )
    assert not list(resumed.rglob("*.tmp"))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_kill_9_then_resume_with_the_real_hf_engine(dataset, tiny_teacher, tmp_path):
    """The same guarantee with a real engine and a teacher that writes: resumed == uninterrupted, token for token."""
    reference = tmp_path / "ref"
    assert run_worker(dataset, reference, part_size=8, model=tiny_teacher).wait(timeout=300) == 0
    resumed = tmp_path / "resumed"
    kill_and_resume(dataset, str(resumed), kill_after=[1, 3], model=tiny_teacher)
    records = merged_records(str(resumed))
    assert records == merged_records(str(reference))
    assert_augmented(records, at_least=int(0.9 * valid_inputs(dataset)))


@pytest.mark.integration
def test_results_do_not_depend_on_sharding_with_the_real_hf_engine(dataset, tiny_teacher, tmp_path):
    outs = {}
    for shards in (1, 3):
        cfg = AugmentConfig(model=tiny_teacher, input=str(dataset), output=str(tmp_path / f"s{shards}"),
                            engine="hf", num_shards=shards, temperature=0.0, max_new_tokens=40)  # fmt: skip
        augment(cfg)
        outs[shards] = merged_records(cfg.output)
    strip = [{k: v for k, v in r.items() if k != "generation"} for r in outs[1]]
    assert strip == [{k: v for k, v in r.items() if k != "generation"} for r in outs[3]]
    assert_augmented(outs[1], at_least=int(0.9 * valid_inputs(dataset)))


@pytest.mark.integration
def test_kill_9_and_an_s3_outage_on_s3(dataset, tmp_path, s3_env, monkeypatch):
    out = f"s3://{s3_env.bucket}/augment-faults/{tmp_path.name}"
    reference = tmp_path / "ref"
    assert run_worker(dataset, reference).wait(timeout=300) == 0
    for n in (1, 4):
        proc = run_worker(dataset, out)
        wait_for_markers(out, n, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # Now stop the S3 server for ~10 s in the middle of a run; the client retries through it.
    monkeypatch.setenv("TEACHERLM_S3_RETRY_SECONDS", "60")
    proc = run_worker(dataset, out, delay=0.05)
    wait_for_markers(out, 7, proc)
    assert proc.poll() is None, "the run finished before the outage; slow the worker down"
    s3_env.stop()
    time.sleep(10)
    s3_env.restart()
    rc = proc.wait(timeout=300)
    if rc != 0:  # a clear failure is allowed; the re-run must then complete
        assert run_worker(dataset, out).wait(timeout=300) == 0
    assert merged_records(out) == merged_records(str(reference))
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert manifest["counts"]["input"] == manifest["counts"]["output"] + manifest["counts"]["quarantined"]


def cli(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "teacherlm_core", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.integration
def test_cli_with_the_real_hf_engine_on_s3_one_shard_at_a_time(dataset, tiny_teacher, s3_env, tmp_path):
    out = f"s3://{s3_env.bucket}/augment-cli/{tmp_path.name}"
    inp = f"s3://{s3_env.bucket}/augment-cli/{tmp_path.name}-input.jsonl"
    storage.copy(str(dataset), inp)
    common = ["--teacher", tiny_teacher, "--input", inp, "--output", out, "--num-shards", "2", "--engine", "hf",
              "--max-new-tokens", "40", "--temperature", "0"]  # fmt: skip
    for shard in (0, 1):  # what a pipeline's fan-out tasks do
        res = cli("augment", *common, "--shard-index", str(shard))
        assert res.returncode == 0, res.stderr[-3000:]
    res = cli("augment", "merge", "--output", out)
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads(storage.read_text(storage.join(out, "manifest.json")))
    assert (
        manifest["counts"]["input"]
        == n_lines(dataset)
        == manifest["counts"]["output"] + manifest["counts"]["quarantined"]
    )
    assert manifest["teacher"] == f"{tiny_teacher}@local" and manifest["tokens_generated"] > 0
    assert_augmented(merged_records(out), at_least=int(0.9 * valid_inputs(dataset)))


@pytest.mark.integration
def test_cli_with_vllm_locally(dataset, tiny_teacher, tmp_path):
    out = tmp_path / "v"
    res = cli(
        "augment",
        "--teacher",
        tiny_teacher,
        "--input",
        str(dataset),
        "--output",
        str(out),
        "--engine",
        "vllm",
        "--max-new-tokens",
        "40",
        "--temperature",
        "0",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["input"] == manifest["counts"]["output"] + manifest["counts"]["quarantined"]
    assert_augmented(merged_records(str(out)), at_least=int(0.9 * valid_inputs(dataset)))
    assert "augmented" in res.stderr and "quarantined" in res.stderr


def test_bad_options_are_reported_at_once(tmp_path):
    res = cli(
        "augment",
        "--model",
        "m",
        "--input",
        "i",
        "--output",
        str(tmp_path),
        "--fields",
        "summary",
        "--part-size",
        "0",
    )
    assert res.returncode == 2
    assert "--fields" in res.stderr and "--part-size" in res.stderr and "Traceback" not in res.stderr


def test_a_second_merge_of_one_output_is_told_so_and_the_next_one_is_clean(dataset, tmp_path):
    """Two merges of one output at once: the second is refused in one line (before, it failed
    halfway when the first deleted its temp files); once the first ends, a merge runs clean."""
    from teacherlm_core.augment.merge import merge, merge_lock
    from teacherlm_core.errors import TeacherLMError

    out = tmp_path / "run"
    first = augment(cfg_for(dataset, out, num_shards=2, part_size=8), engine=ScriptedEngine)
    with merge_lock(str(out)), pytest.raises(TeacherLMError, match="another merge of this output is running"):
        merge(str(out))
    again = merge(str(out))
    assert again["counts"] == first["counts"] and again["files"] == first["files"]
