"""Nothing stale: a resumed run is keyed on what it reads, not where it reads it from.

Changing the input in place (an answer corrected, a row added), the teacher's weights at the same
path, the engine or its endpoint is refused with a message that names what changed; nothing of
the old run is served. Credentials never enter the plan.
"""

from __future__ import annotations

import json

import pytest
from fake_engines import ScriptedEngine

from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.augment.plan import public_endpoint
from teacherlm_core.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

ROWS = [{"id": f"q{i}", "task": "t", "question": f"Is {i} even?", "choices": ["yes", "no"],
         "answer": "yes" if i % 2 == 0 else "no"} for i in range(6)]  # fmt: skip


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _cfg(tmp_path, **kw) -> AugmentConfig:
    args = {"model": "scripted-teacher", "input": str(tmp_path / "in.jsonl"), "output": str(tmp_path / "run"),
            "engine": "hf", "num_shards": 2, "temperature": 0.0} | kw  # fmt: skip
    return AugmentConfig(**args)


class Counting(ScriptedEngine):
    requests = 0

    def generate(self, prompts, params, progress=None):
        Counting.requests += len(prompts)
        return super().generate(prompts, params, progress)


@pytest.fixture
def finished(tmp_path):
    _write(tmp_path / "in.jsonl", ROWS)
    manifest = augment(_cfg(tmp_path), engine=Counting)
    assert manifest["counts"]["output"] == len(ROWS)
    return tmp_path


def test_an_unchanged_rerun_is_served_from_the_finished_run(finished):
    Counting.requests = 0
    again = augment(_cfg(finished), engine=Counting)
    assert Counting.requests == 0 and again["counts"]["output"] == len(ROWS)


@pytest.mark.parametrize(
    "edit",
    [
        lambda rows: [*rows[:-1], rows[-1] | {"answer": "yes"}],  # an answer corrected in place
        lambda rows: [
            *rows,
            {"id": "new", "task": "t", "question": "Is 9 even?", "choices": ["yes", "no"], "answer": "no"},
        ],
    ],
    ids=["answer-corrected", "row-added"],
)
def test_a_changed_input_at_the_same_path_is_refused(finished, edit):
    _write(finished / "in.jsonl", edit(ROWS))
    with pytest.raises(ConfigError) as err:
        augment(_cfg(finished), engine=Counting)
    message = str(err.value)
    assert "input.sha256" in message and "new --output" in message and f"delete {finished / 'run'}" in message


def test_another_engine_is_refused(finished):
    with pytest.raises(ConfigError, match=r"engine\.name: 'hf' -> 'vllm'"):
        augment(_cfg(finished, engine="vllm"), engine=Counting)


def test_new_teacher_weights_at_the_same_path_are_refused(tmp_path):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    (teacher / "model.safetensors").write_bytes(b"weights v1")
    _write(tmp_path / "in.jsonl", ROWS)
    augment(_cfg(tmp_path, model=str(teacher)), engine=Counting)
    (teacher / "model.safetensors").write_bytes(b"weights v2")  # retrained in place
    with pytest.raises(ConfigError, match=r"teacher\.weights"):
        augment(_cfg(tmp_path, model=str(teacher)), engine=Counting)


def test_the_endpoint_is_part_of_the_identity_without_its_credentials(tmp_path):
    _write(tmp_path / "in.jsonl", ROWS)
    url = "http://user:s3cret@vllm.internal:8000/v1/?api_key=s3cret"
    assert public_endpoint(url) == "http://vllm.internal:8000/v1"
    augment(_cfg(tmp_path, engine="openai", base_url=url), engine=Counting)
    plan_text = (tmp_path / "run" / "plan.json").read_text()
    assert "s3cret" not in plan_text and "vllm.internal:8000" in plan_text
    with pytest.raises(ConfigError, match=r"engine\.endpoint"):
        augment(_cfg(tmp_path, engine="openai", base_url="http://other:8000/v1"), engine=Counting)
