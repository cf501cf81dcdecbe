"""Generation streams: requests join a running batch, and a result never depends on when it joined.

Each engine's stream must give what ``generate`` gives for the same request alone (greedy tokens,
and seeded sampling through the request's own seed), whatever arrived before or after it.
"""

from __future__ import annotations

import pytest
from fake_engines import ScriptedEngine

from teacherlm_core.engines import GenerationParams, open_stream
from teacherlm_core.engines.hf import HFEngine

pytestmark = pytest.mark.timeout(300)

PROMPTS = ["Q: a", "Q: Is ice cold? A: The answer is (A). Let's think step by step.", "Q: hello there",
           "Q: 2 plus 2?", "Q: Why is the sky blue? Because", "Q: x y z", "Q: one two three four"]  # fmt: skip
REQUESTS = [(f"s{i}", x, GenerationParams(max_new_tokens=4 + 2 * i, temperature=1.0, top_p=0.9, seed=i))
            for i, x in enumerate(PROMPTS)] + [
           (f"g{i}", x, GenerationParams(max_new_tokens=10, seed=100 + i)) for i, x in enumerate(PROMPTS)]  # fmt: skip


def _stream_in_waves(engine, waves: int = 3) -> dict:
    """Submit the requests in waves, each while the previous one is still running; collect all results."""
    stream = open_stream(engine)
    results, size = {}, -(-len(REQUESTS) // waves)
    for w in range(waves):
        for key, prompt, params in REQUESTS[w * size : (w + 1) * size]:
            stream.submit(key, prompt, params, priority=w)
        for key, gen in stream.poll():
            results[key] = gen
    while stream.in_flight:
        for key, gen in stream.poll():
            results[key] = gen
    return results


class Windowed(ScriptedEngine):
    context_window = 8

    def count_tokens(self, prompts):
        return [len(p.split()) for p in prompts]


def test_a_stream_refuses_what_the_window_cannot_hold_and_generates_the_rest():
    engine = Windowed()
    stream = open_stream(engine)  # the engine has only generate: one call a poll
    stream.submit("short", "Q: a", GenerationParams(max_new_tokens=4))
    stream.submit("long", "Q: why is the sky so very blue", GenerationParams(max_new_tokens=4))
    first = dict(stream.poll())
    assert list(first) == ["long"] and "exceeds the teacher's context of 8 tokens" in first["long"].error
    assert engine.calls == 0 and stream.in_flight == 1
    assert [k for k, g in stream.poll()] == ["short"] and engine.calls == 1 and stream.in_flight == 0
    assert stream.poll() == []


def test_hf_stream_gives_what_generate_gives_alone(tiny_model):
    engine = HFEngine(tiny_model, batch_size=3)
    alone = {key: engine.generate([prompt], [params])[0] for key, prompt, params in REQUESTS}
    streamed = _stream_in_waves(engine)
    assert {k: g.token_ids for k, g in streamed.items()} == {k: g.token_ids for k, g in alone.items()}
    assert len({g.token_ids for k, g in streamed.items() if k[0] == "s"}) >= 5  # the seeds matter


def test_hf_stream_fills_sampling_batches_across_priorities_but_not_greedy_ones(tiny_model, monkeypatch):
    engine = HFEngine(tiny_model, batch_size=4)
    sizes = []
    for name in ("_sample_batch", "_generate_batch"):
        real = getattr(engine, name)
        monkeypatch.setattr(
            engine, name, lambda p, q, real=real, name=name: sizes.append((name, len(p))) or real(p, q)
        )
    stream = engine.open_stream()
    for part in range(2):  # two "parts" of three sampled and three greedy requests each
        for i in range(3):
            stream.submit(
                (part, "s", i), PROMPTS[i], GenerationParams(max_new_tokens=3, temperature=1.0, seed=i), part
            )
            stream.submit((part, "g", i), PROMPTS[i], GenerationParams(max_new_tokens=3, seed=i), part)
    while stream.in_flight:
        stream.poll()
    # sampled: 4 + 2 across the two parts; greedy: each part's three on their own (its batches as one generate call)
    assert sorted(sizes) == [
        ("_generate_batch", 3),
        ("_generate_batch", 3),
        ("_sample_batch", 2),
        ("_sample_batch", 4),
    ]


@pytest.mark.integration
def test_vllm_stream_adds_requests_to_the_running_batch_and_gives_what_generate_gives(tiny_model):
    from teacherlm_core.engines.vllm import VLLMEngine

    engine = VLLMEngine(tiny_model, enforce_eager=True)
    alone = {}  # each request alone through LLM.generate, as the engine served it before streams
    for key, prompt, params in REQUESTS:
        out = engine.llm.generate([prompt], engine._sampling(params), use_tqdm=False)[0].outputs[0]
        alone[key] = tuple(out.token_ids)
    running = []
    real_step = engine.llm.llm_engine.step
    engine.llm.llm_engine.step = lambda: (
        running.append(engine.llm.llm_engine.get_num_unfinished_requests()) or real_step()
    )
    streamed = _stream_in_waves(engine)
    assert {k: g.token_ids for k, g in streamed.items()} == alone
    # a later wave joined requests still running: more in flight at once than any one wave holds
    assert max(running) > -(-len(REQUESTS) // 3)
