"""Two writers, one shard (issue 15 item 6): a KFP retry racing a slow original on the real S3 server.

The original writes part 0's data and stalls (a long GC pause, a network partition) before its
marker; the retry runs the whole shard meanwhile; then the original wakes up and finishes. With
one key per part, the original's late marker described the retry's data and merge failed on a
checksum that no re-run could repair. Each writer's keys are its own now, so merge succeeds and
counts every record once.
"""

from __future__ import annotations

import json
import threading

import pytest
from fake_engines import ScriptedEngine

from teacherlm_core import storage
from teacherlm_core.augment import AugmentConfig, augment, merge
from teacherlm_core.engines import Generation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class TaggedEngine(ScriptedEngine):
    """Scripted explanations signed by their writer, so a record tells which pod wrote it."""

    def __init__(self, tag: str):
        super().__init__()
        self.tag = tag

    def generate(self, prompts, params, progress=None):
        out = super().generate(prompts, params, progress)
        return [Generation(g.text + f" Written by {self.tag}.", g.num_tokens, g.finish_reason) for g in out]


@pytest.fixture
def small_dataset(tmp_path):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "built", per_task=3, seed=3)
    return tmp_path / "built" / "train.jsonl"


def test_a_retry_racing_a_slow_original_on_s3_merges_each_record_once(
    small_dataset, s3_env, tmp_path, monkeypatch
):
    out = f"s3://{s3_env.bucket}/fencing/{tmp_path.name}"
    cfg = AugmentConfig(model="scripted-teacher", input=str(small_dataset), output=out, engine="hf",
                        num_shards=1, part_size=4)  # fmt: skip
    n_in = sum(1 for line in small_dataset.read_text().splitlines() if line.strip())
    assert n_in > 3 * cfg.part_size  # several parts

    original_stalled, retry_done = threading.Event(), threading.Event()
    write_bytes = storage.write_bytes

    def stalling_write(uri, data):
        write_bytes(uri, data)
        me = threading.current_thread().name
        if me == "original" and "/part-00000." in str(uri) and str(uri).endswith(".jsonl"):
            original_stalled.set()
            assert retry_done.wait(120), "the retry never finished"

    monkeypatch.setattr(storage, "write_bytes", stalling_write)
    errors: list[BaseException] = []

    def run(tag: str) -> None:
        try:
            augment(cfg, 0, engine=lambda: TaggedEngine(tag))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            if tag == "retry":
                retry_done.set()

    original = threading.Thread(target=run, args=("original",), name="original")
    original.start()
    assert original_stalled.wait(60), "the original never wrote part 0"
    retry = threading.Thread(target=run, args=("retry",), name="retry")
    retry.start()
    retry.join(120)
    original.join(120)
    assert not errors, errors

    manifest = merge(out)  # refused with a checksum mismatch before the fencing
    counts = manifest["counts"]
    assert counts["input"] == n_in == counts["output"] + counts["quarantined"]
    rows = [json.loads(x) for x in storage.read_text(storage.join(out, "train.jsonl")).splitlines()]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == counts["output"]
    # Each part comes whole from one writer: part 0, which both wrote, from the original (the earlier
    # writer); the others from the retry, which finished them first (the original skipped them).
    parts = json.loads(storage.read_text(storage.join(cfg.shard_dir(0), "_SUCCESS")))["parts"]
    signers = []
    for part in parts:
        (name,) = [n for n in part["files"] if not n.endswith(".quarantine.jsonl")]
        records = storage.read_text(storage.join(cfg.shard_dir(0), name)).splitlines()
        signed = {json.loads(r)[f].rsplit("Written by ", 1)[1] for r in records for f in cfg.fields}
        assert len(signed) == 1, (name, signed)
        signers.append(signed.pop())
    assert signers == ["original."] + ["retry."] * (len(parts) - 1)
