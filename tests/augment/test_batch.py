"""Interchange with batch engines: a shard's requests out as an OpenAI batch file, through the stand-in
server's batch API, and the results back in through the parts and markers, exactly once."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fake_openai import FakeCompletions

from teacherlm_core import storage
from teacherlm_core.augment import AugmentConfig, augment, merge
from teacherlm_core.augment.batch import export_batch

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server():
    srv = FakeCompletions(flaky=0, delay=0)
    srv.max_prompt_chars = 1500
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def _dataset(path):
    from teacherlm_core.data import build_builtin

    build_builtin(path.parent / "built", ["claims", "arithmetic"], per_task=5, seed=0)
    lines = (path.parent / "built" / "train.jsonl").read_text().splitlines()
    long = json.loads(lines[0]) | {"id": "too-long", "question": "word " * 400}  # past the server's context
    path.write_text("\n".join([*lines, json.dumps(long), "{not json"]) + "\n")
    return path


def _through_the_batch_api(srv, requests, results) -> None:
    """What a user does with a hosted batch API (or `vllm run-batch`): upload, create, wait, download."""
    from openai import OpenAI

    client = OpenAI(base_url=srv.url, api_key="k")
    with open(requests, "rb") as f:
        uploaded = client.files.create(file=f, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/completions", completion_window="24h"
    )
    while batch.status != "completed":
        time.sleep(0.01)
        batch = client.batches.retrieve(batch.id)
    results.write_bytes(client.files.content(batch.output_file_id).content)


def test_a_batch_round_trip_lands_every_record_once_as_the_online_engine_would(server, tmp_path):
    data = _dataset(tmp_path / "in.jsonl")
    cfg = AugmentConfig(model="teacher", input=str(data), output=str(tmp_path / "out"), engine="batch",
                        num_shards=2, part_size=3, temperature=0.0, max_new_tokens=16)  # fmt: skip
    for shard in range(2):
        requests, results = tmp_path / f"requests-{shard}.jsonl", tmp_path / f"results-{shard}.jsonl"
        n = export_batch(cfg, shard, requests)
        lines = [json.loads(x) for x in requests.read_text().splitlines()]
        assert len(lines) == n > 0 and len({x["custom_id"] for x in lines}) == n
        assert {(x["method"], x["url"]) for x in lines} == {("POST", "/v1/completions")}
        assert set(lines[0]["body"]) == {
            "model",
            "prompt",
            "max_tokens",
            "temperature",
            "top_p",
            "seed",
            "stop",
        }
        _through_the_batch_api(server, requests, results)
        importing = cfg.model_copy(update={"batch_results": str(results)})

        def killed(stats):  # the import dies after its first part
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            augment(importing, shard, on_part=killed)
        augment(importing, shard)  # resumed: finished parts are not written again
        markers = [u.rsplit("/", 1)[1].split(".")[0] for u in storage.list_files(cfg.shard_dir(shard))
                   if u.endswith(".json") and "/part-" in u]  # fmt: skip
        assert sorted(markers) == sorted(set(markers)), "a part was written twice"
        assert export_batch(cfg, shard, tmp_path / "left.jsonl") == 0  # nothing left to request
    manifest = merge(cfg.output)
    # The same run with the online engine against the same server: the same records, the same quarantine.
    online = cfg.model_copy(
        update={"engine": "openai", "base_url": server.url, "output": str(tmp_path / "online")}
    )
    online_manifest = augment(online)
    assert manifest["counts"]["output"] == online_manifest["counts"]["output"] > 0
    assert manifest["counts"]["input"] == manifest["counts"]["output"] + manifest["counts"]["quarantined"]

    def records(out):
        rows = [json.loads(x) for uri in storage.list_files(storage.join(out, "shards")) if uri.endswith(".jsonl")
                and ".quarantine." not in uri for x in storage.read_text(uri).splitlines()]  # fmt: skip
        return sorted(
            ({k: v for k, v in r.items() if k != "generation"} for r in rows), key=lambda r: r["id"]
        )

    batch_records = records(cfg.output)
    assert [r["id"] for r in batch_records] == sorted({r["id"] for r in batch_records})  # each record once
    assert batch_records == records(online.output)
    quarantine = [json.loads(x) for uri in storage.list_files(storage.join(cfg.output, "quarantine"))
                  for x in storage.read_text(uri).splitlines()]  # fmt: skip
    too_long = [q for q in quarantine if isinstance(q.get("raw"), dict) and q["raw"].get("id") == "too-long"]
    assert len(too_long) == 1 and "maximum context length" in too_long[0]["reason"]
