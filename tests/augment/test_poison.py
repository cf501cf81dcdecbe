"""One record that cannot be served is that record's problem, never the shard's.

A question longer than the teacher's context, one the server refuses (HTTP 400), one with 27
options: each is quarantined with its line and reason, the rest is augmented, and a re-run
finishes. The same for STaR; ``evaluate`` rejects what the prompt format cannot express at load
time, before any model loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from fake_engines import ScriptedEngine
from fake_openai import FakeCompletions

from teacherlm_core.augment import AugmentConfig, augment
from teacherlm_core.engines import GenerationParams, generate_servable

pytestmark = pytest.mark.timeout(120)

LONG = "Why " + "is the sky so very blue today " * 300 + "?"  # ~2,100 words


def _rows(extra: list[dict]) -> list[dict]:
    rows = [{"id": f"q{i}", "task": "t", "question": f"Is {i} even?", "choices": ["yes", "no"],
             "answer": "yes" if i % 2 == 0 else "no"} for i in range(6)]  # fmt: skip
    return rows[:3] + extra + rows[3:]


POISON = [
    {"id": "long", "task": "t", "question": LONG, "choices": ["yes", "no"], "answer": "yes"},
    {
        "id": "many",
        "task": "t",
        "question": "Pick one.",
        "choices": [f"o{i}" for i in range(27)],
        "answer": "o26",
    },
]


class WindowedEngine(ScriptedEngine):
    """A teacher that writes usable text and has a 512-token context (tokens: words)."""

    context_window = 512

    def count_tokens(self, prompts):
        return [len(p.split()) for p in prompts]

    def generate(self, prompts, params, progress=None):
        assert all(len(p.split()) < self.context_window for p in prompts), (
            "an oversized prompt reached the engine"
        )
        return super().generate(prompts, params, progress)


def _quarantine(out) -> dict[str, dict]:
    rows = [
        json.loads(x)
        for p in sorted((out / "quarantine").glob("*.jsonl"))
        for x in p.read_text().splitlines()
    ]
    return {r["raw"]["id"]: r for r in rows}


def test_poison_records_are_quarantined_and_the_rest_augmented(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(POISON)))
    cfg = AugmentConfig(model="scripted-teacher", input=str(src), output=str(tmp_path / "run"), engine="hf",
                        num_shards=1, max_new_tokens=16, temperature=0.0)  # fmt: skip
    manifest = augment(cfg, engine=WindowedEngine)
    assert manifest["counts"] == {"input": 8, "output": 6, "quarantined": 2}
    q = _quarantine(tmp_path / "run")
    assert q["long"]["line"] == 4 and q["many"]["line"] == 5
    assert "that exceeds the teacher's context of 512 tokens" in q["long"]["reason"]
    assert q["long"]["reason"].count("prompt is ") == 3  # each field's prompt, named with its size
    assert q["many"]["field"] == "choices" and "at most 26" in q["many"]["reason"]
    assert augment(cfg, engine=WindowedEngine)["counts"]["output"] == 6  # a re-run finishes too


def test_the_real_engines_refuse_an_oversized_prompt_alone(tiny_model):
    from teacherlm_core.engines.hf import HFEngine

    engine = HFEngine(tiny_model)
    prompts = ["Q: Is 2 even? A:", LONG, "Q: Is 3 even? A:"]
    gens = generate_servable(engine, prompts, [GenerationParams(max_new_tokens=4)] * 3)
    assert [g.finish_reason != "error" for g in gens] == [True, False, True]
    assert f"context of {engine.context_window} tokens" in gens[1].error


@pytest.mark.integration
def test_vllm_refuses_an_oversized_prompt_alone(tiny_model):
    from teacherlm_core.engines.vllm import VLLMEngine

    engine = VLLMEngine(tiny_model, enforce_eager=True)
    prompts = ["Q: Is 2 even? A:", LONG, "Q: Is 3 even? A:"]
    gens = generate_servable(engine, prompts, [GenerationParams(max_new_tokens=4, seed=1)] * 3)
    assert [g.finish_reason != "error" for g in gens] == [True, False, True]
    assert gens[0].num_tokens > 0 and f"context of {engine.context_window} tokens" in gens[1].error


def test_a_request_the_server_refuses_is_quarantined_with_its_reason(tmp_path):
    srv = FakeCompletions(flaky=0, delay=0.0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        src = tmp_path / "in.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in _rows(POISON[:1])))
        cfg = AugmentConfig(model="teacher", input=str(src), output=str(tmp_path / "run"), engine="openai",
                            base_url=srv.url, num_shards=1, temperature=0.0)  # fmt: skip
        manifest = augment(cfg)
    finally:
        srv.shutdown()
    assert manifest["counts"] == {"input": 7, "output": 6, "quarantined": 1}
    reason = _quarantine(tmp_path / "run")["long"]["reason"]
    assert "HTTP 400" in reason and "maximum context length" in reason


def test_star_quarantines_an_oversized_question_and_goes_on(tmp_path):
    from teacherlm_core.star import FAILED, StarConfig, run_star

    class Teacher(WindowedEngine):
        def generate(self, prompts, params, progress=None):
            return [g.__class__(text=f" It follows. So the answer is {p.split('The answer is ')[-1][:3] or '(A)'}.",
                                num_tokens=5, finish_reason="stop") for g, p in
                    zip(super().generate(prompts, params, progress), prompts, strict=True)]  # fmt: skip

    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(POISON[:1])))
    manifest = run_star(src, tmp_path / "star", "t", config=StarConfig(rounds=1, temperature=0.0),
                        load_engine=lambda m: Teacher())  # fmt: skip
    failed = {
        json.loads(x)["raw"]["id"]: json.loads(x)
        for x in (tmp_path / "star" / FAILED).read_text().splitlines()
    }
    assert "long" in failed and "exceeds the teacher's context of 512 tokens" in failed["long"]["reason"]
    assert manifest["counts"]["in"] == 7 and manifest["counts"]["kept"] + manifest["counts"]["failed"] == 7


def test_evaluate_rejects_27_options_before_loading_a_model(tmp_path):
    src = tmp_path / "eval.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _rows(POISON[1:])))
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "evaluate", "--model", "never-loaded", "--data", str(src),
         "--output", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{src}:4: field 'choices': 27 options, but the prompt format can letter at most 26" in res.stderr
