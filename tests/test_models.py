"""Named local models: a real model from a PyPI wheel, converted once, checksummed, usable by name everywhere."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from teacherlm_core.errors import ConfigError
from teacherlm_core.models import MARKER, NAMED, model_identity, provenance, resolve_model

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_named_model_is_converted_once_and_checked_on_every_use(smollm2):
    path = Path(smollm2)
    assert path == Path(os.environ["TEACHERLM_MODEL_CACHE"]) / "smollm2-135m-instruct"
    marker = json.loads((path / MARKER).read_text())
    assert (
        marker["sha256"] == NAMED["smollm2-135m-instruct"].sha256 and "model.safetensors" in marker["files"]
    )
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    mtime = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("smollm2-135m-instruct") == smollm2  # cached: not converted again
    assert (path / "model.safetensors").stat().st_mtime_ns == mtime
    assert provenance("smollm2-135m-instruct")["licence"] == "Apache-2.0" == provenance(smollm2)["licence"]
    assert model_identity("smollm2-135m-instruct") == model_identity(smollm2)
    assert resolve_model("org/some-hub-id") == "org/some-hub-id"  # hub ids and paths as before


def test_a_changed_conversion_is_refused(smollm2, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "smollm2-135m-instruct"
    shutil.copytree(smollm2, copy)
    (copy / "tokenizer_config.json").write_text("{}")
    monkeypatch.setenv("TEACHERLM_MODEL_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="was changed since its conversion"):
        resolve_model("smollm2-135m-instruct")


def test_the_real_model_augments_and_evaluates_by_name(smollm2, tmp_path):
    """CI runs the real model through one augmentation and one evaluation, by its name."""
    from teacherlm_core.augment import AugmentConfig, augment
    from teacherlm_core.data import build_builtin
    from teacherlm_core.stages.evaluate import evaluate

    build_builtin(tmp_path / "data", ["claims", "syllogisms"], per_task=6, seed=0)
    cfg = AugmentConfig(model="smollm2-135m-instruct", input=str(tmp_path / "data" / "train.jsonl"),
                        output=str(tmp_path / "aug"), engine="hf", max_new_tokens=48, temperature=0.0)  # fmt: skip
    manifest = augment(cfg)
    assert manifest["counts"]["output"] >= 1, manifest["counts"]
    assert "licence Apache-2.0" in (tmp_path / "aug" / "README.md").read_text()
    records = [json.loads(x) for x in (tmp_path / "aug" / "train.jsonl").read_text().splitlines()]
    english = [
        r for r in records if all(len(r[f].split()) >= 4 for f in ("fundamentals", "chain_of_thought"))
    ]
    assert english, records[:1]
    report = evaluate(
        "smollm2-135m-instruct", str(tmp_path / "data"), str(tmp_path / "eval.json"), engine="hf"
    )
    n_test = len((tmp_path / "data" / "test.jsonl").read_text().splitlines())
    assert report.overall.n == n_test > 0 and 0.0 <= report.overall.accuracy <= 1.0
