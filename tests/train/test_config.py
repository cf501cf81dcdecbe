"""Training configs: every shipped config validates; bad configs report every problem at once."""

from __future__ import annotations

import pytest

from teacherlm_core.errors import ConfigError
from teacherlm_core.train import StudentConfig, TeacherConfig, load_config, shipped_configs, with_launch
from teacherlm_core.train.config import shipped_config_path
from teacherlm_core.train.ds_config import load_deepspeed_config, zero_stage

pytestmark = pytest.mark.timeout(60)

STUDENT_FLAGS = {"model": "m", "data": "d.jsonl", "output": "o"}


@pytest.mark.parametrize("name", shipped_configs())
def test_every_shipped_config_validates_and_starts_with_its_command(name):
    first = shipped_config_path(name).read_text().splitlines()[0]
    assert first.startswith("# teacherlm train "), first
    if name.startswith("deepspeed/"):
        stage = name.removeprefix("deepspeed/")
        assert f"--deepspeed {stage}" in first
        assert zero_stage(load_deepspeed_config(stage, on_cpu=True)) == int(stage[-1])
        return
    assert f"--config {name} " in first + " "
    if "teacher" in name:
        assert isinstance(load_config("teacher", name), TeacherConfig)
    else:
        assert isinstance(load_config("student", name, STUDENT_FLAGS), StudentConfig)


def test_flags_override_the_yaml(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "model: a\ndata: b.jsonl\noutput: c\ntrain: {max_steps: 5, seed: 1}\nlaunch: {nproc: 2}\n"
    )
    cfg = load_config(
        "student", str(path), {"train.max_steps": 9, "launch.deepspeed": "zero3", "model": None}
    )
    assert (cfg.model, cfg.train.max_steps, cfg.train.seed) == ("a", 9, 1)
    assert (cfg.launch.nproc_per_node, cfg.launch.deepspeed, cfg.launch.world_size) == (2, "zero3", 2)


def test_with_launch_sets_the_typed_launch_fields_and_checks_them_together():
    """The one way the CLI and the stages set where ranks run (issue 26 item 2): typed fields under
    torchrun's names, the config validated again, the original left as it was."""
    cfg = load_config("student", "student_tiny", STUDENT_FLAGS)
    two = with_launch(cfg, nproc_per_node=2, nnodes=2, master_port=29500, deepspeed="zero3", seed=7)
    assert (two.launch.nproc_per_node, two.launch.nnodes, two.launch.world_size) == (2, 2, 4)
    assert (two.launch.deepspeed, two.train.seed, two.texts) == ("zero3", 7, cfg.texts)
    assert (cfg.launch.nproc_per_node, cfg.train.seed) == (1, 0)
    with pytest.raises(ConfigError, match=r"launch\.master_port: every node must agree"):
        with_launch(cfg, nnodes=2)
    with pytest.raises(ConfigError, match=r"launch\.nproc_per_node"):
        with_launch(cfg, nproc_per_node=0)
    assert load_config("student", None, STUDENT_FLAGS | {"launch": {"nproc": 3}}).launch.nproc_per_node == 3


def test_student_config_errors_come_all_at_once_with_field_paths(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "data: d.jsonl\n"
        "output: o\n"
        "texts: {fields: [fundamentals, rationale], weights: {plain: -1, nonsense: 2}, max_length: 4}\n"
        "train: {lr: 0, learning_rate: 0.1, per_device_batch_size: two}\n"
        "launch: {deepspeed: zero9, nnodes: 2, node_rank: 2}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config("student", str(path))
    problems = err.value.problems
    text = "\n".join(problems)
    for expected in (
        "model: is required",
        "texts.fields.1:",
        "texts.max_length:",
        "train.lr:",
        "train.learning_rate: unknown key",
        "train.per_device_batch_size:",
        "launch.node_rank: 2 must be below nnodes (2)",
        "launch.master_port:",
        "launch.deepspeed: 'zero9'",
    ):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert err.value.source == str(path)


def test_text_weight_problems_name_their_kind():
    with pytest.raises(ConfigError) as err:
        load_config(
            "student",
            None,
            STUDENT_FLAGS
            | {"texts": {"fields": ["fundamentals"], "weights": {"plain": -1, "x": 1, "common_mistakes": 1}}},
        )
    text = "\n".join(err.value.problems)
    assert "texts.weights.plain: must be >= 0" in text
    assert "texts.weights.x: unknown text kind" in text
    assert "texts.weights.common_mistakes: 'common_mistakes' texts are not enabled" in text


def test_teacher_config_errors(tmp_path):
    raw = {
        "model": "m",
        "output": "o",
        "stages": [
            {"name": "Multi Task", "max_steps": 0},
            {"name": "spec", "specialise": True},
            {"name": "spec", "data": "x.jsonl"},
        ],
    }
    with pytest.raises(ConfigError) as err:
        load_config("teacher", raw)
    text = "\n".join(err.value.problems)
    assert "stages.0.name:" in text and "stages.0.max_steps:" in text
    # The cross-stage checks run once the stages themselves are valid.
    raw["stages"][0] = {"name": "multitask"}
    with pytest.raises(ConfigError) as err:
        load_config("teacher", raw)
    text = "\n".join(err.value.problems)
    assert "the name 'spec' is used more than once" in text
    assert "stages.0.data: the first stage needs data" in text
    assert "stages.1.specialise: only the last stage" in text


def test_teacher_texts_default_to_the_explanation_only():
    cfg = load_config("teacher", {"model": "m", "output": "o", "stages": [{"name": "a", "data": "d"}]})
    assert (cfg.texts.include_plain, cfg.texts.loss) == (False, "completion")
    cfg = load_config(
        "teacher",
        {"model": "m", "output": "o", "texts": {"max_length": 64}, "stages": [{"name": "a", "data": "d"}]},
    )
    assert (cfg.texts.include_plain, cfg.texts.loss, cfg.texts.max_length) == (False, "completion", 64)


def test_unreadable_or_non_mapping_config(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config"):
        load_config("student", str(tmp_path / "missing.yaml"))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="YAML mapping"):
        load_config("student", str(tmp_path / "list.yaml"))


def test_deepspeed_config_checks_are_gathered(tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(
        '{"zero_optimization": {"stage": 2}, "optimizer": {"type": "AdamW"}, '
        '"scheduler": {"type": "WarmupLR"}, "fp16": {"enabled": true}}'
    )
    with pytest.raises(ConfigError) as err:
        load_deepspeed_config(str(path), on_cpu=True)
    text = "\n".join(err.value.problems)
    assert "scheduler:" in text and "optimizer:" in text and "fp16.enabled:" in text
    # On a GPU a DeepSpeed optimizer is fine; a scheduler never is.
    path.write_text('{"zero_optimization": {"stage": 3}, "optimizer": {"type": "AdamW"}}')
    cfg = load_deepspeed_config(str(path), on_cpu=False)
    assert cfg["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert load_deepspeed_config("none", on_cpu=True) is None
