"""Tiny random-init Llama-family models and locally trained BPE tokenizers.

Tests and the demo never download a model: they build one here, in seconds, and save it like a
hub checkpoint (``config.json``, ``model.safetensors``, ``tokenizer.json``...), so every loader
(transformers, vLLM, lm-evaluation-harness) takes it by path exactly as it would take a model id.

    teacherlm tiny-model /tmp/tiny --preset tiny      # ~0.6M parameters, for tests
    teacherlm tiny-model /tmp/small --preset small    # ~20M parameters, for benchmarks
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from .prompts import FIELD_SUFFIX

__all__ = [
    "PRESETS",
    "TinySpec",
    "build_tiny_model",
    "build_tiny_teacher",
    "build_tokenizer",
    "builtin_corpus",
    "teacher_texts",
]


@dataclass(frozen=True)
class TinySpec:
    """Shape of a tiny Llama. ``head_dim`` 64 suits every vLLM CPU attention kernel."""

    vocab_size: int = 1024
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024


PRESETS = {
    "tiny": TinySpec(),
    "small": TinySpec(
        vocab_size=4096,
        hidden_size=384,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_attention_heads=6,
        num_key_value_heads=6,
        max_position_embeddings=2048,
    ),
}

_WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "were",
    "be",
    "not",
    "and",
    "or",
    "but",
    "if",
    "then",
    "so",
    "because",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "with",
    "from",
    "by",
    "true",
    "false",
    "yes",
    "no",
    "question",
    "answer",
    "choice",
    "correct",
    "wrong",
    "step",
    "first",
    "second",
    "third",
    "next",
    "finally",
    "therefore",
    "since",
    "means",
    "more",
    "less",
    "than",
    "equal",
    "greater",
    "smaller",
    "older",
    "younger",
    "before",
    "after",
    "day",
    "week",
    "month",
    "year",
    "hour",
    "minute",
    "meter",
    "kilometer",
    "gram",
    "kilogram",
    "liter",
    "price",
    "cost",
    "total",
    "each",
    "every",
    "some",
    "all",
    "none",
    "many",
    "few",
    "number",
    "sum",
    "difference",
    "product",
    "twice",
    "half",
    "people",
    "person",
    "city",
    "country",
    "animal",
    "plant",
    "water",
    "fire",
    "earth",
    "air",
    "sun",
    "moon",
    "river",
    "mountain",
    "tree",
    "dog",
    "cat",
    "bird",
    "fish",
    "car",
    "train",
    "book",
    "school",
    "teacher",
    "student",
    "doctor",
    "apple",
    "orange",
    "bread",
    "milk",
    "red",
    "blue",
    "green",
    "big",
    "small",
    "fast",
    "slow",
    "hot",
    "cold",
    "mistake",
    "common",
    "fundamental",
    "knowledge",
    "reasoning",
    "explain",
    "think",
    "careful",
    "check",
    "unit",
    "convert",
    "date",
]


def builtin_corpus(n_sentences: int = 4000, seed: int = 0) -> list[str]:
    """Text in the shape of teacherlm's prompts, for training a tokenizer with no downloads."""
    rng = random.Random(seed)
    lines = [s.strip() for s in FIELD_SUFFIX.values()]
    for _ in range(n_sentences):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14)))
        letters = " ".join(f"({chr(65 + i)}) {rng.choice(_WORDS)}" for i in range(rng.randint(2, 5)))
        n = rng.randint(0, 2000)
        lines.append(
            f"Q: {words.capitalize()} {n}? {letters} A: The answer is ({chr(65 + rng.randint(0, 4))})."
        )
    return lines


def build_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 1024):
    """Train a byte-level BPE tokenizer (every string encodes; no unknown tokens).

    Returns a ``PreTrainedTokenizerFast`` with ``<s>``, ``</s>`` and ``<pad>`` special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = list(corpus) if corpus is not None else builtin_corpus()
    # A corpus repeated in a fixed order keeps training deterministic.
    tok.train_from_iterator(itertools.chain(lines, lines), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=4096
    )


def build_tiny_model(
    out_dir: str | Path,
    *,
    preset: str = "tiny",
    seed: int = 0,
    corpus: Iterable[str] | None = None,
    spec: TinySpec | None = None,
) -> Path:
    """Build and save a random-init Llama + tokenizer under ``out_dir`` (safetensors only).

    Args:
        out_dir: where to save; loadable afterwards with ``from_pretrained(out_dir)``.
        preset: ``"tiny"`` (tests) or ``"small"`` (benchmarks); ignored when ``spec`` is given.
        seed: seeds the weights; the same seed gives the same weights.
        corpus: text to train the tokenizer on (default: :func:`builtin_corpus`).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if spec is None:
        try:
            spec = PRESETS[preset]
        except KeyError:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus, vocab_size=spec.vocab_size)
    params = asdict(spec) | {"vocab_size": len(tokenizer)}
    config = LlamaConfig(
        **params,
        head_dim=spec.hidden_size // spec.num_attention_heads,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        rope_theta=10000.0,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def teacher_texts(per_task: int = 60, seed: int = 7) -> list[str]:
    """The built-in suite's gold explanations in the teacher's format: ``teacher prompt + " " + explanation``."""
    from .data.builtin import generate_builtin
    from .prompts import teacher_prompt
    from .schema import FIELDS, Sample

    texts = []
    for record in generate_builtin(per_task=per_task, seed=seed):
        sample = Sample.model_validate(record)
        texts += [f"{teacher_prompt(sample, f)} {record[f].strip()}" for f in FIELDS]
    return texts


def build_tiny_teacher(out_dir: str | Path, *, steps: int = 200, seed: int = 0) -> Path:
    """A tiny Llama trained for ``steps`` on :func:`teacher_texts`: a stand-in teacher that writes sentences.

    About 25 s on two CPU cores for 200 steps (32 blocks of 128 tokens each). Greedy decoding then
    continues teacher prompts with well-formed English explanations (largely the suite's own, so
    it is a test double for a teacher, not a model of one). Saved like :func:`build_tiny_model`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = teacher_texts()
    path = build_tiny_model(out_dir, seed=seed, corpus=texts)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    flat = [
        t
        for text in texts
        for t in tokenizer(text + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    ]
    block = 128
    blocks = torch.tensor(flat[: len(flat) // block * block]).view(-1, block)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        batch = blocks[torch.randint(0, len(blocks), (32,), generator=generator)]
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    model.save_pretrained(path)
    return path
