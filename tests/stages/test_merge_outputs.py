"""`augment merge` as a stage: the dataset card with its cost, the augmentation summary, cost.json counted once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_engines import ScriptedEngine

from teacherlm_core import storage
from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.stages.augment_merge import augment_merge

pytestmark = pytest.mark.timeout(300)


def _shards(tmp_path, out):
    from teacherlm_core.data import build_builtin

    build_builtin(tmp_path / "data", ["claims", "arithmetic"], per_task=6, seed=0)
    cfg = AugmentConfig(model="scripted-teacher", input=str(tmp_path / "data" / "train.jsonl"), output=out,
                        engine="hf", num_shards=2, part_size=3)  # fmt: skip
    for shard in (0, 1):
        augment(cfg, shard, engine=lambda: ScriptedEngine(empty_rate=0.1))
    augment(cfg, 0, engine=lambda: ScriptedEngine(empty_rate=0.1))  # a re-run: every part skipped
    return cfg


def _check(out, summary, card):
    manifest = augment_merge(out, price_per_accelerator_hour=3600.0, summary=summary, card=card)
    cost = json.loads(storage.read_text(storage.join(out, "cost.json")))["augmentation"]
    parts = [
        p for i in (0, 1) for p in json.loads(storage.read_text(storage.join(out, "shards", f"shard-0000{i}-of-00002", "_SUCCESS")))["parts"]
    ]  # fmt: skip
    # Each finished part once, with the seconds of the attempt that did it (the re-run added nothing).
    assert cost["accelerator_seconds"] == pytest.approx(sum(p["seconds"] for p in parts))
    assert cost["samples"] == manifest["counts"]["input"] and cost["tokens"] == manifest["tokens_generated"]
    # At 3600 per accelerator-hour, one accelerator-second costs 1.
    assert manifest["cost"]["per_1000_samples"] == pytest.approx(
        cost["accelerator_seconds"] / cost["samples"] * 1000
    )
    text = storage.read_text(storage.join(out, "README.md"))
    assert "## Cost" in text and "cost per 1,000 samples at 3600/accelerator-hour" in text
    assert Path(card).read_text() == text
    md = Path(summary).read_text()
    assert "### claims" in md and "### arithmetic" in md and "reaches the gold answer" in md


def test_merge_in_place_writes_card_cost_and_summary(tmp_path):
    out = str(tmp_path / "out")
    _shards(tmp_path, out)
    _check(out, str(tmp_path / "summary.md"), str(tmp_path / "card.md"))


@pytest.mark.integration
def test_merge_in_place_on_s3(tmp_path, s3_env):
    out = f"s3://{s3_env.bucket}/merge-outputs/{tmp_path.name}"
    _shards(tmp_path, out)
    _check(out, str(tmp_path / "summary.md"), str(tmp_path / "card.md"))
