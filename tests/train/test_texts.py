"""Multi-task training texts, the data check behind them, and packing."""

from __future__ import annotations

import itertools
import json

import pytest

from teacherlm_core.data import build_builtin
from teacherlm_core.errors import DataError
from teacherlm_core.prompts import FIELD_SUFFIX, base_text
from teacherlm_core.records import load_samples
from teacherlm_core.schema import FIELDS, AugmentedSample
from teacherlm_core.train.packing import load_packed, pack, save_packed, tokenize
from teacherlm_core.train.texts import build_texts, load_training_samples, sample_texts

pytestmark = pytest.mark.timeout(120)

KINDS = ["plain", *FIELDS]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    build_builtin(out, per_task=10, seed=0)
    return out


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def test_texts_follow_the_paper_formats(data_dir):
    sample = load_samples(data_dir / "train.jsonl", AugmentedSample)[0]
    texts = {t.kind: t for t in sample_texts(sample, KINDS)}
    assert texts["plain"].text == base_text(sample)
    assert texts["plain"].completion.startswith(" The answer is (")
    for field in FIELDS:
        assert texts[field].prompt == base_text(sample) + FIELD_SUFFIX[field]
        assert texts[field].text == base_text(sample) + FIELD_SUFFIX[field] + " " + getattr(sample, field)


def test_mixture_weights_repeat_and_subsample_deterministically(data_dir):
    samples = load_training_samples(str(data_dir / "train.jsonl"), KINDS)
    n = len(samples)
    weights = {"plain": 2.0, "common_mistakes": 0.5, "fundamentals": 0}
    texts, counts = build_texts(samples, KINDS, weights, seed=3)
    assert counts == {
        "plain": 2 * n,
        "fundamentals": 0,
        "chain_of_thought": n,
        "common_mistakes": round(n / 2),
    }
    again, _ = build_texts(samples, KINDS, weights, seed=3)
    assert [t.sample_id for t in texts] == [t.sample_id for t in again]


def test_data_without_the_needed_fields_names_them(tmp_path, data_dir):
    rows = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()][:5]
    for i, row in enumerate(rows):
        row.pop("common_mistakes")
        if i >= 2:
            row.pop("fundamentals")
    path = tmp_path / "partial.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as err:
        load_training_samples(str(path), KINDS, display="s3://bucket/partial.jsonl")
    e = err.value
    assert e.path == "s3://bucket/partial.jsonl" and e.line == 1
    assert e.field == "common_mistakes, fundamentals"
    assert "'common_mistakes' missing or empty in 5 of 5 records (first: line 1)" in e.reason
    assert "'fundamentals' missing or empty in 3 of 5 records (first: line 3)" in e.reason
    # The plain texts need none of them.
    assert len(load_training_samples(str(path), ["plain"])) == 5


def test_invalid_records_fail_with_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "task": "t", "question": "q", "answer": "x", "choices": ["y", "z"]}\n')
    with pytest.raises(DataError) as err:
        load_training_samples(str(path), ["plain"])
    assert (err.value.line, err.value.field) == (1, "answer")


def test_tokenize_masks_the_prompt_and_never_trains_on_bos(data_dir, tokenizer):
    samples = load_training_samples(str(data_dir / "train.jsonl"), KINDS)[:3]
    texts, _ = build_texts(samples, KINDS, {}, 0)
    for loss in ("all", "completion"):
        for text, (ids, mask) in zip(texts, tokenize(tokenizer, texts, loss), strict=True):
            assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id and mask[0] == 0
            if loss == "all":
                assert all(mask[1:])
            else:
                trained = tokenizer.decode([t for t, m in zip(ids[1:-1], mask[1:-1], strict=True) if m])
                assert trained.strip() == text.completion.strip()


def test_packing_keeps_texts_whole_and_fills_blocks(data_dir, tokenizer, tmp_path):
    samples = load_training_samples(str(data_dir / "train.jsonl"), KINDS)
    texts, _ = build_texts(samples, KINDS, {}, 0)
    docs = tokenize(tokenizer, texts, "all")
    packed = pack(docs, 512, tokenizer.pad_token_id)
    stats = packed.stats
    assert stats.real_share >= 0.95, stats
    assert stats.real_tokens == sum(len(ids) for ids, _ in docs) and stats.truncated == 0
    # Every text appears whole, once, at a position restart.
    starts = sorted(
        tuple(packed.input_ids[b, i : i + 8])
        for b in range(stats.blocks)
        for i in range(512)
        if packed.position_ids[b, i] == 0 and packed.real_mask[b, i]
    )
    assert starts == sorted(tuple(ids[:8]) for ids, _ in docs)
    save_packed(packed, tmp_path / "p.safetensors")
    tensors, loaded = load_packed(tmp_path / "p.safetensors")
    assert loaded == stats and tensors["input_ids"].shape == (stats.blocks, 512)
    # Without packing each text has its own block; longer texts are truncated, and counted.
    unpacked = pack(docs, 64, tokenizer.pad_token_id, enabled=False)
    assert unpacked.stats.blocks == len(docs) and unpacked.stats.truncated > 0


def test_a_packed_text_sees_only_itself(tiny_model, tokenizer, data_dir):
    """The packed attention is block-diagonal: a text's logits do not depend on its neighbours."""
    import torch
    from transformers import AutoModelForCausalLM

    from teacherlm_core.train.batches import collate

    model = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    samples = load_training_samples(str(data_dir / "train.jsonl"), KINDS)[:2]
    texts, _ = build_texts(samples, ["plain", "fundamentals"], {}, 0)
    docs = tokenize(tokenizer, texts, "all")
    packed = pack(docs, 1024, tokenizer.pad_token_id)
    assert packed.stats.blocks == 1
    row = {
        k: torch.from_numpy(getattr(packed, k)[0])
        for k in ("input_ids", "loss_mask", "position_ids", "real_mask")
    }
    batch = collate([row])
    with torch.no_grad():
        assert batch["use_cache"] is False  # with a KV cache, transformers does not mask packed texts
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits[0]
        starts = [*(batch["position_ids"][0] == 0).nonzero().flatten().tolist(), batch["input_ids"].shape[1]]
        for a, b in itertools.pairwise(starts):
            alone = model(input_ids=batch["input_ids"][:, a:b]).logits[0]
            torch.testing.assert_close(logits[a:b], alone, atol=1e-4, rtol=1e-4)
    assert int(batch["num_real"]) == packed.stats.real_tokens
    assert (batch["labels"][0][starts[:-1]] == -100).all()  # no text learns to predict its neighbour
