"""``--engine auto`` (the default): decided once per output, recorded as the engine that ran.

The plan, the records, the manifest and the dataset card name ``vllm`` or ``hf``, never ``auto``;
a resumed run keeps the recorded engine without deciding again (so it never mixes engines), and an
explicit other engine is still refused.
"""

from __future__ import annotations

import json
import logging

import pytest
from fake_engines import ScriptedEngine
from typer.testing import CliRunner

from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.cli.augment import app
from teacherlm_core.errors import ConfigError

pytestmark = pytest.mark.timeout(120)

ROWS = [
    {
        "id": f"q{i}",
        "task": "t",
        "question": f"Is {i} even?",
        "choices": ["yes", "no"],
        "answer": "yes" if i % 2 == 0 else "no",
    }
    for i in range(6)
]


class BuiltHF(ScriptedEngine):
    """What ``get_engine("auto")`` returns where vLLM cannot run the teacher: an engine named ``hf``."""

    name = "hf"
    built = 0

    def __init__(self):
        super().__init__()
        BuiltHF.built += 1


def _cfg(tmp_path, **kw) -> AugmentConfig:
    src = tmp_path / "in.jsonl"
    if not src.exists():
        src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    args = {
        "teacher": "scripted-teacher",
        "input": str(src),
        "output": str(tmp_path / "run"),
        "num_shards": 2,
        "part_size": 2,
        "temperature": 0.0,
    } | kw
    return AugmentConfig(**args)


def test_auto_is_the_default_and_the_run_records_the_engine_it_built(tmp_path):
    BuiltHF.built = 0
    cfg = _cfg(tmp_path)
    assert cfg.engine == "auto"
    manifest = augment(cfg, engine=BuiltHF)
    assert BuiltHF.built == 1  # built once to decide, then used for every shard
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["identity"]["engine"]["name"] == plan["config"]["engine"] == "hf"
    assert manifest["identity"]["engine"]["name"] == manifest["config"]["engine"] == "hf"
    records = [json.loads(x) for x in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert len(records) == len(ROWS) and {r["generation"]["engine"] for r in records} == {"hf"}
    assert "Engine: `hf`" in (tmp_path / "run" / "README.md").read_text()


def test_a_resumed_auto_run_keeps_the_recorded_engine_and_another_engine_is_refused(tmp_path, monkeypatch):
    import teacherlm_core.augment as aug

    BuiltHF.built = 0
    augment(_cfg(tmp_path), 0, engine=BuiltHF)  # shard 0 of 2: the run is planned with the engine built
    assert BuiltHF.built == 1

    def never():  # deciding again could pick vLLM (it runs here) and mix engines in one run
        raise AssertionError("auto was decided again on resume")

    made = []

    def factory_of(cfg):  # the plain factory of the engine the resume runs with
        made.append(cfg.engine)
        return BuiltHF if cfg.engine == "hf" else never

    monkeypatch.setattr(aug, "engine_factory", factory_of)
    manifest = augment(_cfg(tmp_path))  # --engine auto again: shard 1 runs, with the recorded engine
    assert made == ["hf"] and BuiltHF.built == 2
    assert manifest["counts"]["output"] == len(ROWS) and manifest["config"]["engine"] == "hf"
    with pytest.raises(ConfigError, match=r"engine\.name: 'hf' -> 'vllm'"):
        augment(_cfg(tmp_path, engine="vllm"), engine=BuiltHF)


def test_auto_stands_only_for_vllm_or_hf(tmp_path):
    with pytest.raises(ValueError, match="auto stands for vllm or hf"):
        augment(_cfg(tmp_path), engine=ScriptedEngine)  # an engine named "scripted"
    assert not (tmp_path / "run" / "plan.json").exists()  # nothing recorded for it


@pytest.mark.integration
def test_the_cli_default_falls_back_to_hf_once_and_a_resume_keeps_it(tmp_path, caplog):
    """A teacher shape vLLM's CPU backend rejects (head_dim 20): the default engine runs it with HF,
    said once; the resume with --engine auto keeps HF without trying vLLM; --engine vllm is refused."""
    from teacherlm_core.tiny import TinySpec, build_tiny_model

    odd = build_tiny_model(tmp_path / "odd", spec=TinySpec(hidden_size=40, intermediate_size=64), seed=0)
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    common = [
        "--teacher",
        str(odd),
        "--data",
        str(tmp_path / "in.jsonl"),
        "--output",
        str(tmp_path / "run"),
        "--num-shards",
        "2",
        "--max-new-tokens",
        "4",
        "--temperature",
        "0",
        "--no-track",
    ]
    with caplog.at_level(logging.INFO, logger="teacherlm_core"):
        res = CliRunner().invoke(app, [*common, "--shard-index", "0"])  # no --engine: the default
    assert res.exit_code == 0, res.output
    assert "engine: hf (auto)" in res.output  # the choice, in the default output
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine auto:")]
    assert len(said) == 1 and "vLLM cannot run" in said[0] and "using the HF engine" in said[0], said
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())
    assert plan["identity"]["engine"]["name"] == plan["config"]["engine"] == "hf"

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="teacherlm_core"):
        res = CliRunner().invoke(app, [*common, "--shard-index", "1", "--engine", "auto"])
    assert res.exit_code == 0, res.output
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine auto:")]
    assert len(said) == 1 and said[0].startswith("engine auto: hf, the engine") and "plan.json" in said[0], (
        said
    )
    assert (tmp_path / "run" / "shards" / "shard-00001-of-00002" / "_SUCCESS").exists()
    assert json.loads((tmp_path / "run" / "plan.json").read_text()) == plan  # the plan is untouched

    res = CliRunner().invoke(app, [*common, "--shard-index", "1", "--engine", "vllm"])
    assert isinstance(res.exception, ConfigError) and "engine.name: 'hf' -> 'vllm'" in str(res.exception)


@pytest.mark.integration
def test_the_pipeline_shard_task_takes_auto_and_loads_vllm_once_where_it_runs(
    tmp_path, tiny_model, monkeypatch, caplog
):
    """The KFP stage with engine=auto on a teacher vLLM runs: vLLM, loaded once (to decide, then to
    generate), recorded in the plan the task hands on, and said once."""
    from teacherlm_core.data import build_builtin
    from teacherlm_core.engines import vllm
    from teacherlm_core.stages.augment_plan import augment_plan
    from teacherlm_core.stages.augment_shard import augment_shard

    loaded = []

    class Counted(vllm.VLLMEngine):
        def __init__(self, *args, **kwargs):
            loaded.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(vllm, "VLLMEngine", Counted)
    build_builtin(tmp_path / "data", ["claims"], per_task=8, seed=0)
    augment_plan(str(tmp_path / "data"), 2, split=str(tmp_path / "split"))
    out = tmp_path / "task"
    with caplog.at_level(logging.INFO, logger="teacherlm_core"):
        counts = augment_shard(
            tiny_model,
            str(tmp_path / "split"),
            str(out),
            shard_index=0,
            num_shards=2,
            engine="auto",
            max_new_tokens=4,
            temperature=0.0,
        )
    assert counts["in"] == counts["out"] + counts["quarantined"] > 0
    assert loaded == [tiny_model]
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("engine auto:")]
    assert said == [f"engine auto: vLLM runs {tiny_model} here"]
    plan = json.loads((out / "plan.json").read_text())
    assert plan["identity"]["engine"]["name"] == plan["config"]["engine"] == "vllm"


def test_auto_checks_the_input_and_output_before_it_loads_a_teacher(tmp_path):
    """A new user's trial: a wrong --data under the default engine waited 78 s for vLLM to load the
    teacher, and a teacher that does not load left an empty --output behind."""
    from teacherlm_core.augment import resolve_engine
    from teacherlm_core.errors import DataError

    def never():
        raise AssertionError("no engine may be built for a run that cannot start")

    missing = _cfg(tmp_path, engine="auto", input=str(tmp_path / "nodata" / "train.jsonl"))
    with pytest.raises(DataError, match="no such file"):
        resolve_engine(missing, engine=never)
    assert not (tmp_path / "run").exists()

    def unloadable():
        raise RuntimeError("cannot load model 'tiny-llama'")

    with pytest.raises(RuntimeError, match="tiny-llama"):
        resolve_engine(_cfg(tmp_path, engine="auto"), engine=unloadable)
    assert not (tmp_path / "run").exists()
