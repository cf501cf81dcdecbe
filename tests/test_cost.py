"""Cost per stage: each finished piece of work counted once, cost per 1,000 samples at a price per accelerator-hour."""

from __future__ import annotations

import json

import pytest

from teacherlm_core.cost import Cost, augment_cost, cost_markdown, read_cost, training_cost, write_cost


def _shard(root, name, parts, n_in):
    d = root / "shards" / name
    d.mkdir(parents=True)
    (d / "_SUCCESS").write_text(
        json.dumps({"in": n_in, "tokens": sum(p["tokens"] for p in parts), "parts": parts})
    )


def test_augmentation_cost_counts_each_finished_part_once(tmp_path):
    # Shard 0 was resumed: its first part finished in an earlier attempt and was skipped on the
    # re-run; the marker it left is counted once, with the seconds of the attempt that did it.
    _shard(
        tmp_path / "a",
        "shard-00000-of-00002",
        [{"tokens": 100, "seconds": 10.0}, {"tokens": 50, "seconds": 5.0}],
        6,
    )
    _shard(tmp_path / "b", "shard-00001-of-00002", [{"tokens": 30, "seconds": 3.0}], 2)
    c = augment_cost([str(tmp_path / "a"), str(tmp_path / "b")], accelerators=2, wall_seconds=1.0)
    assert c == Cost(tokens=180, accelerator_seconds=36.0, wall_seconds=19.0, samples=8)
    # 36 accelerator-seconds at 4.0 per hour for 8 samples: 0.04, so 5.0 per 1,000 samples.
    assert c.per_1000(4.0) == pytest.approx(36 / 3600 * 4.0 / 8 * 1000)


def test_training_cost_from_the_steps_in_metrics_jsonl(tmp_path):
    rows = [
        {"step": 1, "loss": 2.0, "tokens": 400, "tokens_per_s": 100.0},
        {"step": 2, "loss": 1.5, "tokens": 200, "tokens_per_s": 50.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = training_cost(tmp_path, accelerators=4, samples=10, wall_seconds=9.5)
    assert c == Cost(tokens=600, accelerator_seconds=32.0, wall_seconds=9.5, samples=10)
    assert Cost().per_1000(3.0) is None  # no samples: no cost per sample


def test_cost_json_round_trip_and_table(tmp_path):
    write_cost(tmp_path, {"augmentation": Cost(tokens=1, accelerator_seconds=3600, samples=1000)})
    assert read_cost(tmp_path)["augmentation"].per_1000(2.5) == pytest.approx(2.5)
    assert read_cost(tmp_path / "none") == {}
    table = cost_markdown(read_cost(tmp_path), 2.5)
    assert "| augmentation | 1000 | 1 | 3600.0 | 0.0 | 2.5000 |" in table
