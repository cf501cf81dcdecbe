"""Streaming dedup and import: the same verdicts as the in-memory MinHashLSH, bounded memory,
and no stale outputs after a failed or killed import."""

import json
import os
import random
import subprocess
import sys
import textwrap
import tracemalloc

import pyarrow.parquet as pq
import pytest

from teacherlm_core.data import deduplicate, import_dataset, read_manifest
from teacherlm_core.data import manifest as manifest_mod
from teacherlm_core.data.dedup import STEP_EXACT, STEP_NEAR, normalize_text, record_text, shingles
from teacherlm_core.parquet import read_records

pytestmark = pytest.mark.timeout(120)

MAPPING = {"task": "t", "id": "id", "question": "question", "choices": "choices", "answer": "answer"}
WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe") for b in range(40)]


def reference_dedup(records, threshold=0.8, num_perm=128, shingle_size=3):
    """The in-memory dedup as it was before it streamed (datasketch's MinHashLSH in memory):
    the oracle the streaming code must agree with. Returns (kept ids, report)."""
    import hashlib

    from datasketch import MinHash, MinHashLSH

    priority = ("test", "validation", "train")
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    exact, normal, hashes, removed, report = {}, {}, {}, set(), []
    order = sorted(range(len(records)), key=lambda i: (priority.index(records[i]["split"]), i))

    def digest(text):
        return hashlib.blake2b(text.encode(), digest_size=16).digest()

    def note(i, j, kind, action, similarity=None):
        entry = {"id": records[i]["id"], "split": records[i]["split"], "task": records[i]["task"], "kind": kind,
                 "action": action, "duplicate_of": records[j]["id"], "duplicate_of_split": records[j]["split"]}  # fmt: skip
        if similarity is not None:
            entry["similarity"] = round(similarity, 4)
        report.append(entry)

    for i in order:
        rec = records[i]
        text = record_text(rec)
        key = digest(json.dumps([rec["question"], rec.get("choices")], ensure_ascii=False))
        norm = digest(normalize_text(text))
        if key in exact:
            note(i, exact[key], "exact", "removed")
            removed.add(i)
            continue
        if norm in normal:
            note(i, normal[norm], "normalized", "removed")
            removed.add(i)
            continue
        exact[key], normal[norm] = i, i
        mh = MinHash(num_perm=num_perm)
        mh.update_batch(sorted(shingles(text, shingle_size)))
        near = [(j, mh.jaccard(hashes[j])) for j in sorted(lsh.query(mh))]
        near = [(j, s) for j, s in near if s >= threshold]
        cross = [(j, s) for j, s in near if records[j]["split"] != rec["split"]]
        if cross:
            j, s = max(cross, key=lambda js: (js[1], -js[0]))
            note(i, j, "near", "removed", s)
            removed.add(i)
            continue
        if near:
            j, s = max(near, key=lambda js: (js[1], -js[0]))
            note(i, j, "near", "flagged", s)
        hashes[i] = mh
        lsh.insert(i, mh)
    return [r["id"] for i, r in enumerate(records) if i not in removed], report


def varied_records(n=400, seed=0):
    """Records in three splits, interleaved, with exact, normalised and near copies (one to three
    words changed in ~35) of earlier records, in the same split and across splits."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        split = rng.choice(["train"] * 6 + ["validation", "test"])
        kind = rng.random()
        if out and kind < 0.5:
            src = rng.choice(out)
            question = src["question"]
            if kind < 0.12:
                pass  # exact
            elif kind < 0.24:
                question = "  " + question.upper().replace(" ", ",  ") + "!"
            else:
                words = question.split()
                for _ in range(rng.randint(1, 3)):
                    words[rng.randrange(len(words))] = rng.choice(WORDS)
                question = " ".join(words)
            choices = src["choices"] if rng.random() < 0.9 else ["maybe", "never"]
        else:
            question = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 40))) + "?"
            choices = ["yes", "no"]
        out.append({"id": f"r{i}", "task": "t", "split": split, "question": question, "choices": choices,
                    "answer": choices[0]})  # fmt: skip
    return out


def write_splits_as_sources(tmp_path, records):
    paths = {}
    for split in ("train", "validation", "test"):
        path = tmp_path / f"src-{split}.jsonl"
        rows = [
            {k: r[k] for k in ("id", "question", "choices", "answer")} for r in records if r["split"] == split
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths[split] = path
    return paths


def test_the_varied_input_has_every_kind_of_duplicate():
    _, report = reference_dedup(varied_records())
    seen = {(e["kind"], e["action"], e["split"] == e["duplicate_of_split"]) for e in report}
    assert {("exact", "removed", True), ("exact", "removed", False), ("normalized", "removed", False),
            ("near", "removed", False), ("near", "flagged", True)} <= seen  # fmt: skip


@pytest.mark.parametrize("threshold", [0.8, 0.6])
def test_streaming_dedup_matches_the_in_memory_minhash_lsh(threshold):
    records = varied_records()
    kept, report = reference_dedup(records, threshold)
    result = deduplicate(records, threshold=threshold)
    assert [r["id"] for r in result.kept] == kept
    assert result.report == report
    assert result.counts["kept"] == len(kept) and result.counts["input"] == len(records)


def test_streaming_import_matches_the_in_memory_minhash_lsh(tmp_path):
    records = varied_records()
    # the import reads train, validation, test in that order: the oracle sees the same input order
    ordered = [r for s in ("train", "validation", "test") for r in records if r["split"] == s]
    kept, report = reference_dedup(ordered)
    manifest = import_dataset(write_splits_as_sources(tmp_path, records), MAPPING, tmp_path / "out")
    got = [json.loads(line)["id"] for s in ("train", "validation", "test")
           for line in (tmp_path / f"out/{s}.jsonl").read_text().splitlines()]  # fmt: skip
    assert got == kept
    assert [json.loads(line) for line in (tmp_path / "out/dedup.jsonl").read_text().splitlines()] == report
    assert manifest["records"]["out"] == len(kept) and manifest["counts"]["total"] == len(kept)
    by_split = {
        s: sum(1 for r in ordered if r["id"] in set(kept) and r["split"] == s)
        for s in ("train", "validation", "test")
    }
    assert manifest["counts"]["splits"] == {s: n for s, n in by_split.items() if n}


def test_parquet_is_written_in_row_groups_and_matches_the_jsonl(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_mod, "ROW_GROUP", 7)
    records = varied_records(120, seed=3)
    manifest = import_dataset(write_splits_as_sources(tmp_path, records), MAPPING, tmp_path / "out",
                              formats=("jsonl", "parquet"))  # fmt: skip
    for split in manifest["counts"]["splits"]:
        rows = [json.loads(line) for line in (tmp_path / f"out/{split}.jsonl").read_text().splitlines()]
        meta = pq.ParquetFile(tmp_path / f"out/{split}.parquet").metadata
        assert meta.num_rows == len(rows) and meta.num_row_groups == -(-len(rows) // 7)
        assert list(read_records(tmp_path / f"out/{split}.parquet")) == rows
        assert manifest["files"][f"{split}.parquet"]["records"] == len(rows)


def test_each_pass_reports_progress_over_its_records(tmp_path):
    records = varied_records(300, seed=1)
    seen = {}
    manifest = import_dataset(write_splits_as_sources(tmp_path, records), MAPPING, tmp_path / "out",
                              progress=lambda label, n: seen.__setitem__(label, seen.get(label, 0) + n))  # fmt: skip
    exact_removed = manifest["dedup"]["removed"]["exact"] + manifest["dedup"]["removed"]["normalized"]
    assert seen[STEP_EXACT] == len(records)
    assert seen[STEP_NEAR] == len(records) - exact_removed
    assert sum(n for label, n in seen.items() if label not in (STEP_EXACT, STEP_NEAR)) == len(records)


def _import_peak(tmp_path, n, name):
    """Peak bytes Python allocated (numpy included) while importing ``n`` distinct records."""
    rng = random.Random(n)
    src = tmp_path / f"{name}.jsonl"
    with src.open("w") as fh:
        for i in range(n):
            q = " ".join(rng.choice(WORDS) for _ in range(12)) + f" {i}?"
            fh.write(json.dumps({"id": f"x{i}", "question": q, "choices": ["a", "b"], "answer": "a"}) + "\n")
    import_dataset(src, MAPPING, tmp_path / f"out-{name}")  # warm: imports, caches
    tracemalloc.start()
    try:
        import_dataset(src, MAPPING, tmp_path / f"out-{name}")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.integration  # a real CLI process, engine or training run: not the fast tier
def test_import_memory_grows_by_compact_keys_only_not_by_records(tmp_path):
    """4x the records may cost only the hash tables' slots (<= 48 bytes a record), not the records
    (hundreds of bytes each) or a MinHash per kept record (over 1 KB each, as in memory)."""
    small, large = 1500, 6000
    growth = _import_peak(tmp_path, large, "large") - _import_peak(tmp_path, small, "small")
    assert growth / (large - small) < 48, f"{growth / (large - small):.0f} bytes a record"


def test_a_failed_import_leaves_only_its_quarantine(tmp_path):
    records = varied_records(200, seed=2)
    sources = write_splits_as_sources(tmp_path, records)
    with sources["train"].open("a") as fh:
        fh.write("{broken\n")
    out = tmp_path / "out"
    import_dataset(sources, MAPPING, out)  # an earlier, complete build
    assert (out / "manifest.json").exists()

    def fail(label, n):
        if label == STEP_NEAR:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        import_dataset(sources, MAPPING, out, progress=fail)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "quarantine",
        "quarantine/rejected.jsonl",
    ]


KILLER = textwrap.dedent("""
    import json, os, signal, sys
    from teacherlm_core.data import import_dataset

    def progress(label, n):
        if label == sys.argv[3]:
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a preempted node would

    import_dataset(json.loads(sys.argv[1]), json.loads(sys.argv[4]), sys.argv[2], progress=progress)
""")


@pytest.mark.parametrize("step", [STEP_EXACT, STEP_NEAR])
def test_a_killed_import_leaves_no_outputs_and_the_rerun_cleans_up(tmp_path, step):
    sources = {k: str(v) for k, v in write_splits_as_sources(tmp_path, varied_records(200, seed=4)).items()}
    out = tmp_path / "out"
    reference = import_dataset(sources, MAPPING, tmp_path / "clean")
    import_dataset(
        sources, MAPPING, out
    )  # an earlier build: the killed one must not leave it looking current
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(sources), str(out), step, json.dumps(MAPPING)],
                          env=env, capture_output=True, text=True, timeout=100)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    left = {p.name for p in out.iterdir()}
    assert not left & {"manifest.json", "dedup.jsonl", "train.jsonl", "validation.jsonl", "test.jsonl"}
    assert any(name.startswith(".import-") for name in left)  # its work directory, until the next run
    manifest = import_dataset(sources, MAPPING, out)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert manifest["files"] == reference["files"] and read_manifest(out)["files"] == reference["files"]
