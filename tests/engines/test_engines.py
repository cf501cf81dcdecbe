from dataclasses import replace

import pytest

from teacherlm_core.engines import GenerationParams, LoglikelihoodRequest, encode_pair
from teacherlm_core.engines.hf import HFEngine, shared_prefix_plan

CTX = "Q: Is the sun a star? (A) yes (B) no (C) maybe A: The answer is ("
REQUESTS = [LoglikelihoodRequest(CTX, c) for c in "ABC"] + [
    LoglikelihoodRequest("Q: 2 plus 2? (A) four (B) five A: The answer is", " (A) four"),
    LoglikelihoodRequest("Q: 2 plus 2? (A) four (B) five A: The answer is ", "(B) five"),
    LoglikelihoodRequest("Count: one two", " three four five six"),
]


@pytest.fixture(scope="module")
def hf(tiny_model):
    return HFEngine(tiny_model, batch_size=2)


@pytest.fixture(scope="module")
def vllm_engine(tiny_model):
    from teacherlm_core.engines.vllm import VLLMEngine

    return VLLMEngine(tiny_model)


def test_shared_prefix_plan_maps_prefixes_to_their_longest_extension():
    plan = shared_prefix_plan([(1, 2), (1, 2, 3), (1,), (1, 2, 3), (4,), (1, 3)])
    assert plan == {(1,): (1, 2, 3), (1, 2): (1, 2, 3), (1, 2, 3): (1, 2, 3), (1, 3): (1, 3), (4,): (4,)}


def test_encode_pair_moves_trailing_space_and_splits_like_lm_eval(hf):
    tok = hf.tokenizer
    e = encode_pair(tok, "Q: x A: The answer is ", "(B)")
    assert e.context == tok("Q: x A: The answer is", add_special_tokens=False)["input_ids"]
    whole = tok("Q: x A: The answer is (B)", add_special_tokens=False)["input_ids"]
    assert e.context + e.continuation == whole
    assert e.inputs == whole[:-1]
    assert encode_pair(tok, "abc def", " ghi", max_length=3).inputs == whole_tail(tok, "abc def ghi", 4)[:-1]


def whole_tail(tok, text, n):
    return tok(text, add_special_tokens=False)["input_ids"][-n:]


def test_hf_shared_prefix_scoring_equals_one_forward_per_request(hf):
    """The sharing optimisation must not change a single score."""
    import torch

    shared = hf.loglikelihood(REQUESTS)
    for req, got in zip(REQUESTS, shared, strict=True):
        e = encode_pair(hf.tokenizer, req.context, req.continuation)
        with torch.inference_mode():
            logits = hf.model(torch.tensor([e.inputs])).logits[0]
        logprobs = torch.log_softmax(logits, -1)[-len(e.continuation) :]
        expected = float(logprobs[torch.arange(len(e.continuation)), torch.tensor(e.continuation)].sum())
        assert got == pytest.approx(expected, abs=1e-4)


def test_hf_scoring_tokenises_each_text_once_and_heads_only_the_scored_positions(hf, monkeypatch):
    """Eval cost: a question's context is tokenised once for all its letters, in batch calls, and
    the LM head runs on one hidden state per distinct scored position, not on every position."""
    tokenizer_cls = type(hf.tokenizer)
    real, calls = tokenizer_cls.__call__, []

    def recording(self, text, **kwargs):
        calls.append(text)
        return real(self, text, **kwargs)

    monkeypatch.setattr(tokenizer_cls, "__call__", recording)
    head_rows = []
    handle = hf.model.get_output_embeddings().register_forward_hook(
        lambda m, args, out: head_rows.append(out.shape[:-1].numel())
    )
    try:
        hf.loglikelihood(REQUESTS)
    finally:
        handle.remove()
    texts = [t for c in calls for t in ([c] if isinstance(c, str) else c)]
    distinct = {CTX.rstrip(), *(CTX + c for c in "ABC")}
    assert distinct <= set(texts) and len(texts) == len(set(texts))  # each text once
    assert len(calls) <= 2  # in batch calls (with and without special tokens at most)
    # the three letters share CTX's last position; every other continuation token has its own
    others = sum(len(encode_pair(hf.tokenizer, r.context, r.continuation).continuation) for r in REQUESTS[3:])
    assert sum(head_rows) == 1 + others


def test_hf_scores_the_same_when_the_model_does_not_call_its_head_as_a_module(hf, monkeypatch):
    expected = hf.loglikelihood(REQUESTS)
    monkeypatch.setattr(hf.model, "get_output_embeddings", lambda: None)
    assert hf.loglikelihood(REQUESTS) == pytest.approx(expected, abs=1e-5)


@pytest.mark.integration
def test_vllm_and_hf_agree(hf, vllm_engine):
    assert vllm_engine.loglikelihood(REQUESTS) == pytest.approx(hf.loglikelihood(REQUESTS), abs=1e-4)
    prompts = ["Q: Is ice cold? A: The answer is (A). Let's think step by step.", "Q: hello"]
    greedy = GenerationParams(max_new_tokens=12)
    got_v = vllm_engine.generate(prompts, greedy)
    got_h = hf.generate(prompts, greedy)
    assert [g.token_ids for g in got_v] == [g.token_ids for g in got_h]
    assert all(g.num_tokens == 12 and g.finish_reason == "length" for g in got_v)


@pytest.mark.integration
def test_seeded_sampling_depends_only_on_the_request_seed(vllm_engine):
    p = [GenerationParams(max_new_tokens=16, temperature=1.0, seed=s) for s in (1, 2, 1)]
    a = vllm_engine.generate(["Q: a", "Q: a", "Q: a"], p)
    b = vllm_engine.generate(["Q: a"], [p[0]])
    assert a[0].text == a[2].text == b[0].text
    assert a[0].text != a[1].text


@pytest.mark.integration
def test_many_long_seeded_requests_do_not_crash_vllm_on_cpu(vllm_engine):
    """Regression: seeded sampling + chunked prefill killed vLLM 0.32's CPU engine."""
    prompts = [f"Q: question number {i} " * 20 for i in range(300)]
    params = [GenerationParams(max_new_tokens=4, temperature=0.7, top_p=0.95, seed=i) for i in range(300)]
    assert len(vllm_engine.generate(prompts, params)) == 300


LONG_REQUESTS = [
    LoglikelihoodRequest("Count: " + " ".join(f"one{i} two{i}" for i in range(400)), " three"),
    LoglikelihoodRequest("Q: " + "why is it so " * 300 + "A: The answer is (", "B"),
    LoglikelihoodRequest("Q: short one. A: The answer is (", "A"),
]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_truncation_is_identical_on_every_engine(hf, vllm_engine, tiny_model, caplog):
    """Contexts longer than the window keep the same last tokens on HF, vLLM and lm-evaluation-harness."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    assert hf.max_length == vllm_engine.max_length == hf.context_window - 1
    assert len(hf.tokenizer(LONG_REQUESTS[0].context)["input_ids"]) > hf.context_window  # really truncated
    with caplog.at_level("WARNING"):
        got_hf = hf.loglikelihood(LONG_REQUESTS)
    assert "2 of 3 scoring requests are longer than the model's window" in caplog.text
    got_vllm = vllm_engine.loglikelihood(LONG_REQUESTS)
    lm = HFLM(pretrained=tiny_model, batch_size=2, device="cpu", dtype="float32", max_length=hf.max_length)
    ref = [ll for ll, _ in lm.loglikelihood(
        [Instance("loglikelihood", {}, (r.context, r.continuation), i) for i, r in enumerate(LONG_REQUESTS)]
    )]  # fmt: skip
    assert got_hf == pytest.approx(ref, abs=1e-4)
    assert got_vllm == pytest.approx(ref, abs=1e-4)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_model_vllm_cannot_run_exits_2_naming_the_alternative_and_auto_runs_it(tmp_path):
    import json
    import subprocess
    import sys

    from teacherlm_core.tiny import TinySpec, build_tiny_model

    odd = build_tiny_model(tmp_path / "odd", spec=TinySpec(hidden_size=40, intermediate_size=64), seed=0)
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"id": "a", "task": "t", "question": "Is ice cold?", "choices": ["yes", "no"],
                                "answer": "yes"}) + "\n")  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "evaluate", "--model", str(odd), "--data", str(data),
         "--output", str(tmp_path / "r.json"), "--engine", "vllm"], capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "vLLM cannot run" in res.stderr and "head_dim=20" in res.stderr and "use --engine hf" in res.stderr
    # The default engine (auto) runs it: vLLM is tried, then the HF engine, said once.
    res = subprocess.run(
        [sys.executable, "-m", "teacherlm_core", "evaluate", "--model", str(odd), "--data", str(data),
         "--output", str(tmp_path / "r.json"), "--no-track"], capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("engine auto: vLLM cannot run") == 1 and "using the HF engine" in res.stderr
    assert json.loads((tmp_path / "r.json").read_text())["overall"]["n"] == 1


def test_greedy_requests_batch_together_whatever_their_seeds(hf, monkeypatch):
    """Augmentation and STaR give every request its own seed; greedy decoding ignores it, so those
    requests must still share batches (they once went one at a time: batch size 1, the paper's slow recipe)."""
    from teacherlm_core.engines import GenerationParams

    sizes = []
    real = hf._generate_batch
    monkeypatch.setattr(
        hf, "_generate_batch", lambda prompts, p: sizes.append(len(prompts)) or real(prompts, p)
    )
    prompts = [f"Q: item {i} A: The answer is" for i in range(6)]
    params = [GenerationParams(max_new_tokens=4, temperature=0.0, seed=1000 + i) for i in range(6)]
    batched = hf.generate(prompts, params)
    assert sizes == [2, 2, 2]  # batches of the engine's batch_size (2 here), not one request each
    alone = [hf.generate([x], [p])[0] for x, p in zip(prompts, params, strict=True)]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]  # greedy: batching changes nothing


SAMPLED_PROMPTS = ["Q: a", "Q: Is ice cold? A: The answer is (A). Let's think step by step.", "Q: hello there",
                   "Q: 2 plus 2?", "Q: a", "Q: Why is the sky blue? Because", "Q: x y z", "Q: one two three four"]  # fmt: skip
SAMPLED_PARAMS = [GenerationParams(max_new_tokens=12, temperature=t, top_p=tp, seed=s)
                  for s, t, tp in zip((1, 2, 3, 4, 1, 6, 7, 8), (1.0, 0.7, 1.3, 1.0, 1.0, 0.9, 1.0, 0.5),
                                      (1.0, 0.95, 0.9, 1.0, 1.0, 0.8, 1.0, 0.99), strict=True)]  # fmt: skip


def test_hf_sampling_is_batched_and_results_do_not_depend_on_batching(tiny_model):
    """Seeded sampling runs many requests per forward pass, and each result depends only on
    its own prompt, seed and settings: the same at batch size 1 and 8, in any company."""
    one, eight = HFEngine(tiny_model, batch_size=1), HFEngine(tiny_model, batch_size=8)
    calls = []
    eight.model.register_forward_hook(lambda *_: calls.append(1))
    batched = eight.generate(SAMPLED_PROMPTS, SAMPLED_PARAMS)
    assert len(calls) <= 12  # one forward pass per new token for all 8 requests, not 8 x 12
    alone = one.generate(SAMPLED_PROMPTS, SAMPLED_PARAMS)
    reversed_ = eight.generate(SAMPLED_PROMPTS[::-1], SAMPLED_PARAMS[::-1])[::-1]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone] == [g.token_ids for g in reversed_]
    assert batched[0].token_ids == batched[4].token_ids  # same prompt and seed
    assert len({g.token_ids for g in batched}) >= 6  # the seeds matter: not one fixed continuation
    assert all(0 < g.num_tokens <= 12 for g in batched)


def test_cpu_threads_are_the_cpus_the_process_may_use_unless_overridden(monkeypatch):
    import os

    from teacherlm_core.engines.vllm import default_cpu_threads
    from teacherlm_core.errors import EngineError

    monkeypatch.delenv("TEACHERLM_CPU_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= default_cpu_threads() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_cpu_threads() == 3
    monkeypatch.setenv("TEACHERLM_CPU_THREADS", "1")
    assert default_cpu_threads() == 1
    monkeypatch.setenv("TEACHERLM_CPU_THREADS", "all")
    with pytest.raises(EngineError, match="TEACHERLM_CPU_THREADS='all'"):
        default_cpu_threads()


@pytest.mark.integration
def test_vllm_on_cpu_runs_with_the_threads_it_was_given(vllm_engine):
    """In-process vLLM binds no threads (and may lower torch's to 1 while it starts): the engine sets them."""
    import torch

    assert vllm_engine.cpu_threads and torch.get_num_threads() == vllm_engine.cpu_threads


def _early_word(text: str) -> str:
    """A word first seen in the first half of ``text``, with its leading space: a stop string
    that this row's generation reaches early."""
    for word in text.split()[1:]:
        if word.isalnum() and 0 < text.index(" " + word) < len(text) // 2:
            return " " + word
    raise AssertionError(f"no early word in {text!r}")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rows_stop_at_their_stop_string_and_the_batch_ends_with_its_last_row(tiny_model, temperature):
    """Generation once ran every row to max_new_tokens and cut the stop string afterwards: a batch
    of finished explanations kept paying decode steps. Now each row ends at its stop string, the
    batch ends with its last row, and the texts are those of cutting the full generation."""
    engine = HFEngine(tiny_model, batch_size=4)
    prompts = [
        "Q: Is ice cold? A: The answer is (A).",
        "Q: hello there",
        "Q: 2 plus 2?",
        "Q: Why is the sky blue?",
    ]
    free = GenerationParams(max_new_tokens=24, temperature=temperature, seed=3)
    full = engine.generate(prompts, free)
    full_steps = engine.stats["decode_steps"]
    assert full_steps > 16 and engine.stats["tokens_generated"] > 3 * 16
    stops = tuple(_early_word(g.text) for g in full)  # every row reaches one early
    expected = []  # today's outputs: the full generation, cut at its first stop string
    for g in full:
        first = min((g.text.index(s) for s in stops if s in g.text), default=None)
        expected.append((g.text, g.finish_reason) if first is None else (g.text[:first], "stop"))

    engine.stats.update(dict.fromkeys(engine.stats, 0))
    stopped = engine.generate(prompts, replace(free, stop=stops))
    assert [(g.text, g.finish_reason) for g in stopped] == expected
    assert (
        engine.stats["batches"] == 1 and engine.stats["decode_steps"] < full_steps
    )  # ended with its last row
    assert engine.stats["tokens_generated"] == sum(g.num_tokens for g in stopped) < 4 * 24
    assert (
        0
        < engine.stats["tokens_kept"]
        == sum(g.kept_tokens for g in stopped)
        < engine.stats["tokens_generated"]
    )
