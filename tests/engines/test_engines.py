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
